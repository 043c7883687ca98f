r"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

Adam = momentum + RMS scaling + bias correction:

.. math::

    m &\gets \beta_1 m + (1 - \beta_1) g                && \text{(momentum: EMA of } g) \\
    v &\gets \beta_2 v + (1 - \beta_2) g^2              && \text{(EMA of } g^2) \\
    \hat v &\gets \max(\hat v, v) \text{ (AMSGrad) or } v \\
    \theta &\gets \theta - \frac{\eta}{1 - \beta_1^t}\,
        \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}
        && \text{(bias-corrected RMS scaling)}

Weight decay :math:`\lambda` enters either the gradient, :math:`g \gets g + \lambda\theta`
(Adam: an L2 penalty, then rescaled per coordinate like the rest of the gradient), or the
weights directly, :math:`\theta \gets (1 - \eta\lambda)\theta` (AdamW: decoupled, the same
relative shrink for every coordinate). Exactly torch.optim.Adam and torch.optim.AdamW.
"""

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import (
    add_l2_penalty,
    bias_correction,
    decay_weights_,
    ema_,
    ema_of_squares_,
    running_max_,
)


def adam_update_(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq=None,
    *,
    step,
    lr,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    decoupled_weight_decay=False,
):
    """One Adam step (AdamW when ``decoupled_weight_decay``; AMSGrad with ``max_exp_avg_sq``)."""
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay_weights_(param, lr, weight_decay)
        else:
            grad = add_l2_penalty(grad, param, weight_decay)
    ema_(exp_avg, grad, beta1)
    ema_of_squares_(exp_avg_sq, grad, beta2)
    if max_exp_avg_sq is not None:
        exp_avg_sq = running_max_(max_exp_avg_sq, exp_avg_sq)
    step_size = lr / bias_correction(beta1, step)
    denom = exp_avg_sq.sqrt().div_(bias_correction(beta2, step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


def adam_group_update_(group, step, param, grad, state, *, decoupled_weight_decay):
    """:func:`adam_update_` with the hyperparameters of a parameter group."""
    beta1, beta2 = group["betas"]
    adam_update_(
        param,
        grad,
        state["exp_avg"],
        state["exp_avg_sq"],
        state.get("max_exp_avg_sq"),
        step=step,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        decoupled_weight_decay=decoupled_weight_decay,
    )


class Adam(CourseOptimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False).

    Same signature, defaults and numerics as torch.optim.Adam. State per parameter:
    ``exp_avg`` (m), ``exp_avg_sq`` (v), and ``max_exp_avg_sq`` with amsgrad.
    """

    decoupled_weight_decay = False

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        maximize=False,
        fused=None,
        foreach=None,
    ):
        _args.betas(betas)
        _args.nonnegative("eps", eps)
        _args.nonnegative("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            fused=fused,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        state = {"exp_avg": zeros_state(param), "exp_avg_sq": zeros_state(param)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_state(param)
        return state

    def update(self, group, step, param, grad, state):
        # reads nothing from self, so a compiled update (fused=True) serves every instance
        adam_group_update_(group, step, param, grad, state, decoupled_weight_decay=False)


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False).

    Adam with decoupled weight decay; same signature, defaults and numerics as
    torch.optim.AdamW.
    """

    decoupled_weight_decay = True

    def update(self, group, step, param, grad, state):
        adam_group_update_(group, step, param, grad, state, decoupled_weight_decay=True)

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
        fused=None,
        foreach=None,
    ):
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )
