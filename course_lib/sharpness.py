r"""Sharpness: the curvature of a network's loss, measured without forming the Hessian.

The sharpness of the loss :math:`L(\theta)` at the weights :math:`\theta` is the largest
eigenvalue :math:`\lambda_{\max}` of its Hessian :math:`H = \nabla^2 L(\theta)`. On a
quadratic, gradient descent with step :math:`\eta` is stable only if
:math:`\lambda_{\max} < 2/\eta`; Cohen et al. (2021) found that full-batch GD on a network
drives :math:`\lambda_{\max}` up to :math:`2/\eta` and then hovers there (the edge of
stability).

A network has too many weights to build :math:`H` (n x n), but a Hessian-vector product

.. math::  H v = \nabla_\theta \left( \nabla_\theta L(\theta) \cdot v \right)

costs one extra backward pass (Pearlmutter 1994). Everything here uses only that:

* :func:`power_iteration`: :math:`v \gets Hv / \|Hv\|` converges to the eigenvector of the
  eigenvalue of largest magnitude, at the rate :math:`|\lambda_2 / \lambda_1|` per step.
* :func:`lanczos`: builds an orthonormal basis of the Krylov space
  :math:`\{v, Hv, H^2 v, \dots\}` in which :math:`H` is tridiagonal; the extreme
  eigenvalues of that small matrix converge to :math:`H`'s much faster than the power
  iteration does.
* :func:`preconditioned_sharpness`: for a preconditioned method
  :math:`\theta \gets \theta - \eta P^{-1} m` (Adam: :func:`adam_preconditioner`), the
  stability of the quadratic model depends on :math:`\lambda_{\max}(P^{-1} H)`, the same
  eigenvalues as the symmetric :math:`P^{-1/2} H P^{-1/2}` (Cohen et al. 2022).
* :func:`hutchinson_trace`: :math:`\operatorname{tr} H = \mathbb E[z^\top H z]` for random
  signs :math:`z`, so the mean over s samples has an error that shrinks like
  :math:`1/\sqrt{s}` (Hutchinson 1989).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def flatten(tensors) -> Tensor:
    """The tensors of a list (e.g. one per parameter) as one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like) -> list[Tensor]:
    """Split a vector into tensors shaped like those of ``like``."""
    sizes = [t.numel() for t in like]
    return [part.view_as(t) for part, t in zip(vector.split(sizes), like, strict=True)]


def hessian_operator(model, loss_fn, inputs, targets) -> Callable[[Tensor], Tensor]:
    r"""The Hessian of ``loss_fn(model(inputs), targets)`` over the model's trainable
    parameters (in ``model.parameters()`` order, flattened), as a function ``v -> H v``.

    The gradient is computed once with its graph kept; each product is one more backward
    pass through it, :math:`\nabla_\theta (g \cdot v)`. The evaluation set is fixed: the
    operator describes the loss at the weights it was built at.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params, create_graph=True)

    def matvec(v: Tensor) -> Tensor:
        products = torch.autograd.grad(grads, params, unflatten(v, params), retain_graph=True)
        return flatten(products).detach()

    return matvec


def random_vector(model, generator=None) -> Tensor:
    """A standard normal vector with one entry per trainable parameter of the model, in its
    dtype and on its device (drawn on the CPU, so a seeded generator gives the same vector
    everywhere): a starting point for the iterations below."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    v = torch.randn(n, generator=generator, dtype=params[0].dtype)
    return v.to(params[0].device)


def power_iteration(matvec, v0: Tensor, *, iters: int = 100, tol: float = 0.0):
    r"""(eigenvalue, unit eigenvector) of largest magnitude of a symmetric operator.

    From ``v0``, :math:`v \gets Av/\|Av\|`; the eigenvalue estimate is the Rayleigh
    quotient :math:`v^\top A v`. Stops after ``iters`` products, or once the estimate
    changes by less than ``tol`` relative.
    """
    v = v0 / v0.norm()
    estimate = None
    for _ in range(iters):
        av = matvec(v)
        previous, estimate = estimate, torch.dot(v, av).item()
        v = av / av.norm()
        if previous is not None and abs(estimate - previous) <= tol * abs(estimate):
            break
    return estimate, v


