r"""Stochastic gradient descent, with heavy-ball or Nesterov momentum.

.. math::

    g &\gets \nabla f(\theta) + \lambda \theta                     && \text{(L2 weight decay)} \\
    b &\gets \mu b + (1 - \tau) g \quad (b \gets g \text{ at the first step})
                                                                   && \text{(momentum)} \\
    d &\gets g + \mu b \text{ (Nesterov) or } b                    \\
    \theta &\gets \theta - \eta d

with learning rate :math:`\eta`, momentum :math:`\mu`, dampening :math:`\tau` and weight
decay :math:`\lambda`; exactly torch.optim.SGD.
"""

import torch

from ._base import CourseOptimizer, check_nonnegative, check_unit_interval
from .transforms import add_l2_penalty


def sgd_update_(
    param,
    grad,
    momentum_buffer=None,
    *,
    step,
    lr,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
):
    """One SGD step on ``param`` in place (``momentum_buffer`` too, when momentum is used)."""
    if weight_decay != 0:
        grad = add_l2_penalty(grad, param, weight_decay)
    if momentum != 0:
        if step == 1:
            momentum_buffer.copy_(grad)
        else:
            momentum_buffer.mul_(momentum).add_(grad, alpha=1 - dampening)
        if nesterov:  # theta -= lr (g + mu b) in two in-place steps, with no temporary
            param.add_(grad, alpha=-lr)
            param.add_(momentum_buffer, alpha=-lr * momentum)
            return
        grad = momentum_buffer
    param.add_(grad, alpha=-lr)


class SGD(CourseOptimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False).

    Same signature, defaults and numerics as torch.optim.SGD. State per parameter:
    ``momentum_buffer`` (only when momentum != 0).
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0,
        dampening=0,
        weight_decay=0,
        nesterov=False,
        *,
        foreach=None,
    ):
        check_nonnegative("lr", lr)
        check_nonnegative("momentum", momentum)
        check_unit_interval("dampening", dampening, closed=True)
        check_nonnegative("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def update(self, group, step, param, grad, state):
        sgd_update_(
            param,
            grad,
            state.get("momentum_buffer"),
            step=step,
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
        )
