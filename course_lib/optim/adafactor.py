r"""Adafactor (Shazeer & Stern 2018) with torch.optim.Adafactor's numerics.

Adam's second moment costs one number per weight. For a matrix gradient
:math:`G \in \mathbb{R}^{n \times m}`, Adafactor keeps only the row means :math:`r` and the
column means :math:`c` of :math:`G^2` (n + m numbers) and rebuilds a rank-1 estimate:

.. math::

    \hat\beta_{2,t} &= 1 - t^{\tau}                       && (\tau = \text{beta2\_decay} = -0.8) \\
    r &\gets \hat\beta_{2,t}\, r + (1 - \hat\beta_{2,t})\, \operatorname{mean}_{cols}(G^2) \\
    c &\gets \hat\beta_{2,t}\, c + (1 - \hat\beta_{2,t})\, \operatorname{mean}_{rows}(G^2) \\
    \hat V &= r c^\top / \max(\operatorname{mean}(r), \epsilon_1)
        && \text{(vectors keep the full } v \text{ instead)} \\
    U &= G / \sqrt{\max(\hat V, \epsilon_1^2)} \\
    \hat U &= U / \max\!\big(1, \operatorname{RMS}(U) / d\big)  && \text{(update clipping)} \\
    \alpha_t &= \max(\epsilon_2, \operatorname{RMS}(\theta)) \, \min(\eta, 1/\sqrt{t})
        && \text{(relative step size)} \\
    \theta &\gets (1 - \eta\lambda)\,\theta - \alpha_t \hat U

Where torch's version departs from the paper (Algorithms 4 and 5):

- the paper's step size is :math:`\min(10^{-2}, 1/\sqrt t)`; torch uses ``lr`` in place of
  :math:`10^{-2}` (equal at the default ``lr=1e-2``);
- the paper adds :math:`\epsilon_1 = 10^{-30}` to :math:`G^2` before averaging; torch
  instead clamps the estimate at :math:`\epsilon_1^2` and the row-mean normaliser at
  :math:`\epsilon_1`, with :math:`\epsilon_1` the machine epsilon of the dtype by default;
- the paper normalises by row and column *sums*; torch by means, the same :math:`\hat V`;
- tensors with more than 2 dimensions are factored over their last two dimensions;
- weight decay (absent in the paper) is decoupled and scaled by ``lr``, not by
  :math:`\alpha_t`;
- the paper's optional first moment :math:`\beta_1` is absent from torch. Here
  ``beta1`` adds it as in the authors' code (mesh-tensorflow): a moving average of the
  scaled, clipped update, :math:`m \gets \beta_1 m + (1-\beta_1)\alpha_t \hat U`,
  :math:`\theta \gets \theta - m`. It costs one number per weight, like Adam's :math:`m`.
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import decay_weights_, ema_


def rms(x, *, as_tensor=False):
    r"""Root mean square of a tensor, :math:`\|x\|_2 / \sqrt{n}`: a Python float (as torch
    reads it, with ``.item()``), or a 0-d tensor with ``as_tensor`` (a compiled step)."""
    if as_tensor:
        return x.norm(2) / x.numel() ** 0.5
    return x.norm(2).item() / (x.numel() ** 0.5)


def factored_second_moment_(row_var, col_var, grad, weight, eps1):
    """Update the row and column mean squares of ``grad``; return the rank-1 estimate of g^2.

    ``weight`` is 1 - beta2_t; matrices are the last two dimensions of ``grad``.
    """
    row_mean = torch.norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1))
    row_var.lerp_(row_mean, weight)
    col_mean = torch.norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2))
    col_var.lerp_(col_mean, weight)
    estimate = row_var @ col_var
    return estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))


def adafactor_update_(
    param,
    grad,
    row_var=None,
    col_var=None,
    variance=None,
    exp_avg=None,
    *,
    step,
    lr=1e-2,
    beta2_decay=-0.8,
    eps1=None,
    eps2=1e-3,
    d=1.0,
    weight_decay=0.0,
    beta1=None,
):
    """One Adafactor step in place: factored when ``row_var``/``col_var`` are given.

    With ``beta1`` (and its state ``exp_avg``) the step is smoothed by momentum.
    """
    if eps1 is None:
        eps1 = torch.finfo(param.dtype).eps
    # fused=True passes the step as a 0-d tensor: then every number stays a tensor, no .item()
    compiled = isinstance(step, torch.Tensor)
    one_minus_beta2 = step**beta2_decay
    if compiled:
        relative_step = torch.minimum(lr, step.rsqrt())
        alpha = rms(param, as_tensor=True).clamp(min=eps2) * relative_step
    else:
        relative_step = min(lr, 1 / (step**0.5))
        alpha = max(eps2, rms(param)) * relative_step
    if weight_decay != 0:
        decay_weights_(param, lr, weight_decay)
    if row_var is not None:
        var_estimate = factored_second_moment_(row_var, col_var, grad, one_minus_beta2, eps1)
    else:
        variance.lerp_(grad * grad, one_minus_beta2)
        var_estimate = variance.clone()
    update = var_estimate.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)
    if compiled:
        clip = (update.norm(2) / (update.numel() ** 0.5 * d)).clamp(min=1.0)
    else:
        clip = max(1.0, update.norm(2).item() / (update.numel() ** 0.5 * d))
    if beta1 is None:
        param.add_(update, alpha=-alpha / clip)
    else:
        ema_(exp_avg, update.mul_(alpha / clip), beta1)
        param.sub_(exp_avg)


class Adafactor(CourseOptimizer):
    """Adafactor(params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
    *, maximize=False, beta1=None).

    Same signature, defaults and numerics as torch.optim.Adafactor, plus the paper's optional
    momentum ``beta1``. State per parameter: ``row_var`` and ``col_var`` for tensors of 2 or
    more dimensions, ``variance`` for vectors and scalars, ``exp_avg`` with beta1.
    """

    supports_foreach = False

    def __init__(
        self,
        params,
        lr=1e-2,
        beta2_decay=-0.8,
        eps=(None, 1e-3),
        d=1.0,
        weight_decay=0.0,
        *,
        maximize=False,
        fused=None,
        beta1=None,
    ):
        if not beta2_decay <= 0.0:
            raise ValueError(f"beta2_decay must be <= 0, got {beta2_decay!r}")
        _args.pair("eps", eps)
        if eps[0] is not None:
            _args.nonnegative("eps[0]", eps[0])
        _args.nonnegative("eps[1]", eps[1])
        if not d >= 1.0:
            raise ValueError(f"d must be >= 1, got {d!r}")
        _args.nonnegative("weight_decay", weight_decay)
        if beta1 is not None:
            _args.unit_interval("beta1", beta1)
        defaults = dict(
            lr=lr,
            beta2_decay=beta2_decay,
            eps=tuple(eps),
            d=d,
            weight_decay=weight_decay,
            maximize=maximize,
            fused=fused,
            beta1=beta1,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        state = {}
        if param.dim() > 1:
            state["row_var"] = param.new_zeros(param.shape[:-1] + (1,))
            state["col_var"] = param.new_zeros(param.shape[:-2] + (1, param.shape[-1]))
        else:
            state["variance"] = zeros_state(param)
        if group["beta1"] is not None:
            state["exp_avg"] = zeros_state(param)
        return state

    def update(self, group, step, param, grad, state):
        eps1, eps2 = group["eps"]
        adafactor_update_(
            param,
            grad,
            state.get("row_var"),
            state.get("col_var"),
            state.get("variance"),
            state.get("exp_avg"),
            step=step,
            lr=group["lr"],
            beta2_decay=group["beta2_decay"],
            eps1=eps1,
            eps2=eps2,
            d=group["d"],
            weight_decay=group["weight_decay"],
            beta1=group["beta1"],
        )
