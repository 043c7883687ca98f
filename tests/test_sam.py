"""course_lib.optim.SAM against an independent SAM written here on flat float64 vectors."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

import course_lib.optim as co
from course_lib.sharpness import flatten, unflatten

STEPS = 15


def make_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    return model, x, y


def reference_sam(model, x, y, *, rhos, lr, momentum):
    """SAM + heavy-ball SGD: e = rho g/||g|| (norm over all weights, rho per weight tensor),
    g' = grad L(w + e), b = momentum b + g', w = w - lr b."""
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach().clone() for p in model.parameters()]

    def loss(flat):
        weights = dict(zip(names, unflatten(flat, params), strict=True))
        return nn.functional.mse_loss(functional_call(model, weights, (x,)), y)

    rho = flatten([torch.full_like(p, r) for p, r in zip(params, rhos, strict=True)])
    w = flatten(params)
    buffer = torch.zeros_like(w)
    for _ in range(STEPS):
        g = grad(loss)(w)
        g_sam = grad(loss)(w + rho * g / g.norm())
        buffer = momentum * buffer + g_sam
        w = w - lr * buffer
    return w


@pytest.mark.parametrize("rhos", [(0.05,) * 4, (0.2, 0.2, 0.0, 0.0)], ids=["one", "two-groups"])
def test_sam_with_sgd_matches_independent_implementation(rhos):
    model, x, y = make_problem()
    expected = reference_sam(model, x, y, rhos=rhos, lr=0.1, momentum=0.9)
    params = list(model.parameters())
    groups = [dict(params=params[:2], rho=rhos[0]), dict(params=params[2:], rho=rhos[2])]
    optimizer = co.SAM(groups, torch.optim.SGD, lr=0.1, momentum=0.9)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(STEPS):
        optimizer.step(closure)
    torch.testing.assert_close(flatten([p.detach() for p in params]), expected, rtol=1e-10, atol=0)
    # and SAM differs from plain SGD here (rho matters)
    plain = reference_sam(*make_problem(), rhos=(0.0,) * 4, lr=0.1, momentum=0.9)
    assert (plain - expected).abs().max() > 1e-4


def test_sam_step_needs_a_closure_and_rho_is_checked():
    model, _, _ = make_problem()
    with pytest.raises(ValueError, match="rho"):
        co.SAM(model.parameters(), torch.optim.SGD, rho=-0.1, lr=0.1)
    with pytest.raises(ValueError, match="closure"):
        co.SAM(model.parameters(), torch.optim.SGD, lr=0.1).step()


def test_sam_shares_param_groups_with_base_and_wraps_course_optimizers():
    model, x, y = make_problem()
    optimizer = co.SAM(model.parameters(), co.Adam, rho=0.05, lr=0.01)
    optimizer.param_groups[0]["lr"] = 0.02  # as a scheduler would
    assert optimizer.base_optimizer.param_groups[0]["lr"] == 0.02

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = optimizer.step(closure).item()
    for _ in range(20):
        last = optimizer.step(closure).item()
    assert last < first
    assert set(optimizer.state_dict()["state"]) == set(range(4))
