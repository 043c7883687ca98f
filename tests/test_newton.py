"""Newton against closed-form math: quadratics, Rosenbrock's analytic Hessian."""

import copy

import pytest
import torch

from course_lib.optim.newton import Newton


def random_pd_quadratic(seed, n):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=gen, dtype=torch.float64)
    A = M @ M.T + 0.1 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    x0 = torch.randn(n, generator=gen, dtype=torch.float64)
    return A, b, x0


def test_one_step_reaches_the_minimum_of_a_random_pd_quadratic():
    A, b, x0 = random_pd_quadratic(0, 10)
    # the 10 unknowns spread over a 2x3 matrix and a 4-vector: Newton sees them as one vector
    W = x0[:6].reshape(2, 3).clone().requires_grad_(True)
    v = x0[6:].clone().requires_grad_(True)

    def loss():
        x = torch.cat([W.reshape(-1), v])
        return 0.5 * x @ A @ x - b @ x + 3.0

    Newton([W, v]).step(loss)
    x_star = torch.linalg.solve(A, b)  # closed form: grad = A x - b = 0
    torch.testing.assert_close(
        torch.cat([W.detach().reshape(-1), v.detach()]), x_star, rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("lr,damping", [(1.0, 0.5), (0.3, 0.0), (0.5, 2.0)])
def test_damped_step_solves_the_regularized_system(lr, damping):
    A, b, x0 = random_pd_quadratic(1, 6)
    x = x0.clone().requires_grad_(True)
    Newton([x], lr=lr, damping=damping).step(lambda: 0.5 * x @ A @ x - b @ x)
    g = A @ x0 - b
    expected = x0 - lr * torch.linalg.solve(A + damping * torch.eye(6, dtype=A.dtype), g)
    torch.testing.assert_close(x.detach(), expected, rtol=0, atol=1e-10)


def rosenbrock_newton_reference(x, y):
    """One Newton step on f = (1-x)^2 + 100 (y-x^2)^2 from its hand-derived derivatives."""
    g = torch.tensor([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], dtype=torch.float64)
    H = torch.tensor(
        [[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200.0]], dtype=torch.float64
    )
    return (torch.tensor([x, y], dtype=torch.float64) - torch.linalg.solve(H, g)).tolist()


def test_rosenbrock_from_the_classic_start_converges_quadratically():
    p = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = Newton([p])
    reference = [-1.2, 1.0]
    errors = []
    for k in range(7):
        opt.step(lambda: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2)
        reference = rosenbrock_newton_reference(*reference)
        torch.testing.assert_close(p.detach().tolist(), reference, rtol=1e-12, atol=1e-14)
        errors.append((p.detach() - 1.0).norm().item())
        print(f"iteration {k + 1}: |x - x*| = {errors[-1]:.3e}")
    assert errors[-1] == 0.0 or errors[-1] < 1e-15
    # once close (error < 0.1), each error is at most a constant times the previous squared
    close = [k for k, e in enumerate(errors) if 0 < e < 0.1]
    assert len(close) >= 2
    for k in close:
        if errors[k + 1] > 0:
            assert errors[k + 1] <= 1.0 * errors[k] ** 2, (k, errors)
            assert errors[k + 1] < errors[k] ** 1.5  # faster than superlinear of order 1.5


def test_parameters_without_gradient_are_skipped_and_state_round_trips():
    A, b, x0 = random_pd_quadratic(2, 4)
    x = x0.clone().requires_grad_(True)
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)
    frozen = torch.ones(2, dtype=torch.float64, requires_grad=False)

    def loss():
        return 0.5 * x @ A @ x - b @ x + frozen.sum() + torch.log1p(x @ x)

    opt = Newton([x, unused, frozen], lr=0.5, damping=0.1)
    opt.step(loss)
    assert torch.equal(unused, torch.ones(3, dtype=torch.float64))
    assert torch.equal(frozen, torch.ones(2, dtype=torch.float64))
    assert opt.state[x]["step"] == 1 and unused not in opt.state

    # resume from a state_dict: bit-identical to an uninterrupted run
    saved_x, saved = x.detach().clone(), copy.deepcopy(opt.state_dict())
    for _ in range(3):
        opt.step(loss)
    uninterrupted = x.detach().clone()
    x.data.copy_(saved_x)
    resumed = Newton([x, unused, frozen], lr=0.5, damping=0.1)
    resumed.load_state_dict(saved)
    for _ in range(3):
        resumed.step(loss)
    assert torch.equal(x.detach(), uninterrupted)
    assert resumed.state[x]["step"] == 4


def test_float32_parameters_stay_float32():
    w = torch.tensor([0.5, -0.3], requires_grad=True)
    Newton([w]).step(lambda: ((w - 2.0) ** 2).sum() + (w**4).sum())
    assert w.dtype == torch.float32


def test_bad_arguments_raise_value_error_naming_them():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="damping"):
        Newton([w], damping=-1e-3)
    with pytest.raises(ValueError, match="lr"):
        Newton([w], lr=-1.0)
    with pytest.raises(ValueError, match="closure"):
        Newton([w]).step(None)
    with pytest.raises(ValueError, match="loss"):
        Newton([w]).step(lambda: w * 2)


def test_closure_that_already_called_backward_gets_a_clear_error():
    w = torch.ones(2, requires_grad=True)

    def closure():
        loss = (w**3).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="backward"):
        Newton([w]).step(closure)
