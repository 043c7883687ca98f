"""Second-order tools: the Hessian, Hessian-vector products, conjugate gradient.

For a scalar function f of a vector x in R^n:

* gradient      g(x) = grad f(x)                         (one backward pass)
* Hessian       H(x) = d g / d x,  H_ij = d^2 f / dx_i dx_j
  built by *double backward*: differentiate each gradient entry g_i again, one row per
  backward pass, so n passes in all (the graph of g is kept with ``create_graph=True``).
* Hessian-vector product  H v = grad_x (g(x) . v)         (Pearlmutter 1994)
  one extra backward pass through the graph of g, never forming the n x n matrix H.
* Newton-CG: conjugate gradient on v -> H v solves H d = -g for the Newton direction with
  O(n) memory, never forming H (the Newton optimizer, course_lib.optim.Newton, forms H).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 1:
        raise ValueError(f"x must be a 1-D tensor, got shape {tuple(getattr(x, 'shape', ()))}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")


def _gradient_with_graph(f: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """(x as a fresh leaf, g = grad f(x) with its graph kept for a second differentiation)."""
    _check_input(x)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
        if not isinstance(y, Tensor) or y.numel() != 1 or y.dim() > 1:
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"f must return a scalar (one-element) tensor, got {shape}")
        (g,) = torch.autograd.grad(y.reshape(()), x, create_graph=True, materialize_grads=True)
    return x, g


def gradient(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """g = grad f(x), detached."""
    return _gradient_with_graph(f, x)[1].detach()


def hessian_from_gradient(grad: Tensor, inputs: list[Tensor]) -> Tensor:
    """H_ij = d g_i / d theta_j by double backward: differentiate each entry of the flat
    gradient ``grad`` (computed with ``create_graph=True``) once more with respect to
    ``inputs``, one backward pass per row. Entries are ordered as ``inputs`` flattened."""
    n = grad.numel()
    if not grad.requires_grad:  # the gradient does not depend on the inputs: H = 0
        return grad.new_zeros(n, n).detach()
    rows = []
    for i in range(n):
        row = torch.autograd.grad(grad[i], inputs, retain_graph=True, materialize_grads=True)
        rows.append(torch.cat([r.reshape(-1) for r in row]))
    return torch.stack(rows)


def hessian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """H_ij = d^2 f / dx_i dx_j by double backward: row i is grad_x g_i(x), n backward passes."""
    x, g = _gradient_with_graph(f, x)
    return hessian_from_gradient(g, [x])


def hvp_operator(f: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Callable]:
    """(g, v -> H v): the gradient at x and a function computing H(x) v by Pearlmutter's trick.

    The gradient's graph is built once; every product costs one backward pass through it.
    """
    x, g = _gradient_with_graph(f, x)

    def matvec(v: Tensor) -> Tensor:
        if v.shape != x.shape:
            raise ValueError(f"v must have the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
        if not g.requires_grad:  # f is affine: H = 0
            return torch.zeros_like(v)
        (hv,) = torch.autograd.grad(g, x, grad_outputs=v, retain_graph=True, materialize_grads=True)
        return hv  # grad_x (g . v) = H v

    return g.detach(), matvec


def hvp(f: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> Tensor:
    """H(x) v = grad_x (grad f(x) . v), without forming H (Pearlmutter's trick)."""
    _check_input(x)
    if v.shape != x.shape:
        raise ValueError(f"v must have the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
    return hvp_operator(f, x)[1](v.detach())


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    *,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> Tensor:
    """Solve A x = b for symmetric positive-definite A, given only v -> A v.

    Iterates  alpha = r.r / p.Ap,  x += alpha p,  r -= alpha Ap,  p = r + (r'.r' / r.r) p
    from r = b - A x0, until ||r|| <= tol * ||b|| or ``max_iter`` steps (default: n).
    In exact arithmetic it ends in at most n steps. If a direction of non-positive
    curvature (p.Ap <= 0) appears, A is not positive definite along p: CG stops and returns
    the current iterate (or b itself if that happens at the first step, as Newton-CG does).
    """
    if b.dim() != 1:
        raise ValueError(f"b must be a 1-D tensor, got shape {tuple(b.shape)}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if max_iter is None:
        max_iter = b.numel()
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if x0 is not None and x0.shape != b.shape:
        raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}, got {tuple(x0.shape)}")

    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = r.dot(r)
    threshold = tol * b.norm()
    for k in range(max_iter):
        if rr.sqrt() <= threshold:
            break
        Ap = matvec(p)
        curvature = p.dot(Ap)
        if curvature <= 0:
            return b.clone() if k == 0 and x0 is None else x
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
