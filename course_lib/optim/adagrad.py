r"""AdaGrad (Duchi, Hazan & Singer 2011): each coordinate's step shrinks with its history.

.. math::

    g &\gets \nabla f(\theta) + \lambda \theta      && \text{(L2 weight decay)} \\
    s &\gets s + g^2                                 && \text{(sum of squared gradients)} \\
    \theta &\gets \theta - \frac{\eta}{1 + (t - 1)\,\delta} \, \frac{g}{\sqrt{s} + \epsilon}

with learning rate :math:`\eta`, learning-rate decay :math:`\delta`, step :math:`t`, and
:math:`s` started at ``initial_accumulator_value``; exactly torch.optim.Adagrad.
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer
from .transforms import add_l2_penalty


def adagrad_update_(
    param, grad, sum_of_squares, *, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10
):
    """One AdaGrad step on ``param`` and ``sum_of_squares``, in place."""
    if weight_decay != 0:
        grad = add_l2_penalty(grad, param, weight_decay)
    decayed_lr = lr / (1 + (step - 1) * lr_decay)
    sum_of_squares.addcmul_(grad, grad, value=1)
    std = sum_of_squares.sqrt().add_(eps)
    param.addcdiv_(grad, std, value=-decayed_lr)


class Adagrad(CourseOptimizer):
    """Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
    *, maximize=False).

    Same signature, defaults and numerics as torch.optim.Adagrad. State per parameter:
    ``sum`` (the running sum of squared gradients).
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        *,
        maximize=False,
        fused=None,
        foreach=None,
    ):
        _args.nonnegative("lr_decay", lr_decay)
        _args.nonnegative("weight_decay", weight_decay)
        _args.nonnegative("initial_accumulator_value", initial_accumulator_value)
        _args.nonnegative("eps", eps)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            fused=fused,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        start = group["initial_accumulator_value"]
        return {"sum": torch.full_like(param, start, memory_format=torch.preserve_format)}

    def update(self, group, step, param, grad, state):
        adagrad_update_(
            param,
            grad,
            state["sum"],
            step=step,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
        )
