"""course_lib.optim as a drop-in for torch.optim: ``maximize=``, tensor learning rates, and
state_dicts that each library loads from the other (torch stores ``step`` as a tensor)."""

import io

import pytest
import torch
from optim_problem import make_problem, param_groups, train

import course_lib.optim as co

# every first-order optimizer that torch.optim has too, with non-default settings
SHARED = [
    ("SGD", dict(lr=0.05, weight_decay=0.01)),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.02, momentum=0.8, dampening=0.3)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1)),
    ("Adafactor", dict(lr=0.05, beta2_decay=-0.5, weight_decay=0.01)),
]
IDS = [f"{name}{i}" for i, (name, _) in enumerate(SHARED)]
STEPS = 40


def _groups(kwargs):
    return param_groups(kwargs, dict(lr=kwargs["lr"] / 2))


def _assert_close(got, expected):
    for p, p_ref in zip(got, expected, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)


def _paths(name):
    """The constructor keywords of both update paths (Adafactor has only the per-tensor one)."""
    return [{}] if name == "Adafactor" else [{}, dict(foreach=False)]


@pytest.mark.parametrize(("name", "kwargs"), SHARED, ids=IDS)
def test_maximize_matches_torch(name, kwargs):
    steps = 10  # ascent on this loss (a quartic bowl) runs off to infinity: a few steps only

    def run(library, **extra):
        return train(lambda a, b: getattr(library, name)(_groups(kwargs)(a, b), **extra), steps)

    expected, _ = run(torch.optim, maximize=True)
    minimized, _ = run(torch.optim)
    assert all(torch.isfinite(p).all() for p in expected)
    assert not torch.allclose(expected[1], minimized[1])  # maximizing goes elsewhere
    for path in _paths(name):
        got, optimizer = run(co, maximize=True, **path)
        assert all(group["maximize"] for group in optimizer.param_groups)
        _assert_close(got, expected)


@pytest.mark.parametrize("foreach", [None, False])
def test_lion_maximize_is_minimizing_the_negated_loss(foreach):
    """No torch.optim.Lion: the reference is Lion fed the negated gradients."""

    def run(maximize, sign):
        params, (a, b), set_grads = make_problem()
        optimizer = co.Lion(_groups(dict(lr=0.01, weight_decay=0.1))(a, b), maximize=maximize)
        for step in range(10):
            set_grads(step)
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(sign)
            optimizer.step()
        return params

    _assert_close(run(True, 1), run(False, -1))


@pytest.mark.parametrize("shape", [(), (1,)], ids=["0-d", "1-element"])
@pytest.mark.parametrize(("name", "kwargs"), SHARED, ids=IDS)
def test_tensor_lr_steps_like_the_float_lr_of_torch(name, kwargs, shape):
    expected, _ = train(lambda a, b: getattr(torch.optim, name)(_groups(kwargs)(a, b)), STEPS)
    tensor_lr = dict(kwargs, lr=torch.tensor(kwargs["lr"], dtype=torch.float64).reshape(shape))
    optimizer_class = getattr(co, name)
    for path in _paths(name):
        got, _ = train(
            lambda a, b, path=path: optimizer_class(_groups(tensor_lr)(a, b), **path), STEPS
        )
        _assert_close(got, expected)


@pytest.mark.parametrize("name", ["Lion", "Shampoo"])
def test_tensor_lr_of_course_only_optimizers_steps_like_a_float(name):
    def run(lr):
        return train(lambda a, b: getattr(co, name)(param_groups(dict(lr=lr), {})(a, b)), 10)[0]

    _assert_close(run(torch.tensor([0.01], dtype=torch.float64)), run(0.01))


@pytest.mark.parametrize(
    "name",
    sorted({name for name, _ in SHARED} | {"Lion", "Shampoo", "Newton", "LBFGS"}),
)
def test_multi_element_tensor_lr_raises_like_torch(name):
    lr = torch.tensor([0.1, 0.2])
    params = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        getattr(co, name)(params, lr=lr)
    if hasattr(torch.optim, name):
        with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
            getattr(torch.optim, name)(params, lr=lr)


@pytest.mark.parametrize("direction", ["torch-to-course", "course-to-torch"])
@pytest.mark.parametrize(("name", "kwargs"), SHARED, ids=IDS)
def test_state_dict_saved_by_one_library_resumes_in_the_other(name, kwargs, direction):
    first, second = (torch.optim, co) if direction == "torch-to-course" else (co, torch.optim)

    def make(library, a, b):
        return getattr(library, name)(_groups(kwargs)(a, b))

    expected, _ = train(lambda a, b: make(first, a, b), 2 * STEPS)
    params, groups, set_grads = make_problem(steps=2 * STEPS)
    optimizer = make(first, *groups)
    for step in range(STEPS):
        set_grads(step)
        optimizer.step()
    file = io.BytesIO()
    torch.save(optimizer.state_dict(), file)
    file.seek(0)
    resumed = make(second, *groups)
    resumed.load_state_dict(torch.load(file))
    for step in range(STEPS, 2 * STEPS):
        set_grads(step)
        resumed.step()
    _assert_close(params, expected)
    if name != "SGD":  # torch's SGD counts no steps; the others count each parameter's own
        assert int(resumed.state[params[5]]["step"]) == STEPS  # gradients on even steps only
        assert int(resumed.state[params[0]]["step"]) == 2 * STEPS
