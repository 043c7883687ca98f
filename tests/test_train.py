import copy

import pytest
import torch

from course_lib import data
from course_lib.train import History, accuracy, train


def _regression(n=64, dim=3):
    d = data.linear_regression(n=n, dim=dim, noise=0.1, seed=0, dtype=torch.float64)
    return d.x, d.y[:, None]


def _linear(dim=3, out=1, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(dim, out).double()


def test_full_batch_sgd_matches_a_hand_written_loop():
    x, y = _regression()
    model = _linear()
    reference = copy.deepcopy(model)
    history = train(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.functional.mse_loss,
        (x, y),
        steps=20,
        progress=False,
    )
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(reference(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert history.step == list(range(1, 21))
    torch.testing.assert_close(torch.tensor(history.loss), torch.tensor(losses), rtol=1e-12, atol=0)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0)
    assert history.accuracy == [None] * 20 and history.test_loss == []


def test_minibatches_are_epochs_of_a_seeded_shuffle():
    n, batch = 12, 4
    x = torch.zeros(n, 1, dtype=torch.float64)
    y = torch.arange(n, dtype=torch.float64)
    seen = []

    def loss_fn(output, target):
        seen.append(target.tolist())
        return (output[:, 0] * 0 + target).mean() * 0 + output.sum()

    model = _linear(dim=1)
    train(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, (x, y), steps=9,
          batch_size=batch, progress=False, seed=5)  # fmt: skip
    assert all(len(b) == batch for b in seen)
    for epoch in range(3):  # every epoch visits each example exactly once
        visited = sorted(sum(seen[3 * epoch : 3 * epoch + 3], []))
        assert visited == list(range(n))
    first = [b for b in seen]
    seen.clear()
    train(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, (x, y), steps=9,
          batch_size=batch, progress=False, seed=5)  # fmt: skip
    assert seen == first
    seen.clear()
    train(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, (x, y), steps=9,
          batch_size=batch, progress=False, seed=6)  # fmt: skip
    assert seen != first


def test_same_seed_same_run_with_dropout():
    x, y = _regression()

    def run(seed):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)
        ).double()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        return train(model, optimizer, torch.nn.functional.mse_loss, (x, y), steps=15,
                     batch_size=8, seed=seed, progress=False).loss  # fmt: skip

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_lbfgs_through_the_closure_matches_torch_and_solves_least_squares():
    x, y = _regression()
    model = _linear()
    reference = copy.deepcopy(model)
    history = train(
        model,
        torch.optim.LBFGS(
            model.parameters(),
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=0.0,
        ),
        torch.nn.functional.mse_loss,
        (x, y),
        steps=3,
        progress=False,
    )
    optimizer = torch.optim.LBFGS(
        reference.parameters(),
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=0.0,
    )

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(reference(x), y)
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution[:, 0]
    fitted = torch.cat([model.weight[0], model.bias])
    torch.testing.assert_close(fitted, solution, atol=1e-6, rtol=0)
    assert history.loss[-1] < history.loss[0]


def test_split_logs_windows_means_and_test_metrics():
    d = data.digits(classes=(0, 1, 2), dtype=torch.float64)
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 3).double()
    every_step = copy.deepcopy(model)
    loss_fn = torch.nn.functional.cross_entropy
    history = train(model, torch.optim.SGD(model.parameters(), lr=0.05), loss_fn, d,
                    steps=10, batch_size=32, log_every=3, progress=False)  # fmt: skip
    fine = train(every_step, torch.optim.SGD(every_step.parameters(), lr=0.05), loss_fn, d,
                 steps=10, batch_size=32, log_every=1, progress=False)  # fmt: skip
    assert history.step == [3, 6, 9, 10]
    windows = [(0, 3), (3, 6), (6, 9), (9, 10)]
    for logged, (a, b) in zip(history.loss, windows, strict=True):
        assert logged == pytest.approx(sum(fine.loss[a:b]) / (b - a), rel=1e-12)
    with torch.no_grad():
        output = model(d.x_test)
    expected = (output.argmax(dim=1) == d.y_test).double().mean().item()
    assert history.test_accuracy[-1] == pytest.approx(expected)
    assert history.test_loss[-1] == pytest.approx(loss_fn(output, d.y_test).item())
    assert all(0 <= a <= 1 for a in history.accuracy)
    assert history.test_accuracy[-1] > 0.9


def test_accuracy_rules():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([[1.5], [-0.5]]), torch.tensor([1.0, 1.0])) == 0.5
    assert accuracy(torch.tensor([0.3, 0.2]), torch.tensor([0.7, 1.4])) is None


def test_data_follows_the_model_dtype():
    x, y = _regression()
    model = _linear()
    history = train(model, torch.optim.SGD(model.parameters(), lr=0.1),
                    torch.nn.functional.mse_loss, (x.float(), y.float()), steps=2,
                    progress=False)  # fmt: skip
    assert isinstance(history, History) and len(history.loss) == 2


def test_progress_switch(capsys):
    x, y = _regression()
    model = _linear()
    args = (
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.functional.mse_loss,
        (x, y),
    )
    train(*args, steps=3, progress=False)
    assert capsys.readouterr().err == ""
    train(*args, steps=3, progress=True)
    assert "training" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 0}, "steps"),
        ({"log_every": 0}, "log_every"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 1000}, "batch_size"),
        ({"steps": True}, "steps"),
        ({"batch_size": True}, "batch_size"),
        ({"schedule": 0.1}, "schedule"),
    ],  # fmt: skip
)
def test_invalid_arguments_raise(kwargs, name):
    x, y = _regression()
    model = _linear()
    with pytest.raises(ValueError, match=name):
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss,
              (x, y), progress=False, **kwargs)  # fmt: skip


def test_schedule_sets_the_lr_of_every_step_like_lambda_lr():
    """train(schedule=s) against a hand-written loop driven by torch's LambdaLR."""
    x, y = _regression()
    model = _linear()
    reference = copy.deepcopy(model)
    rates = [0.05, 0.1, 0.2, 0.1, 0.05, 0.025]
    train(model, torch.optim.SGD(model.parameters(), lr=1.0), torch.nn.functional.mse_loss,
          (x, y), steps=len(rates), progress=False, schedule=rates.__getitem__)  # fmt: skip
    optimizer = torch.optim.SGD(reference.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, (rates + [0.0]).__getitem__)
    for _ in rates:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(reference(x), y).backward()
        optimizer.step()
        scheduler.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)


def test_newton_through_train_solves_least_squares_in_one_step():
    """Newton differentiates the loss itself: train hands it a closure without backward().
    On a quadratic (least squares) one Newton step lands on the lstsq solution."""
    from course_lib.optim import Newton

    x, y = _regression()
    model = _linear()
    history = train(model, Newton(model.parameters()), torch.nn.functional.mse_loss, (x, y),
                    steps=2, progress=False)  # fmt: skip
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution[:, 0]
    torch.testing.assert_close(model.weight[0], solution[:3], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(model.bias[0], solution[3], rtol=1e-9, atol=1e-12)
    minimum = torch.nn.functional.mse_loss(design @ solution, y[:, 0]).item()
    assert history.loss[1] == pytest.approx(minimum, rel=1e-9)
