"""course_lib.sharpness against the full Hessian (torch.func.hessian + torch.linalg.eigvalsh)
of small networks, in float64; the Hutchinson trace's error against its 1/sqrt(s) law."""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from course_lib import sharpness as sh


def full_hessian(model, loss_fn, x, y):
    """The n x n Hessian of the loss over the flattened parameters, by torch.func."""
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach() for p in model.parameters()]

    def loss_of_flat(flat):
        weights = dict(zip(names, sh.unflatten(flat, params), strict=True))
        return loss_fn(functional_call(model, weights, (x,)), y)

    return hessian(loss_of_flat)(sh.flatten(params))


def make_case(seed=0, n=40, width=8):
    """A tanh MLP 6 -> width -> 3 on random data with an MSE loss; its full Hessian."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, width), nn.Tanh(), nn.Linear(width, 3)).double()
    x = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    loss_fn = nn.MSELoss()
    return model, loss_fn, x, y, full_hessian(model, loss_fn, x, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_operator_is_the_hessian(seed):
    model, loss_fn, x, y, H = make_case(seed)
    matvec = sh.hessian_operator(model, loss_fn, x, y)
    v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(matvec(v), H @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lanczos_top_eigenvalue_matches_eigvalsh(seed):
    model, loss_fn, x, y, H = make_case(seed)
    expected = torch.linalg.eigvalsh(H)[-1].item()
    got = sh.sharpness(model, loss_fn, x, y, steps=30, generator=torch.Generator().manual_seed(1))
    assert H.shape[0] > 30  # fewer Lanczos steps than dimensions: not an exact decomposition
    assert got == pytest.approx(expected, rel=1e-6)


def test_lanczos_with_n_steps_gives_the_whole_spectrum():
    model, loss_fn, x, y, H = make_case(0, width=4)
    matvec = sh.hessian_operator(model, loss_fn, x, y)
    values, vectors = sh.lanczos(matvec, sh.random_vector(model), steps=H.shape[0])
    torch.testing.assert_close(values, torch.linalg.eigvalsh(H), rtol=1e-8, atol=1e-10)
    top = vectors[:, -1]
    torch.testing.assert_close(H @ top, values[-1] * top, rtol=0, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_iteration_matches_eigvalsh(seed):
    model, loss_fn, x, y, H = make_case(seed)
    eigenvalues = torch.linalg.eigvalsh(H)
    largest = eigenvalues[eigenvalues.abs().argmax()].item()
    assert largest > 0  # these networks' dominant curvature is positive
    matvec = sh.hessian_operator(model, loss_fn, x, y)
    gen = torch.Generator().manual_seed(3)
    value, vector = sh.power_iteration(matvec, sh.random_vector(model, gen), iters=5000, tol=1e-13)
    assert value == pytest.approx(largest, rel=1e-6)
    assert torch.linalg.vector_norm(vector).item() == pytest.approx(1.0)


def test_preconditioned_sharpness_matches_dense_eigenvalues_of_p_inverse_h():
    """P from a real torch.optim.Adam run; reference: eigenvalues of the non-symmetric
    P^-1 H by torch.linalg.eigvals."""
    model, loss_fn, x, y, _ = make_case(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    H = full_hessian(model, loss_fn, x, y)
    P = sh.adam_preconditioner(optimizer, list(model.parameters()))
    expected = torch.linalg.eigvals(H / P[:, None]).real.max().item()
    matvec = sh.hessian_operator(model, loss_fn, x, y)
    got = sh.preconditioned_sharpness(matvec, P, sh.random_vector(model), steps=40)
    assert got == pytest.approx(expected, rel=1e-6)


def test_adam_preconditioner_is_the_one_adam_divides_by():
    """torch.optim.Adam's step equals -lr * P^-1 m with the P read from its state."""
    model, loss_fn, x, y, _ = make_case(1)
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=0.02, betas=(0.8, 0.95), eps=1e-3)
    for _ in range(5):
        before = sh.flatten([p.detach().clone() for p in params])
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        step = sh.flatten([p.detach() for p in params]) - before
        m = sh.flatten([optimizer.state[p]["exp_avg"] for p in params])
        expected = -0.02 * m / sh.adam_preconditioner(optimizer, params)
        torch.testing.assert_close(step, expected, rtol=1e-9, atol=1e-15)


def test_hutchinson_is_unbiased_and_its_error_shrinks_like_one_over_sqrt_samples():
    model, loss_fn, x, y, H = make_case(0, width=6)
    matvec = sh.hessian_operator(model, loss_fn, x, y)
    like = sh.random_vector(model)
    trace = torch.trace(H).item()
    # the standard deviation of one sample z^T H z, z with random signs
    sigma = math.sqrt(2 * ((H**2).sum() - (torch.diagonal(H) ** 2).sum()).item())
    gen = torch.Generator().manual_seed(0)
    repeats = 50
    rms = {}
    for samples in (2, 32):
        estimates = torch.tensor(
            [
                sh.hutchinson_trace(matvec, like, samples=samples, generator=gen)
                for _ in range(repeats)
            ]
        )
        rms[samples] = (estimates - trace).pow(2).mean().sqrt().item()
        assert rms[samples] == pytest.approx(sigma / math.sqrt(samples), rel=0.3)
        # unbiased: the mean is within 4 standard errors of the true trace
        assert abs(estimates.mean().item() - trace) < 4 * sigma / math.sqrt(samples * repeats)
    assert rms[2] / rms[32] == pytest.approx(4.0, rel=0.3)  # sqrt(32 / 2)
