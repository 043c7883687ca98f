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

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import add_l2_penalty, heavy_ball_


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
        heavy_ball_(momentum_buffer, grad, momentum, dampening, first=step == 1)
        if nesterov:  # theta -= lr (g + mu b) in two in-place steps, with no temporary
            param.add_(grad, alpha=-lr)
            param.add_(momentum_buffer, alpha=-lr * momentum)
            return
        grad = momentum_buffer
    param.add_(grad, alpha=-lr)


class SGD(CourseOptimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False).

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
        maximize=False,
        fused=None,
        foreach=None,
    ):
        _args.nonnegative("momentum", momentum)
        _args.unit_interval("dampening", dampening, closed=True)
        _args.nonnegative("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            fused=fused,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": zeros_state(param)}

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
