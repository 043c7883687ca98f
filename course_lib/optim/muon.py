r"""Muon (Jordan et al. 2024): momentum, orthogonalised by a Newton-Schulz iteration.

For a weight matrix :math:`W` with gradient :math:`G`:

.. math::

    B &\gets \mu B + (1 - \mu) G                                && \text{(momentum: EMA of } G) \\
    \tilde B &\gets \mu B + (1 - \mu) G \text{ (Nesterov) or } B \\
    O &\gets \mathrm{NS}_k(\tilde B) \approx U V^\top
        \quad (\tilde B = U \Sigma V^\top)                      && \text{(orthogonalise)} \\
    W &\gets (1 - \eta\lambda) W - \eta\, s(A, B)\, O           && \text{(decoupled decay, step)}

:math:`U V^\top` is the polar factor of :math:`\tilde B`: the same singular vectors, every
singular value set to 1. It is the steepest-descent direction under the spectral norm
(Bernstein & Newhouse 2024). The shape factor :math:`s` of an :math:`A \times B` matrix is
:math:`\sqrt{\max(1, A/B)}` (``adjust_lr_fn=None`` or ``"original"``, Keller Jordan's) or
:math:`0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``, Liu et al. 2025: the update's RMS then
matches AdamW's, about 0.2, so AdamW's learning rate and weight decay carry over).

Exactly torch.optim.Muon of torch 2.13, including its choice to run the iteration in
bfloat16 whatever the parameter's dtype.
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer
from .transforms import decay_weights_, ema_

MUON_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
CUBIC_COEFFICIENTS = (1.5, -0.5, 0.0)


def newton_schulz_(x, coefficients=MUON_COEFFICIENTS, steps=5, eps=1e-7, *, copy_back=True):
    r"""Approximate the polar factor :math:`U V^\top` of the matrix ``x``, in place.

    ``x`` is first divided by its Frobenius norm, so every singular value is at most 1.
    Each iteration then applies the odd polynomial

    .. math::  X \gets a X + b (X X^\top) X + c (X X^\top)^2 X,

    which maps each singular value :math:`\sigma` to :math:`a\sigma + b\sigma^3 +
    c\sigma^5` and leaves the singular vectors alone. The cubic (1.5, -0.5, 0) converges
    to 1; Muon's quintic (3.4445, -4.7750, 2.0315) has a steeper slope at 0 and pushes
    small singular values up faster, at the price of oscillating in a band around 1.
    A tall matrix is iterated as its transpose, so the Gram matrix is the smaller one.
    Works in the dtype of ``x`` (torch.optim.Muon passes a bfloat16 copy). Returns ``x``;
    with ``copy_back=False`` the result is returned as a new tensor and ``x`` is left scaled
    (Muon's step does so: it saves one copy per matrix).
    """
    a, b, c = coefficients
    tall = x.size(0) > x.size(1)
    y = x.T if tall else x
    y.div_(y.norm().clamp(min=eps))
    for _ in range(steps):
        gram = y @ y.T
        polynomial = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        y = torch.addmm(y, polynomial, y, beta=a)
    y = y.T if tall else y
    return x.copy_(y) if copy_back else y


def adjusted_lr(lr, adjust_lr_fn, shape):
    """The learning rate times Muon's shape factor s(A, B) (see the module docstring)."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * max(1, rows / cols) ** 0.5
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * max(rows, cols) ** 0.5
    return lr


def muon_update_(
    param,
    grad,
    momentum_buffer,
    *,
    lr,
    weight_decay=0.1,
    momentum=0.95,
    nesterov=True,
    ns_coefficients=MUON_COEFFICIENTS,
    eps=1e-7,
    ns_steps=5,
    adjust_lr_fn=None,
):
    """One Muon step on the matrix ``param`` and its ``momentum_buffer``, in place."""
    ema_(momentum_buffer, grad, momentum)
    update = grad.lerp(momentum_buffer, momentum) if nesterov else momentum_buffer
    # copy the buffer even when it is bfloat16 already: the scaling must not touch it
    update = update.to(torch.bfloat16, copy=update is momentum_buffer)
    update = newton_schulz_(update, ns_coefficients, ns_steps, eps, copy_back=False)
    decay_weights_(param, lr, weight_decay)
    param.add_(update, alpha=-adjusted_lr(lr, adjust_lr_fn, param.shape))


class Muon(CourseOptimizer):
    """Muon(params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
    ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None).

    Same signature, defaults and numerics as torch.optim.Muon, plus torch's ``maximize``
    keyword. Only 2-D parameters are accepted (biases, gains and embeddings belong to
    another optimizer, such as AdamW). State per parameter: ``momentum_buffer``.
    """

    supports_foreach = False

    def __init__(
        self,
        params,
        lr=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=MUON_COEFFICIENTS,
        eps=1e-7,
        ns_steps=5,
        adjust_lr_fn=None,
        *,
        maximize=False,
        fused=None,
    ):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("lr: a tensor lr must have one element")
        _args.lr(lr)
        _args.nonnegative("weight_decay", weight_decay)
        _args.nonnegative("momentum", momentum)
        _args.nonnegative("eps", eps)
        if len(ns_coefficients) != 3:
            raise ValueError(f"ns_coefficients must be (a, b, c), got {ns_coefficients!r}")
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or not 0 <= ns_steps < 100:
            raise ValueError(f"ns_steps must be an integer in [0, 100), got {ns_steps!r}")
        if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
            raise ValueError(
                f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got {adjust_lr_fn!r}"
            )
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=tuple(ns_coefficients),
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            if p.ndim != 2:
                raise ValueError(f"params: Muon only supports 2-D parameters, got shape {p.shape}")

    def init_state(self, param, group):
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def update(self, group, step, param, grad, state):
        lr = group["lr"]
        muon_update_(
            param,
            grad,
            state["momentum_buffer"],
            lr=lr,
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            ns_coefficients=group["ns_coefficients"],
            eps=group["eps"],
            ns_steps=group["ns_steps"],
            adjust_lr_fn=group["adjust_lr_fn"],
        )
