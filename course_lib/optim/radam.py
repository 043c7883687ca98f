r"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on gradually.

In its first steps Adam divides by :math:`\sqrt{\hat v}`, an average of very few squared
gradients, whose variance is large: the steps are erratic, which is why Adam needs a
warmup. RAdam estimates the length of the simple moving average that the EMA of
:math:`g^2` resembles,

.. math::

    \rho_\infty = \frac{2}{1 - \beta_2} - 1, \qquad
    \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t},

and while :math:`\rho_t \le 5` (too few samples for a usable variance) takes a plain
momentum step :math:`\theta \gets \theta - \eta\, \hat m`. Afterwards it takes Adam's step
scaled by the rectification term

.. math::

    r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
                     {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \nearrow 1, \qquad
    \theta \gets \theta - \eta\, r_t\, \frac{\hat m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon},

a warmup built into the optimizer. :math:`\hat m = m / (1 - \beta_1^t)`. Weight decay as
in Adam (L2) or AdamW (``decoupled_weight_decay=True``). Exactly torch.optim.RAdam.
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer
from .transforms import add_l2_penalty, bias_correction, decay_weights_, ema_, ema_of_squares_


def radam_rectification(beta2, step):
    r"""RAdam's :math:`r_t`, or ``None`` while :math:`\rho_t \le 5` (no adaptive step yet)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2**step / bias_correction(beta2, step)
    if rho_t <= 5:
        return None
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


def radam_update_(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    *,
    step,
    lr,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    decoupled_weight_decay=False,
):
    """One RAdam step."""
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay_weights_(param, lr, weight_decay)
        else:
            grad = add_l2_penalty(grad, param, weight_decay)
    ema_(exp_avg, grad, beta1)
    ema_of_squares_(exp_avg_sq, grad, beta2)
    step_size = lr / bias_correction(beta1, step)
    rect = radam_rectification(beta2, step)
    if rect is None:
        param.add_(exp_avg, alpha=-step_size)
    else:
        denom = exp_avg_sq.sqrt().add_(eps)
        step_size *= rect * bias_correction(beta2, step) ** 0.5
        param.addcdiv_(exp_avg, denom, value=-step_size)


class RAdam(CourseOptimizer):
    """RAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    decoupled_weight_decay=False, *, maximize=False).

    Same signature, defaults and numerics as torch.optim.RAdam. State per parameter:
    ``exp_avg`` (m) and ``exp_avg_sq`` (v).
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        fused=None,
    ):
        _args.lr(lr)
        _args.betas(betas)
        _args.nonnegative("eps", eps)
        _args.nonnegative("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        return {
            "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
        }

    def update(self, group, step, param, grad, state):
        beta1, beta2 = group["betas"]
        radam_update_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
