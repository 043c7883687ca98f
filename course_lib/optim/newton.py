r"""Newton's method with the full Hessian (optionally damped).

Around the current point the loss is modelled by its second-order Taylor expansion

.. math::

    f(\theta + d) \approx f(\theta) + g^\top d + \tfrac12 d^\top H d,

whose minimiser (when H is positive definite) solves the Newton system

.. math::

    (H + \lambda I)\, d = -g, \qquad \theta \gets \theta + \eta\, d,

with damping :math:`\lambda \ge 0` (Levenberg) and learning rate :math:`\eta` (1 for the pure
Newton step). Near a minimum with positive-definite H the error squares at every step
(quadratic convergence). The price: H has n^2 entries, building it takes n backward passes
(double backward) and solving takes O(n^3) time, so this is for small n only.
"""

import torch
from torch.optim import Optimizer

from course_lib import _args
from course_lib.second_order import hessian_from_gradient


def newton_update(grad: torch.Tensor, hessian: torch.Tensor, *, lr: float, damping: float):
    """The step lr * d where (H + damping I) d = -g (flat vectors)."""
    if damping != 0:
        hessian = hessian + damping * torch.eye(
            hessian.shape[0], dtype=hessian.dtype, device=hessian.device
        )
    return lr * torch.linalg.solve(hessian, -grad)


class Newton(Optimizer):
    """Newton(params, lr=1.0, damping=0.0): theta += lr * d with (H + damping I) d = -g.

    ``step(closure)`` needs a closure that computes and returns the loss WITHOUT calling
    ``backward()`` (Newton differentiates the loss twice itself, which needs the graph).
    The Hessian is formed over all parameters of a group together (groups are independent
    blocks). Parameters that do not require grad, or on which the loss does not depend
    (gradient None), are skipped. Each parameter's state is its ``step`` count.
    ``differentiates_loss`` tells :func:`course_lib.train.train` not to call ``backward()``.
    """

    differentiates_loss = True

    def __init__(self, params, lr=1.0, damping=0.0):
        _args.lr(lr)
        _args.nonnegative("damping", damping)
        super().__init__(params, dict(lr=lr, damping=damping))

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        if closure is None:
            raise ValueError("closure is required: Newton needs to differentiate the loss twice")
        with torch.enable_grad():
            loss = closure()
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("closure must return the loss as a one-element tensor")
            if loss.grad_fn is None:
                raise RuntimeError(
                    "the loss carries no graph: compute it from the parameters, with grad enabled"
                )
            for group in self.param_groups:
                self._step_group(group, loss.reshape(()))
        return loss.detach()

    def _step_group(self, group, loss):
        candidates = [p for p in group["params"] if p.requires_grad]
        if not candidates:
            return
        try:
            grads = torch.autograd.grad(loss, candidates, create_graph=True, allow_unused=True)
        except RuntimeError as error:
            raise RuntimeError(
                "could not differentiate the loss: the closure must return it without "
                "calling backward() (Newton needs the graph for the second derivative)"
            ) from error
        params = [p for p, g in zip(candidates, grads, strict=True) if g is not None]
        grads = [g for g in grads if g is not None]
        if not params:
            return
        flat_grad = torch.cat([g.reshape(-1) for g in grads])
        hessian = hessian_from_gradient(flat_grad, params)
        step = newton_update(
            flat_grad.detach(), hessian.detach(), lr=float(group["lr"]), damping=group["damping"]
        )
        offset = 0
        with torch.no_grad():
            for p in params:
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                p.add_(step[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
