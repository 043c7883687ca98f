"""Adafactor's formulas recomputed in NumPy (float64), including the optional momentum beta1.

The NumPy version is written from the math (Shazeer & Stern 2018 with torch's choices, see
course_lib/optim/adafactor.py); with beta1=None it must agree with torch.optim.Adafactor,
which checks the reference itself, and with beta1 it must agree with course_lib's Adafactor.
"""

import functools

import numpy as np
import pytest
import torch
from optim_problem import make_problem, param_groups, train

import course_lib.optim as co

STEPS = 200
GROUP_A = dict(lr=0.05, beta2_decay=-0.6, eps=(1e-20, 1e-2), d=1.5, weight_decay=0.01)
GROUP_B = dict(lr=0.02)
DEFAULTS = dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0)


def rms(x):
    return np.sqrt(np.mean(x**2))


def adafactor_numpy(params, groups, set_grads, beta1):
    """Adafactor on NumPy copies of ``params``; returns the final arrays."""
    x = [p.detach().numpy().copy() for p in params]
    index = {id(p): i for i, p in enumerate(params)}
    state = {}
    for step in range(STEPS):
        set_grads(step)
        for group, hyper in zip(groups, (GROUP_A, GROUP_B), strict=True):
            h = dict(DEFAULTS, **hyper)
            eps1 = np.finfo(np.float64).eps if h["eps"][0] is None else h["eps"][0]
            eps2 = h["eps"][1]
            for p in group:
                if p.grad is None:
                    continue
                i = index[id(p)]
                g = p.grad.numpy()
                s = state.setdefault(i, dict(t=0, m=np.zeros_like(g)))
                s["t"] += 1
                t = s["t"]
                w = t ** h["beta2_decay"]  # 1 - beta2_t
                alpha = max(eps2, rms(x[i])) * min(h["lr"], 1 / np.sqrt(t))
                x[i] = x[i] * (1 - h["lr"] * h["weight_decay"])
                if g.ndim >= 2:
                    r = np.mean(g**2, axis=-1, keepdims=True)
                    c = np.mean(g**2, axis=-2, keepdims=True)
                    s["r"] = (1 - w) * s.get("r", 0) + w * r
                    s["c"] = (1 - w) * s.get("c", 0) + w * c
                    normaliser = np.maximum(np.mean(s["r"], axis=-2, keepdims=True), eps1)
                    v_hat = s["r"] * s["c"] / normaliser
                else:
                    s["v"] = (1 - w) * s.get("v", 0) + w * g**2
                    v_hat = s["v"]
                u = g / np.sqrt(np.maximum(v_hat, eps1**2))
                u_hat = u / max(1.0, rms(u) / h["d"])
                if beta1 is None:
                    x[i] = x[i] - alpha * u_hat
                else:
                    s["m"] = beta1 * s["m"] + (1 - beta1) * alpha * u_hat
                    x[i] = x[i] - s["m"]
            # keep torch's parameters in step with the reference (gradients depend on them)
            for p in group:
                if p.grad is not None:
                    with torch.no_grad():
                        p.copy_(torch.from_numpy(np.asarray(x[index[id(p)]])))
    return x


@functools.cache
def numpy_reference(beta1):
    params, groups, set_grads = make_problem(torch.float64, STEPS)
    return adafactor_numpy(params, groups, set_grads, beta1)


def test_numpy_reference_agrees_with_torch_optim():
    expected = numpy_reference(beta1=None)
    got, _ = train(lambda a, b: torch.optim.Adafactor(param_groups(GROUP_A, GROUP_B)(a, b)))
    for p, x in zip(got, expected, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-10, atol=0)


@pytest.mark.parametrize("beta1", [None, 0.0, 0.9])
def test_course_adafactor_agrees_with_numpy_reference(beta1):
    expected = numpy_reference(beta1)
    groups = param_groups(dict(GROUP_A, beta1=beta1), dict(GROUP_B, beta1=beta1))
    got, opt = train(lambda a, b: co.Adafactor(groups(a, b)))
    for p, x in zip(got, expected, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-10, atol=0)
    has_momentum = [("exp_avg" in s) for s in opt.state.values()]
    assert has_momentum and all(h == (beta1 is not None) for h in has_momentum)


def test_momentum_changes_the_trajectory():
    """beta1 is not a no-op: 0.9 and None give different parameters."""
    a = numpy_reference(0.9)
    b = numpy_reference(None)
    assert max(np.abs(x - y).max() for x, y in zip(a, b, strict=True)) > 1e-3


def test_factored_state_is_row_and_column_sized():
    """A (n, m) matrix keeps n + m second-moment numbers; a 4-D tensor factors its last two."""
    matrix = torch.zeros(6, 10, requires_grad=True)
    tensor4 = torch.zeros(2, 3, 6, 10, requires_grad=True)
    vector = torch.zeros(7, requires_grad=True)
    opt = co.Adafactor([matrix, tensor4, vector])
    for p in (matrix, tensor4, vector):
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(0))
    opt.step()
    assert opt.state[matrix]["row_var"].shape == (6, 1)
    assert opt.state[matrix]["col_var"].shape == (1, 10)
    assert opt.state[tensor4]["row_var"].shape == (2, 3, 6, 1)
    assert opt.state[tensor4]["col_var"].shape == (2, 3, 1, 10)
    assert opt.state[vector]["variance"].shape == (7,)
