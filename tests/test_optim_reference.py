"""course_lib.optim against torch.optim: 200 float64 steps, trajectories and state equal.

Every optimizer runs on parameters of shape (), (n,), (n, m) and a 4-D tensor, split into
two parameter groups with different, non-default hyperparameters. One parameter never gets
a gradient (it must be skipped: unchanged, no state) and one gets a gradient only on even
steps (so its step count lags and the multi-tensor path must batch it separately). Both the
default multi-tensor path (foreach) and the readable per-tensor path are checked.
"""

import inspect

import pytest
import torch
from optim_problem import make_problem, param_groups, train

import course_lib.optim as co

STEPS = 200

# (name, hyperparameters of group A, of group B[, constructor defaults])
CASES = [
    ("SGD", dict(lr=0.05), dict(lr=0.02, weight_decay=0.1)),
    (
        "SGD",
        dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01),
        dict(lr=0.01, momentum=0.8, dampening=0.3),
    ),
    (
        "Adagrad",
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, eps=1e-8),
        dict(lr=0.05),
        # torch.optim.Adagrad reads initial_accumulator_value from the constructor only
        dict(initial_accumulator_value=0.1),
    ),
    (
        "RMSprop",
        dict(lr=0.005, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01),
        dict(lr=0.01, eps=1e-6),
    ),
    ("RMSprop", dict(lr=0.003, centered=True), dict(lr=0.002, momentum=0.7, weight_decay=0.1)),
    (
        "Adam",
        dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05, amsgrad=True),
        dict(lr=0.01),
    ),
    (
        "AdamW",
        dict(lr=0.02, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.1, amsgrad=True),
        dict(lr=0.01),
    ),
    ("RAdam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05), dict(lr=0.01)),
    (
        "RAdam",
        dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
        dict(lr=0.005, betas=(0.95, 0.9)),
    ),
    (
        "NAdam",
        dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05, momentum_decay=0.01),
        dict(lr=0.01),
    ),
    (
        "NAdam",
        dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
        dict(lr=0.005, betas=(0.95, 0.9), momentum_decay=0.0),
    ),
    (
        "Adafactor",
        dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.01),
        dict(lr=0.02),
    ),
]


# each case on the default (multi-tensor) path and on the readable per-tensor path;
# Adafactor has only the per-tensor path (factoring is per tensor)
PATHS = [
    pytest.param(*case[:3], case[3] if len(case) > 3 else {}, foreach, id=f"{case[0]}{i}-{path}")
    for i, case in enumerate(CASES)
    for foreach, path in [(None, "default"), (False, "per-tensor")]
    if not (case[0] == "Adafactor" and foreach is False)
]


@pytest.mark.parametrize(("name", "kwargs_a", "kwargs_b", "defaults", "foreach"), PATHS)
def test_matches_torch_optim(name, kwargs_a, kwargs_b, defaults, foreach):
    groups = param_groups(kwargs_a, kwargs_b)
    expected, torch_opt = train(lambda a, b: getattr(torch.optim, name)(groups(a, b), **defaults))
    extra = dict(defaults) if foreach is None else dict(defaults, foreach=foreach)
    got, our_opt = train(lambda a, b: getattr(co, name)(groups(a, b), **extra))

    for p_ref, p in zip(expected, got, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)
    for p_ref, p in zip(expected, got, strict=True):
        ref_state, state = torch_opt.state.get(p_ref, {}), our_opt.state.get(p, {})
        if name == "Adagrad" and p_ref is expected[4]:
            ref_state = {}  # torch.optim.Adagrad creates state eagerly, even for unused params
        assert set(state) - {"step"} == set(ref_state) - {"step"}, (name, state, ref_state)
        for key, value in ref_state.items():
            if key == "step":
                assert state["step"] == value.item()
            else:
                torch.testing.assert_close(state[key], value, rtol=1e-10, atol=0)
    # the parameter that never had a gradient did not move and has no state
    assert torch.equal(got[4], make_problem()[0][4])
    assert our_opt.state.get(got[4], {}) == {}
    # the one with a gradient on even steps only took half the steps
    assert our_opt.state[got[5]]["step"] == STEPS // 2


@pytest.mark.parametrize("name", ["RAdam", "NAdam"])
def test_signature_and_defaults_match_torch(name):
    """Same arguments, in the same order, with the same defaults (torch's compile-only
    switches capturable and differentiable aside, and course_lib's fused, which every
    course_lib optimizer takes)."""

    def arguments(cls):
        params = inspect.signature(cls).parameters.values()
        skip = {"capturable", "differentiable", "fused"}
        return [(p.name, p.default, p.kind) for p in params if p.name not in skip]

    assert arguments(getattr(co, name)) == arguments(getattr(torch.optim, name))


def test_nesterov_sgd_leaves_grad_untouched():
    """The update must not write into param.grad (torch's foreach path does, by design)."""
    p = torch.randn(4, dtype=torch.float64, requires_grad=True)
    opt = co.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(3):
        opt.zero_grad()
        (p**2).sum().backward()
        grad = p.grad.clone()
        opt.step()
        assert torch.equal(p.grad, grad)


def lion_automl(params, exp_avgs, grads, *, lr, beta1, beta2, weight_decay):
    """The update of google/automl's lion_pytorch.py, written out independently."""
    for p, m, g in zip(params, exp_avgs, grads, strict=True):
        if g is None:
            continue
        p.mul_(1 - lr * weight_decay)
        c = m * beta1 + g * (1 - beta1)
        p.add_(torch.sign(c), alpha=-lr)
        m.mul_(beta2).add_(g, alpha=1 - beta2)


LION_A = dict(lr=3e-3, betas=(0.95, 0.98), weight_decay=0.3)
LION_B = dict(lr=1e-3)


@pytest.mark.parametrize("foreach", [None, False], ids=["default-foreach", "per-tensor"])
def test_lion_matches_automl_update(foreach):
    extra = {} if foreach is None else dict(foreach=foreach)
    got, opt = train(lambda a, b: co.Lion(param_groups(LION_A, LION_B)(a, b), **extra))

    ref_params, (group_a, group_b), set_grads = make_problem()
    hyper = [dict(dict(betas=(0.9, 0.99), weight_decay=0.0), **h) for h in (LION_A, LION_B)]
    moments = [[torch.zeros_like(p) for p in g] for g in (group_a, group_b)]
    for step in range(STEPS):
        set_grads(step)
        with torch.no_grad():
            for group, m, h in zip((group_a, group_b), moments, hyper, strict=True):
                beta1, beta2 = h["betas"]
                grads = [p.grad for p in group]
                lion_automl(
                    group,
                    m,
                    grads,
                    lr=h["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=h["weight_decay"],
                )

    for p_ref, p in zip(ref_params, got, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)
    for group, group_moments in zip((group_a, group_b), moments, strict=True):
        for p_ref, m in zip(group, group_moments, strict=True):
            p = got[[id(q) for q in ref_params].index(id(p_ref))]
            if p_ref is ref_params[4]:
                assert opt.state.get(p, {}) == {}
            else:
                torch.testing.assert_close(opt.state[p]["exp_avg"], m, rtol=1e-10, atol=0)


def test_lion_matches_lion_pytorch():
    """A second reference: the lion-pytorch package's Lion, same groups, 200 steps."""
    import lion_pytorch  # the test extra installs it

    got, _ = train(lambda a, b: co.Lion(param_groups(LION_A, LION_B)(a, b)))
    expected, _ = train(lambda a, b: lion_pytorch.Lion(param_groups(LION_A, LION_B)(a, b)))
    for p, p_ref in zip(got, expected, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)
