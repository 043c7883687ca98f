r"""Tools of the tuning guide: per-step learning rates and clipping, the learning-rate range
test, and a detector of loss spikes and NaNs.

**Controls.** :class:`Controlled` wraps any optimizer. Before step :math:`t` it sets every
group's learning rate to :math:`\eta_t = \text{lr\_schedule}(t)`; after the backward pass
it measures the gradient norm :math:`\lVert g_t \rVert_2` over all parameters and, with
``max_grad_norm`` :math:`= c`, rescales the gradient to
:math:`g_t \min(1, c / \lVert g_t \rVert_2)` (``torch.nn.utils.clip_grad_norm_``).
It records :math:`\eta_t` and the norm before clipping, so a chapter can plot them.

**Learning-rate range test** (Smith 2017). Train for :math:`T` steps while the learning rate
grows geometrically from :math:`\eta_{min}` to :math:`\eta_{max}`,

.. math::  \eta_t = \eta_{min} \, (\eta_{max} / \eta_{min})^{t / (T - 1)},

and record the loss of every step. The loss first barely moves (the rate is too small), then
falls, then rises and blows up (too large). :func:`suggest_lr` smooths the curve and picks
a rate a fixed factor below the one where the smoothed loss is lowest.

**Spikes and NaNs.** :func:`detect_spikes` flags step :math:`t` when its loss is not finite,
or when :math:`\ell_t > \text{factor} \cdot \operatorname{median}(\ell_{t-w}, \dots,
\ell_{t-1})`, the median of the last :math:`w` finite losses before it (raised to a ``floor``
if asked). The median, unlike the mean, is not dragged up by the spike it is meant to judge.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from course_lib import _args
from course_lib.train import train


class Controlled:
    """``optimizer`` with a learning rate set at every step and optional gradient clipping.

    It has the two methods the training loop uses, ``zero_grad`` and ``step(closure)``.
    ``lrs`` and ``grad_norms`` list, per step, the rate used and the gradient norm measured
    before clipping (the norm of the closure's last call).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr_schedule: Callable[[int], float] | None = None,
        max_grad_norm: float | None = None,
    ):
        if max_grad_norm is not None:
            _args.positive("max_grad_norm", max_grad_norm)
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.max_grad_norm = max_grad_norm
        self.lrs: list[float] = []
        self.grad_norms: list[float] = []

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _parameters(self):
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def step(self, closure):
        if self.lr_schedule is not None:
            lr = float(self.lr_schedule(len(self.lrs)))
            for group in self.param_groups:
                group["lr"] = lr
        self.lrs.append(self.param_groups[0]["lr"])
        norms = []

        def measured_closure():
            loss = closure()
            parameters = self._parameters()
            if self.max_grad_norm is None:
                grads = [p.grad.detach().flatten() for p in parameters]
                norm = torch.linalg.vector_norm(torch.cat(grads)) if grads else torch.zeros(())
            else:
                norm = torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
            norms.append(float(norm))
            return loss

        loss = self.optimizer.step(measured_closure)
        self.grad_norms.append(norms[-1] if norms else math.nan)
        return loss


def exponential_lrs(min_lr: float, max_lr: float, steps: int) -> list[float]:
    """``steps`` rates growing geometrically from ``min_lr`` to ``max_lr`` (both included)."""
    _args.positive("min_lr", min_lr)
    _args.positive("max_lr", max_lr)
    if max_lr <= min_lr:
        raise ValueError(f"max_lr ({max_lr}) must be larger than min_lr ({min_lr})")
    _args.integer("steps", steps, minimum=2)
    ratio = max_lr / min_lr
    return [min_lr * ratio ** (t / (steps - 1)) for t in range(steps)]


@dataclass
class RangeTest:
    """The learning rate and the minibatch loss of every step of a range test."""

    lrs: list[float]
    losses: list[float]


def lr_range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn,
    data,
    *,
    min_lr: float = 1e-4,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> RangeTest:
    """Train ``model`` for ``steps`` steps with the rates of :func:`exponential_lrs` and
    return every step's rate and loss. The model is changed: start the real run afresh."""
    lrs = exponential_lrs(min_lr, max_lr, steps)
    controlled = Controlled(optimizer, lr_schedule=lambda t: lrs[t])
    history = train(model, controlled, loss_fn, data, steps=steps, batch_size=batch_size,
                    seed=seed, progress=progress)  # fmt: skip
    return RangeTest(controlled.lrs, history.loss)


def smooth(values: Sequence[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average: ``m_t = beta m_{t-1} + (1 - beta) x_t``,
    reported as ``m_t / (1 - beta^(t+1))`` so the first values are not pulled toward 0."""
    _args.unit_interval("beta", beta)
    average, out = 0.0, []
    for t, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** (t + 1)))
    return out


def suggest_lr(
    lrs: Sequence[float], losses: Sequence[float], *, beta: float = 0.9, factor: float = 10.0
) -> float:
    """The rate where the smoothed loss is lowest, divided by ``factor``.

    Non-finite losses end the curve (everything after the first one is ignored). At the
    minimum the rate is already at the edge of stability; ``factor`` backs off from it."""
    if len(lrs) != len(losses) or not lrs:
        raise ValueError("lrs and losses must be non-empty and of the same length")
    _args.positive("factor", factor)
    finite = next((t for t, loss in enumerate(losses) if not math.isfinite(loss)), len(losses))
    if finite == 0:
        raise ValueError("the first loss is not finite: lower min_lr")
    smoothed = smooth(losses[:finite], beta)
    best = min(range(finite), key=smoothed.__getitem__)
    return lrs[best] / factor


def detect_spikes(
    losses: Sequence[float], *, window: int = 10, factor: float = 2.0, floor: float = 0.0
) -> list[bool]:
    """One flag per step: the loss is NaN or infinite, or larger than ``factor`` times the
    median of the last ``window`` finite losses before it (none flagged before there is one).

    ``floor`` is the smallest median used: near zero, a ratio test takes minibatch noise for
    spikes (0.02 after 0.005 is a factor 4), so the median is raised to ``floor`` first."""
    _args.integer("window", window, minimum=1)
    if not (isinstance(factor, (int, float)) and factor > 1):
        raise ValueError(f"factor must be a number > 1, got {factor!r}")
    _args.nonnegative("floor", floor)
    flags, recent = [], []
    for loss in losses:
        loss = float(loss)
        if not math.isfinite(loss):
            flags.append(True)
            continue
        flags.append(bool(recent) and loss > factor * max(statistics.median(recent), floor))
        recent = (recent + [loss])[-window:]
    return flags
