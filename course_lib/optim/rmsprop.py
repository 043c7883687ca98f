r"""RMSprop (Hinton 2012): divide the gradient by a moving root mean square of its past.

.. math::

    g &\gets \nabla f(\theta) + \lambda \theta          && \text{(L2 weight decay)} \\
    v &\gets \alpha v + (1 - \alpha) g^2                 && \text{(moving average of } g^2) \\
    \bar g &\gets \alpha \bar g + (1 - \alpha) g         && \text{(centered only)} \\
    r &\gets \sqrt{v - \bar g^2} + \epsilon \text{ (centered) or } \sqrt{v} + \epsilon \\
    b &\gets \mu b + g / r, \quad \theta \gets \theta - \eta b
        && (\text{or } \theta \gets \theta - \eta\, g / r \text{ without momentum})

exactly torch.optim.RMSprop. Centering divides by an estimate of the standard deviation of
the gradient rather than its root mean square.
"""

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import add_l2_penalty, ema_, ema_of_squares_, heavy_ball_


def rmsprop_update_(
    param,
    grad,
    square_avg,
    momentum_buffer=None,
    grad_avg=None,
    *,
    lr,
    alpha=0.99,
    eps=1e-8,
    weight_decay=0.0,
    momentum=0.0,
):
    """One RMSprop step in place; centered when ``grad_avg`` is given."""
    if weight_decay != 0:
        grad = add_l2_penalty(grad, param, weight_decay)
    ema_of_squares_(square_avg, grad, alpha)
    if grad_avg is not None:
        ema_(grad_avg, grad, alpha)
        rms = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    else:
        rms = square_avg.sqrt()
    rms = rms.add_(eps)
    if momentum > 0:
        param.add_(heavy_ball_(momentum_buffer, grad.div(rms), momentum), alpha=-lr)
    else:
        param.addcdiv_(grad, rms, value=-lr)


class RMSprop(CourseOptimizer):
    """RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
    *, maximize=False).

    Same signature, defaults and numerics as torch.optim.RMSprop. State per parameter:
    ``square_avg``, plus ``momentum_buffer`` when momentum > 0 and ``grad_avg`` when centered.
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        *,
        maximize=False,
        fused=None,
        foreach=None,
    ):
        _args.unit_interval("alpha", alpha, closed=True)
        _args.nonnegative("eps", eps)
        _args.nonnegative("weight_decay", weight_decay)
        _args.nonnegative("momentum", momentum)
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            fused=fused,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        state = {"square_avg": zeros_state(param)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros_state(param)
        if group["centered"]:
            state["grad_avg"] = zeros_state(param)
        return state

    def update(self, group, step, param, grad, state):
        rmsprop_update_(
            param,
            grad,
            state["square_avg"],
            state.get("momentum_buffer"),
            state.get("grad_avg"),
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
        )
