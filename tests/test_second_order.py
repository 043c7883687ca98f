"""second_order.hessian / hvp / conjugate_gradient vs torch.func, float64."""

import pytest
import torch
from torch.func import grad, jvp
from torch.func import hessian as func_hessian

from course_lib.second_order import conjugate_gradient, hessian, hvp, hvp_operator


def random_smooth_function(seed: int, n: int):
    """A seeded smooth scalar function mixing quadratic, tanh, softplus, sin, products."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=gen, dtype=torch.float64)
    B = torch.randn(n, n, generator=gen, dtype=torch.float64) / n**0.5
    c = torch.randn(n, generator=gen, dtype=torch.float64)

    def f(x):
        return (
            0.5 * x @ (A @ A.T / n) @ x
            + torch.tanh(B @ x).sum()
            + torch.nn.functional.softplus(c * x).sum()
            + torch.sin(x[0] * x[-1])
            + (x**4).mean()
        )

    x = torch.randn(n, generator=gen, dtype=torch.float64)
    v = torch.randn(n, generator=gen, dtype=torch.float64)
    return f, x, v


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 2), (2, 7), (3, 20), (4, 33)])
def test_hessian_equals_torch_func_hessian(seed, n):
    f, x, _ = random_smooth_function(seed, n)
    H = hessian(f, x)
    expected = func_hessian(f)(x)
    assert H.dtype == torch.float64 and H.shape == (n, n)
    torch.testing.assert_close(H, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed,n", [(5, 1), (6, 3), (7, 16), (8, 50)])
def test_hvp_equals_forward_over_reverse_product(seed, n):
    f, x, v = random_smooth_function(seed, n)
    _, expected = jvp(grad(f), (x,), (v,))  # torch.func: d/dt grad f(x + t v) at t = 0
    torch.testing.assert_close(hvp(f, x, v), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(hvp(f, x, v), func_hessian(f)(x) @ v, rtol=0, atol=1e-10)


def test_hessian_of_a_linear_function_is_zero_and_of_a_quadratic_is_its_matrix():
    a = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    assert torch.equal(hessian(lambda x: a @ x, a), torch.zeros(3, 3, dtype=torch.float64))
    Q = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(hessian(lambda x: 0.5 * x @ Q @ x, a), Q, rtol=0, atol=1e-14)


def test_conjugate_gradient_solves_spd_systems():
    gen = torch.Generator().manual_seed(0)
    n = 40
    M = torch.randn(n, n, generator=gen, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, tol=1e-12, max_iter=10 * n)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-9)
    x0 = torch.randn(n, generator=gen, dtype=torch.float64)
    x_warm = conjugate_gradient(lambda v: A @ v, b, x0, tol=1e-12, max_iter=10 * n)
    torch.testing.assert_close(x_warm, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-9)


def test_conjugate_gradient_ends_in_at_most_as_many_steps_as_distinct_eigenvalues():
    # A with 3 distinct eigenvalues: CG is exact after 3 steps (Krylov space of dimension 3).
    gen = torch.Generator().manual_seed(1)
    Qm, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen, dtype=torch.float64))
    eig = torch.tensor([1.0] * 10 + [5.0] * 10 + [20.0] * 10, dtype=torch.float64)
    A = Qm @ torch.diag(eig) @ Qm.T
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, tol=0.0, max_iter=3)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_newton_cg_solves_the_damped_newton_system(damping):
    gen = torch.Generator().manual_seed(2)
    n = 12
    M = torch.randn(n, n, generator=gen, dtype=torch.float64)
    A = M @ M.T / n + torch.eye(n, dtype=torch.float64)

    def f(x):  # strictly convex: quadratic + softplus
        return 0.5 * x @ A @ x + torch.nn.functional.softplus(x).sum()

    x = torch.randn(n, generator=gen, dtype=torch.float64)
    H = func_hessian(f)(x) + damping * torch.eye(n, dtype=torch.float64)
    expected = torch.linalg.solve(H, -grad(f)(x))
    g, matvec = hvp_operator(f, x)
    cg = conjugate_gradient(lambda v: matvec(v) + damping * v, -g, tol=1e-13, max_iter=5 * n)
    torch.testing.assert_close(cg, expected, rtol=1e-9, atol=1e-9)


def test_results_follow_input_dtype():
    f, x, v = random_smooth_function(9, 5)
    x32, v32 = x.float(), v.float()
    assert hessian(f_float := (lambda z: (z**3).sum()), x32).dtype == torch.float32
    assert hvp(f_float, x32, v32).dtype == torch.float32


def test_bad_input_raises_value_error():
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="scalar"):
        hessian(lambda z: z * 2, x)
    with pytest.raises(ValueError, match="scalar"):
        hvp(lambda z: z * 2, x, x)
    with pytest.raises(ValueError, match="1-D"):
        hessian(lambda z: z.sum(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="shape"):
        hvp(lambda z: z.sum(), x, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="x0"):
        conjugate_gradient(lambda v: v, x, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="tol"):
        conjugate_gradient(lambda v: v, x, tol=-1.0)
