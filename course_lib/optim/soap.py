r"""SOAP (Vyas et al. 2024): Adam run in the eigenbasis of Shampoo's preconditioners.

For a matrix :math:`W` with gradient :math:`G`, SOAP keeps Shampoo's two statistics as
moving averages, and their eigenvectors :math:`Q_L, Q_R` (refreshed every
``precondition_frequency`` = f steps):

.. math::

    L &\gets \beta_s L + (1 - \beta_s) G G^\top, \qquad
    R \gets \beta_s R + (1 - \beta_s) G^\top G
        && \text{(Shampoo's statistics)} \\
    Q_L, Q_R &\gets \operatorname{eigvecs}(L), \operatorname{eigvecs}(R)
        \text{ at steps } 1, 1 + f, 1 + 2f, \dots \\
    M &\gets \beta_1 M + (1 - \beta_1) G && \text{(momentum, in the original basis)} \\
    V &\gets \beta_2 V + (1 - \beta_2) (Q_L^\top G Q_R)^2 && \text{(Adam's } v
        \text{, in the rotated basis)} \\
    W &\gets (1 - \eta\lambda) W - \eta\, Q_L \left[
        \frac{Q_L^\top M Q_R / (1 - \beta_1^t)}{\sqrt{V / (1 - \beta_2^t)} + \epsilon}
        \right] Q_R^\top

In the eigenbasis, Shampoo's preconditioner :math:`L^{-1/4}\,\cdot\,R^{-1/4}` is diagonal;
SOAP replaces that fixed diagonal by Adam's running one, so it can refresh the basis rarely.
An order-k tensor is rotated along every mode (:math:`\times_i Q_i^\top`); a vector or a
scalar is not rotated (plain AdamW, as in the paper's default). ``shampoo_beta`` defaults
to :math:`\beta_2`.

Like this course's Shampoo, the statistics include the current gradient before the basis is
computed, so step 1 already moves the weights; the authors' code instead skips the update
on step 1 and refreshes the basis by one power iteration with a QR decomposition (cheaper
than ``eigh``; the same basis in the limit).
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer
from .shampoo import mode_product, unfold
from .transforms import bias_correction, decay_weights_, ema_, ema_of_squares_


def rotate(tensor, bases, *, back=False):
    """``tensor`` times Q_i^T along each mode i (into the eigenbasis), or times Q_i (back)."""
    for mode, basis in enumerate(bases):
        tensor = mode_product(tensor, basis if back else basis.T, mode)
    return tensor


def soap_update_(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    statistics,
    bases,
    *,
    step,
    lr,
    beta1=0.95,
    beta2=0.95,
    shampoo_beta=0.95,
    eps=1e-8,
    weight_decay=0.01,
    precondition_frequency=10,
):
    """One SOAP step on ``param`` (state updated in place)."""
    for mode, statistic in enumerate(statistics):
        g = unfold(grad, mode)
        ema_(statistic, g @ g.T, shampoo_beta)
        if (step - 1) % precondition_frequency == 0:
            bases[mode].copy_(torch.linalg.eigh(statistic).eigenvectors)
    ema_(exp_avg, grad, beta1)
    ema_of_squares_(exp_avg_sq, rotate(grad, bases), beta2)
    denom = exp_avg_sq.sqrt().div_(bias_correction(beta2, step) ** 0.5).add_(eps)
    direction = rotate(rotate(exp_avg, bases) / denom, bases, back=True)
    decay_weights_(param, lr, weight_decay)
    param.add_(direction, alpha=-lr / bias_correction(beta1, step))


class SOAP(CourseOptimizer):
    """SOAP(params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, eps=1e-8,
    weight_decay=0.01, precondition_frequency=10, *, maximize=False).

    Defaults of the authors' code. State per parameter: ``exp_avg`` (M), ``exp_avg_sq``
    (V, in the rotated basis) and, for tensors of order >= 2, ``statistics`` and ``bases``
    (one d_i x d_i matrix each per dimension).
    """

    supports_foreach = False

    def __init__(
        self,
        params,
        lr=3e-3,
        betas=(0.95, 0.95),
        shampoo_beta=None,
        eps=1e-8,
        weight_decay=0.01,
        precondition_frequency=10,
        *,
        maximize=False,
        fused=None,
    ):
        _args.lr(lr)
        _args.betas(betas)
        if shampoo_beta is not None:
            _args.unit_interval("shampoo_beta", shampoo_beta)
        _args.nonnegative("eps", eps)
        _args.nonnegative("weight_decay", weight_decay)
        f = precondition_frequency
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise ValueError(f"precondition_frequency must be an integer >= 1, got {f!r}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            shampoo_beta=shampoo_beta,
            eps=eps,
            weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        state = {
            "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
        }
        dims = param.shape if param.dim() >= 2 else ()
        state["statistics"] = [param.new_zeros(d, d) for d in dims]
        state["bases"] = [param.new_zeros(d, d) for d in dims]
        return state

    def update(self, group, step, param, grad, state):
        beta1, beta2 = group["betas"]
        shampoo_beta = group["shampoo_beta"]
        soap_update_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["statistics"],
            state["bases"],
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            shampoo_beta=beta2 if shampoo_beta is None else shampoo_beta,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            precondition_frequency=group["precondition_frequency"],
        )
