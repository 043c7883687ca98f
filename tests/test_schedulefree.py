"""course_lib.optim.AdamWScheduleFree against the schedulefree package (a test-only
dependency, pinned in requirements.txt): 200 float64 steps on the shared problem, both in
train mode (y) and, every 25 steps, in eval mode (x), equal to rtol 1e-10."""

import io

import pytest
import torch
from optim_problem import make_problem, param_groups

import course_lib.optim as co

schedulefree = pytest.importorskip("schedulefree")

STEPS = 200
CONFIGS = [
    (dict(lr=0.02), dict(lr=0.01)),
    (
        dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, warmup_steps=30),
        dict(lr=0.01, r=1.0, weight_lr_power=1.0, warmup_steps=10),
    ),
    (dict(lr=0.03, weight_decay=0.01, r=0.5), dict(lr=0.0, warmup_steps=5)),
]


def run(make_optimizer, *, negate=False, check_every=25):
    """Train STEPS steps; return the parameters (y) at every step and x every check_every."""
    all_params, groups, set_grads = make_problem(steps=STEPS)
    optimizer = make_optimizer(*groups)
    optimizer.train()
    ys, xs = [], []
    for step in range(STEPS):
        set_grads(step)
        if negate:
            for p in all_params:
                if p.grad is not None:
                    p.grad.neg_()
        optimizer.step()
        ys.append([p.detach().clone() for p in all_params])
        if step % check_every == 0:
            optimizer.eval()
            xs.append([p.detach().clone() for p in all_params])
            optimizer.train()
    return ys, xs, optimizer, all_params


def assert_all_close(got, expected):
    for got_step, expected_step in zip(got, expected, strict=True):
        for p, p_ref in zip(got_step, expected_step, strict=True):
            torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per-tensor"])
@pytest.mark.parametrize(("kwargs_a", "kwargs_b"), CONFIGS)
def test_matches_schedulefree_package_step_by_step(kwargs_a, kwargs_b, foreach):
    def make(package):
        cls = schedulefree.AdamWScheduleFree if package else co.AdamWScheduleFree
        return lambda a, b: cls(param_groups(kwargs_a, kwargs_b)(a, b), foreach=foreach)

    ys_ref, xs_ref, ref, _ = run(make(package=True))
    ys, xs, ours, params = run(make(package=False))
    assert_all_close(ys, ys_ref)
    assert_all_close(xs, xs_ref)
    for group, ref_group in zip(ours.param_groups, ref.param_groups, strict=True):
        for key in ("k", "weight_sum", "lr_max", "scheduled_lr"):
            assert group[key] == pytest.approx(ref_group[key], rel=1e-12)
    # the unused parameter has no state; the others moved
    assert ours.state.get(params[4], {}) == {}
    assert not torch.equal(ys[-1][2], make_problem()[0][2])  # group A always trains


def test_maximize_equals_the_package_on_negated_gradients():
    kwargs = dict(lr=0.02, weight_decay=0.05)
    ys_ref, xs_ref, _, _ = run(
        lambda a, b: schedulefree.AdamWScheduleFree(param_groups(kwargs, kwargs)(a, b)),
        negate=True,
    )
    ys, xs, _, _ = run(
        lambda a, b: co.AdamWScheduleFree(param_groups(kwargs, kwargs)(a, b), maximize=True)
    )
    assert_all_close(ys, ys_ref)
    assert_all_close(xs, xs_ref)


def test_eval_then_train_restores_the_parameters_and_x_is_the_average():
    """eval() moves y to x; train() moves back. With warmup off and r = weight_lr_power = 0
    every iterate weighs the same, so x is the plain running mean of z_1..z_t."""
    p = torch.randn(6, dtype=torch.float64, requires_grad=True)
    opt = co.AdamWScheduleFree([p], lr=0.1, weight_lr_power=0.0)
    opt.train()
    zs = []
    for step in range(20):
        p.grad = torch.sin(p.detach() * (step + 1))
        opt.step()
        zs.append(opt.state[p]["z"].clone())
    y = p.detach().clone()
    opt.eval()
    torch.testing.assert_close(p.detach(), torch.stack(zs).mean(0), rtol=1e-12, atol=1e-14)
    opt.train()
    torch.testing.assert_close(p.detach(), y, rtol=1e-12, atol=1e-14)


def test_step_in_eval_mode_raises():
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    with pytest.raises(RuntimeError, match="train"):
        co.AdamWScheduleFree([p]).step()


def test_update_leaves_grad_untouched():
    """The package divides p.grad in place; ours must not."""
    p = torch.randn(4, dtype=torch.float64, requires_grad=True)
    opt = co.AdamWScheduleFree([p], lr=0.1)
    opt.train()
    p.grad = torch.ones_like(p)
    opt.step()
    assert torch.equal(p.grad, torch.ones_like(p))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_resume_is_bit_identical(dtype):
    """Save in eval mode (as the package asks), load, train() again, continue: the same
    bits as continuing without saving."""
    kwargs = dict(lr=0.05, weight_decay=0.01, warmup_steps=20)

    def make(a, b):
        return co.AdamWScheduleFree(param_groups(kwargs, dict(lr=0.02))(a, b))

    def train_steps(optimizer, set_grads, steps):
        optimizer.train()
        for step in steps:
            set_grads(step)
            optimizer.step()
        optimizer.eval()

    # the uninterrupted run goes through eval() and train() at step 50 too (y -> x -> y
    # rounds), only without saving and loading
    expected, groups, set_grads = make_problem(dtype, steps=100)
    uninterrupted = make(*groups)
    train_steps(uninterrupted, set_grads, range(50))
    train_steps(uninterrupted, set_grads, range(50, 100))

    params, groups, set_grads = make_problem(dtype, steps=100)
    optimizer = make(*groups)
    train_steps(optimizer, set_grads, range(50))
    file = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optim": optimizer.state_dict()}, file)
    file.seek(0)
    saved = torch.load(file)
    params, groups, set_grads = make_problem(dtype, steps=100)
    with torch.no_grad():
        for p, value in zip(params, saved["params"], strict=True):
            p.copy_(value)
    resumed = make(*groups)
    resumed.load_state_dict(saved["optim"])
    train_steps(resumed, set_grads, range(50, 100))
    for p, p_ref in zip(params, expected, strict=True):
        assert p.dtype == dtype
        assert torch.equal(p, p_ref)
