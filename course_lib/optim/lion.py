r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

Lion = decoupled weight decay + interpolated momentum + sign:

.. math::

    \theta &\gets (1 - \eta\lambda)\,\theta                        && \text{(decoupled decay)} \\
    c &\gets \beta_1 m + (1 - \beta_1) g                           && \text{(interpolate)} \\
    \theta &\gets \theta - \eta \operatorname{sign}(c)             && \text{(sign step)} \\
    m &\gets \beta_2 m + (1 - \beta_2) g                           && \text{(momentum)}

as in the google/automl reference code. Every coordinate moves by exactly :math:`\eta` (or
0), so Lion's learning rate is typically 3-10x smaller than AdamW's; its only state is
:math:`m`, half of Adam's.
"""

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import decay_weights_, ema, ema_, sign_


def lion_update_(param, grad, exp_avg, *, lr, beta1=0.9, beta2=0.99, weight_decay=0.0):
    """One Lion step on ``param`` and its momentum ``exp_avg``, in place."""
    if weight_decay != 0:
        decay_weights_(param, lr, weight_decay)
    direction = sign_(ema(exp_avg, grad, beta1))
    param.add_(direction, alpha=-lr)
    ema_(exp_avg, grad, beta2)


class Lion(CourseOptimizer):
    """Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False).

    State per parameter: ``exp_avg`` (the momentum m).
    """

    def __init__(
        self,
        params,
        lr=1e-4,
        betas=(0.9, 0.99),
        weight_decay=0.0,
        *,
        maximize=False,
        foreach=None,
        fused=None,
    ):
        _args.betas(betas)
        _args.nonnegative("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        return {"exp_avg": zeros_state(param)}

    def update(self, group, step, param, grad, state):
        beta1, beta2 = group["betas"]
        lion_update_(
            param,
            grad,
            state["exp_avg"],
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
        )
