"""LBFGS iterates equal torch.optim.LBFGS's in float64 (Rosenbrock, logistic regression)."""

import copy

import pytest
import torch
from sklearn.datasets import load_digits

from course_lib.optim.lbfgs import LBFGS

pytestmark = pytest.mark.usefixtures("one_thread")


def rosenbrock(x):
    """The n-dimensional Rosenbrock function, minimum 0 at (1, ..., 1)."""
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def digits_problem():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]  # a third of the set keeps the test fast
    X = torch.tensor(X, dtype=torch.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    return X, torch.tensor(y)


DIGITS = digits_problem()


def make_logistic_regression(seed):
    gen = torch.Generator().manual_seed(seed)
    W = (0.01 * torch.randn(64, 10, generator=gen, dtype=torch.float64)).requires_grad_(True)
    b = torch.zeros(10, dtype=torch.float64, requires_grad=True)

    def loss_fn(params):
        W, b = params
        X, y = DIGITS
        logits = X @ W + b
        return torch.nn.functional.cross_entropy(logits, y) + 1e-3 * (W**2).sum()

    return [W, b], loss_fn


def make_rosenbrock(seed):
    start = [-1.2, 1.0] if seed == 0 else torch.linspace(-1.5, 1.5, 8).tolist()
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    return [x], lambda params: rosenbrock(params[0])


def run(optimizer_class, make_problem, n_steps, **kwargs):
    """Parameters and returned losses after each of ``n_steps`` calls to step()."""
    params, loss_fn = make_problem()
    opt = optimizer_class(params, **kwargs)

    def closure():
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    iterates, losses = [], []
    for _ in range(n_steps):
        losses.append(opt.step(closure).item())
        iterates.append(torch.cat([p.detach().reshape(-1) for p in params]))
    return iterates, losses, opt


PROBLEMS = {
    "rosenbrock-2d": (lambda: make_rosenbrock(0), 1e-3),
    "rosenbrock-8d": (lambda: make_rosenbrock(1), 1e-3),
    "digits-logistic": (lambda: make_logistic_regression(0), 1.0),
}


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_iterates_equal_torch_lbfgs(name, line_search_fn):
    make_problem, lr = PROBLEMS[name]
    if line_search_fn == "strong_wolfe":
        lr = 1.0
    kwargs = dict(lr=lr, max_iter=4, history_size=3, line_search_fn=line_search_fn)
    ours, our_losses, our_opt = run(LBFGS, make_problem, 10, **kwargs)
    theirs, their_losses, their_opt = run(torch.optim.LBFGS, make_problem, 10, **kwargs)
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12, msg=f"step {k}")
    assert our_losses == pytest.approx(their_losses, rel=1e-8)
    ours_state = our_opt.state[our_opt.param_groups[0]["params"][0]]
    theirs_state = their_opt.state[their_opt.param_groups[0]["params"][0]]
    assert ours_state["func_evals"] == theirs_state["func_evals"]
    assert ours_state["n_iter"] == theirs_state["n_iter"]
    assert our_losses[-1] < our_losses[0]  # and it optimizes


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_default_settings_match_torch_to_convergence_on_rosenbrock(line_search_fn):
    ours, losses, _ = run(LBFGS, lambda: make_rosenbrock(0), 5, line_search_fn=line_search_fn)
    theirs, _, _ = run(
        torch.optim.LBFGS, lambda: make_rosenbrock(0), 5, line_search_fn=line_search_fn
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    if line_search_fn == "strong_wolfe":
        assert losses[-1] < 1e-8  # at the minimum (1, 1)


def test_state_dict_round_trip_resumes_bit_identically():
    params, loss_fn = make_logistic_regression(1)
    opt = LBFGS(params, max_iter=3, history_size=4, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    saved_params = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(opt.state_dict())
    for _ in range(3):
        opt.step(closure)
    uninterrupted = [p.detach().clone() for p in params]

    with torch.no_grad():
        for p, s in zip(params, saved_params, strict=True):
            p.copy_(s)
    opt = LBFGS(params, max_iter=3, history_size=4, line_search_fn="strong_wolfe")
    opt.load_state_dict(saved_state)
    for _ in range(3):
        opt.step(closure)
    for p, u in zip(params, uninterrupted, strict=True):
        assert torch.equal(p.detach(), u)


@pytest.mark.parametrize("first", ["torch", "course"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_saved_by_one_library_resumes_in_the_other(first, line_search_fn):
    """3 steps of one library, its state_dict loaded by the other, 3 more steps: the iterates
    of 6 uninterrupted steps of the first (the libraries agree to rounding)."""
    libraries = (torch.optim.LBFGS, LBFGS) if first == "torch" else (LBFGS, torch.optim.LBFGS)
    settings = dict(max_iter=3, history_size=4, line_search_fn=line_search_fn)
    expected, _, _ = run(libraries[0], lambda: make_logistic_regression(1), 6, **settings)
    params, loss_fn = make_logistic_regression(1)

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    optimizer = libraries[0](params, **settings)
    for _ in range(3):
        optimizer.step(closure)
    state = copy.deepcopy(optimizer.state_dict())
    optimizer = libraries[1](params, **settings)
    optimizer.load_state_dict(state)
    for _ in range(3):
        optimizer.step(closure)
    got = torch.cat([p.detach().reshape(-1) for p in params])
    torch.testing.assert_close(got, expected[-1], rtol=1e-8, atol=1e-12)


def test_parameter_without_grad_is_not_moved_and_state_follows_dtype():
    x = torch.tensor([-1.2, 1.0], requires_grad=True)  # float32
    unused = torch.ones(3, requires_grad=True)
    opt = LBFGS([x, unused], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.equal(unused.detach(), torch.ones(3))
    state = opt.state[x]
    assert state["d"].dtype == torch.float32 and state["prev_flat_grad"].dtype == torch.float32
    assert all(s.dtype == torch.float32 for s in state["old_stps"])
    assert rosenbrock(x).item() < rosenbrock(torch.tensor([-1.2, 1.0])).item()


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(history_size=0), "history_size"),
        (dict(line_search_fn="armijo"), "line_search_fn"),
        (dict(lr=-1.0), "lr"),
        (dict(max_iter=0), "max_iter"),
        (dict(max_eval=0), "max_eval"),
        (dict(tolerance_grad=-1.0), "tolerance_grad"),
        (dict(tolerance_change=-1.0), "tolerance_change"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LBFGS([torch.zeros(2, requires_grad=True)], **kwargs)


def test_more_than_one_group_is_rejected():
    groups = [
        {"params": [torch.zeros(1, requires_grad=True)]},
        {"params": [torch.zeros(1, requires_grad=True)]},
    ]
    with pytest.raises(ValueError, match="group"):
        LBFGS(groups)
