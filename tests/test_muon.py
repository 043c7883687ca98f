"""course_lib.optim.Muon against torch.optim.Muon (torch 2.13): trajectories over many steps
and configurations, state_dict round trips in both directions, ValueErrors; newton_schulz_
against the SVD polar factor."""

import io

import pytest
import torch

from course_lib.optim import Muon, newton_schulz_
from course_lib.optim.muon import CUBIC_COEFFICIENTS

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = [(5, 3), (4, 4), (3, 7), (6, 2)]  # tall, square, wide, tall


def make_problem(dtype=torch.float64, steps=60):
    """Matrices (and one that never gets a gradient, one that gets it on even steps only),
    and set_grads(step): the closed-form gradient of sum s*(W-T)^2 + 0.05 W^4 + noise.W."""
    gen = torch.Generator().manual_seed(0)

    def draw(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)

    params = [draw(s).requires_grad_() for s in SHAPES]
    targets = [draw(s) for s in SHAPES]
    scales = [draw(s).abs() * 2 + 0.1 for s in SHAPES]
    noise = [[0.1 * draw(s) for s in SHAPES] for _ in range(steps)]
    unused = draw((2, 3)).requires_grad_()

    def set_grads(step):
        with torch.no_grad():
            for i, (p, t, s) in enumerate(zip(params, targets, scales, strict=True)):
                if i == 3 and step % 2 == 1:
                    p.grad = None
                else:
                    p.grad = 2 * s * (p - t) + 0.2 * p**3 + noise[step][i]

    groups = ([params[0], params[2], unused], [params[1], params[3]])
    return [*params, unused], groups, set_grads


def run(make_optimizer, steps=60, dtype=torch.float64, flip=False, start=0, optimizer=None):
    params, groups, set_grads = make_problem(dtype, steps)
    optimizer = make_optimizer(*groups)
    for step in range(steps):
        set_grads(step)
        if flip:  # the gradient of -loss, for comparing maximize=True
            for p in params:
                if p.grad is not None:
                    p.grad.neg_()
        optimizer.step()
    return params, optimizer


CONFIGS = [
    ({}, {}),
    (dict(lr=0.02), dict(lr=0.05, weight_decay=0.0)),
    (dict(lr=0.02, nesterov=False), dict(lr=0.01, momentum=0.9, nesterov=False)),
    (dict(lr=0.02, momentum=0.0), dict(lr=0.03, momentum=0.0, nesterov=False)),
    (dict(lr=0.02, adjust_lr_fn="original"), dict(lr=0.02, adjust_lr_fn="match_rms_adamw")),
    (dict(lr=0.01, adjust_lr_fn="match_rms_adamw", weight_decay=0.01), dict(lr=0.01)),
    (dict(lr=0.02, ns_steps=0), dict(lr=0.02, ns_steps=1)),
    (dict(lr=0.02, ns_steps=10), dict(lr=0.02, ns_coefficients=CUBIC_COEFFICIENTS, ns_steps=8)),
    (dict(lr=0.02, eps=1e-3, momentum=0.5), dict(lr=0.02, eps=0.0, weight_decay=1.0)),
]


def torch_and_ours(kwargs_a, kwargs_b, dtype=torch.float64, **ours):
    def make(cls, extra):
        return lambda a, b: cls(
            [dict(params=a, **kwargs_a, **extra), dict(params=b, **kwargs_b, **extra)]
        )

    expected, torch_opt = run(make(torch.optim.Muon, {}), dtype=dtype)
    got, opt = run(make(Muon, ours), dtype=dtype, flip=ours.get("maximize", False))
    return expected, torch_opt, got, opt


@pytest.mark.parametrize(("kwargs_a", "kwargs_b"), CONFIGS)
def test_matches_torch_muon(kwargs_a, kwargs_b):
    expected, torch_opt, got, opt = torch_and_ours(kwargs_a, kwargs_b)
    for p, p_ref in zip(got, expected, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)
        ref_state = torch_opt.state.get(p_ref, {})
        assert set(opt.state.get(p, {})) - {"step"} == set(ref_state)
        for key, value in ref_state.items():
            torch.testing.assert_close(opt.state[p][key], value, rtol=1e-10, atol=0)
    assert not torch.equal(got[0], make_problem()[0][0])  # the run moved the parameters
    assert torch.equal(got[4], make_problem()[0][4])  # a parameter without grad did not move


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_matches_torch_muon_in_other_dtypes(dtype):
    # bfloat16 with nesterov=False is left out: there torch.optim.Muon normalises its own
    # momentum buffer in place (grad.bfloat16() returns the buffer itself), which ours does not
    expected, _, got, _ = torch_and_ours(dict(lr=0.02), dict(lr=0.01, momentum=0.9), dtype)
    for p, p_ref in zip(got, expected, strict=True):
        assert p.dtype == dtype
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)