def lanczos(matvec, v0: Tensor, *, steps: int = 20) -> tuple[Tensor, Tensor]:
    r"""Ritz values (ascending) and Ritz vectors of a symmetric operator after ``steps``
    Lanczos steps from ``v0``.

    With :math:`q_1 = v_0 / \|v_0\|`, each step computes :math:`w = A q_j`, takes out its
    components along the previous basis vectors (all of them: full
    reorthogonalization keeps the basis orthonormal in floating point) and normalises
    the rest into :math:`q_{j+1}`. In the basis :math:`Q`, :math:`Q^\top A Q = T` is
    tridiagonal (diagonal :math:`\alpha_j = q_j^\top A q_j`, off-diagonal
    :math:`\beta_j = \|w\|`); the eigenvalues of the small T approximate A's, the extreme
    ones first.
    """
    basis = [v0 / v0.norm()]
    alphas, betas = [], []
    steps = min(steps, v0.numel())
    for j in range(steps):
        w = matvec(basis[j])
        alphas.append(torch.dot(w, basis[j]))
        Q = torch.stack(basis)
        for _ in range(2):  # twice is enough to restore orthogonality
            w = w - Q.T @ (Q @ w)
        beta = w.norm()
        if j == steps - 1 or beta <= 1e-12 * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        basis.append(w / beta)
    alpha = torch.stack(alphas)
    T = torch.diag(alpha)
    if betas:
        off = torch.stack(betas[: len(alphas) - 1])
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    values, vectors = torch.linalg.eigh(T)
    return values, torch.stack(basis[: len(alphas)]).T @ vectors


def top_eigenvalue(matvec, v0: Tensor, *, steps: int = 20) -> float:
    """The largest eigenvalue of a symmetric operator, by ``steps`` Lanczos steps."""
    values, _ = lanczos(matvec, v0, steps=steps)
    return values[-1].item()


def sharpness(model, loss_fn, inputs, targets, *, steps: int = 20, generator=None) -> float:
    r""":math:`\lambda_{\max}` of the Hessian of the loss on (inputs, targets), by Lanczos."""
    matvec = hessian_operator(model, loss_fn, inputs, targets)
    return top_eigenvalue(matvec, random_vector(model, generator), steps=steps)


def adam_preconditioner(optimizer, params) -> Tensor:
    r"""The diagonal :math:`P` of Adam's step :math:`\theta \gets \theta - \eta P^{-1} m`,
    flattened over ``params``:

    .. math::  P = (1 - \beta_1^t) \left( \sqrt{v / (1 - \beta_2^t)} + \epsilon \right)

    read from the state of a torch.optim or course_lib Adam/AdamW (``exp_avg_sq``, ``step``).
    """
    parts = []
    for group in optimizer.param_groups:
        beta1, beta2 = group["betas"]
        ids = {id(p) for p in group["params"]}
        for p in params:
            if id(p) not in ids:
                continue
            state = optimizer.state[p]
            step = float(state["step"])
            root = (state["exp_avg_sq"] / (1 - beta2**step)).sqrt() + group["eps"]
            parts.append((1 - beta1**step) * root)
    return flatten(parts)


def preconditioned_sharpness(matvec, preconditioner: Tensor, v0: Tensor, *, steps: int = 20):
    r""":math:`\lambda_{\max}(P^{-1} H)` for a positive diagonal :math:`P`: Lanczos on the
    symmetric :math:`P^{-1/2} H P^{-1/2}`, which has the same eigenvalues."""
    scale = preconditioner.rsqrt()
    return top_eigenvalue(lambda v: scale * matvec(scale * v), v0, steps=steps)


def hutchinson_trace(matvec, like: Tensor, *, samples: int, generator=None) -> float:
    r""":math:`\frac1s \sum_{i=1}^s z_i^\top H z_i` with random signs :math:`z_i \in \{\pm1\}^n`:
    an unbiased estimate of :math:`\operatorname{tr} H` with standard deviation
    :math:`\sqrt{2 \sum_{i \ne j} H_{ij}^2 / s}`. The signs are drawn on the CPU and
    take the dtype, device and length of the vector ``like``."""
    total = 0.0
    for _ in range(samples):
        z = torch.randint(0, 2, (like.numel(),), generator=generator).to(like) * 2 - 1
        total += torch.dot(z, matvec(z)).item()
    return total / samples