def test_maximize_is_minimizing_the_negated_loss():
    expected, _, got, _ = torch_and_ours(dict(lr=0.02), dict(lr=0.01), maximize=True)
    for p, p_ref in zip(got, expected, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)


def saved(params, optimizer):
    file = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optim": optimizer.state_dict()}, file)
    file.seek(0)
    return torch.load(file)


@pytest.mark.parametrize(
    ("first", "second"),
    [(Muon, Muon), (torch.optim.Muon, Muon), (Muon, torch.optim.Muon)],
    ids=["ours->ours", "torch->ours", "ours->torch"],
)
def test_state_dict_resume_is_bit_identical(first, second):
    kwargs_a, kwargs_b = dict(lr=0.02, weight_decay=0.01), dict(lr=0.01, nesterov=False)

    def make(cls):
        return lambda a, b: cls([dict(params=a, **kwargs_a), dict(params=b, **kwargs_b)])

    expected, _ = run(make(second), steps=60)

    params, groups, set_grads = make_problem(steps=60)
    optimizer = make(first)(*groups)
    for step in range(30):
        set_grads(step)
        optimizer.step()
    checkpoint = saved(params, optimizer)

    params, groups, set_grads = make_problem(steps=60)
    with torch.no_grad():
        for p, value in zip(params, checkpoint["params"], strict=True):
            p.copy_(value)
    resumed = make(second)(*groups)
    resumed.load_state_dict(checkpoint["optim"])
    for step in range(30, 60):
        set_grads(step)
        resumed.step()
    for p, p_ref in zip(params, expected, strict=True):
        assert torch.equal(p, p_ref)


INVALID = [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=torch.tensor([1e-3, 1e-3])), "lr"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(momentum=-0.1), "momentum"),
    (dict(eps=-1e-7), "eps"),
    (dict(ns_coefficients=(1.5, -0.5)), "ns_coefficients"),
    (dict(ns_steps=100), "ns_steps"),
    (dict(ns_steps=2.5), "ns_steps"),
    (dict(adjust_lr_fn="spectral"), "adjust_lr_fn"),
]


@pytest.mark.parametrize(("kwargs", "name"), INVALID)
def test_invalid_hyperparameters_raise_like_torch(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Muon([torch.zeros(3, 2, requires_grad=True)], **kwargs)
    if name == "eps" or kwargs.get("ns_steps") == 2.5:
        return  # torch accepts these
    with pytest.raises(ValueError):  # torch raises some at construction, some at the step
        p = torch.zeros(3, 2, requires_grad=True)
        p.grad = torch.ones_like(p)
        torch.optim.Muon([p], **kwargs).step()


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()])
def test_only_matrices_are_accepted(shape):
    for cls in (Muon, torch.optim.Muon):
        with pytest.raises(ValueError, match="2"):
            cls([torch.zeros(shape, requires_grad=True)])
    optimizer = Muon([torch.zeros(2, 2, requires_grad=True)])
    with pytest.raises(ValueError, match="params"):
        optimizer.add_param_group(dict(params=[torch.zeros(shape, requires_grad=True)]))


@pytest.mark.parametrize("shape", [(8, 8), (12, 5), (5, 12)])
def test_cubic_newton_schulz_converges_to_the_polar_factor(shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(x, full_matrices=False)
    out = newton_schulz_(x.clone(), CUBIC_COEFFICIENTS, steps=60)
    torch.testing.assert_close(out, u @ vh, rtol=0, atol=1e-10)


def test_quintic_newton_schulz_lands_in_a_band_around_one():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 32, generator=gen, dtype=torch.float64)
    out = newton_schulz_(x.clone())  # Muon's 5 quintic steps, in float64
    u, _, vh = torch.linalg.svd(x, full_matrices=False)
    singular_values = torch.linalg.svdvals(out)
    assert 0.6 < singular_values.min() and singular_values.max() < 1.3
    # the singular vectors are those of x: out = U diag(s') V^T with s' > 0
    s_prime = torch.diagonal(u.T @ out @ vh.T)
    torch.testing.assert_close(u @ torch.diag(s_prime) @ vh, out, rtol=0, atol=1e-12)


def test_newton_schulz_works_in_place_and_keeps_the_dtype():
    x = torch.randn(6, 4, dtype=torch.float32)
    out = newton_schulz_(x)
    assert out is x and x.dtype == torch.float32
