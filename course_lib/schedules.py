"""Learning-rate schedules as pure functions of the step: ``lr = schedule(step, **settings)``.

Every schedule takes the (0-based) step first and its settings as keyword-only arguments,
and returns a float. ``functools.partial`` fixes the settings; :func:`lambda_lr` turns the
result into a ``torch.optim.lr_scheduler.LambdaLR`` so it drives any torch optimizer.

With t the step, W the warmup length, T the total length, eta_max the peak and eta_min the
minimum learning rate:

* constant:         eta
* step decay:       eta * gamma^floor(t / step_size)                    (= torch StepLR)
* exponential:      eta * gamma^t                                        (= torch ExponentialLR)
* linear warmup:    eta_0 + (eta_max - eta_0) * min(t, W) / W            (= torch LinearLR)
* cosine decay:     eta_min + (eta_max - eta_min) * (1 + cos(pi * min(t, T) / T)) / 2
                                                                         (= CosineAnnealingLR)
* warmup + cosine:  linear warmup for t < W, then cosine decay over the remaining T - W steps
                                                 (= LinearLR then CosineAnnealingLR, SequentialLR)
* warmup-stable-decay (WSD): linear warmup, constant eta_max, then a linear decay to eta_min
  over the last D steps.
* one-cycle:        cosine (or linear) rise from eta_max / div_factor to eta_max over the first
  pct_start of the steps, then down to eta_max / (div_factor * final_div_factor)
                                                                         (= torch OneCycleLR)

After their last step, decaying schedules stay at their minimum.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable

import torch

from course_lib import _args


def _checked(check: Callable[..., None]):
    """Decorator: ``check(**settings)`` runs the first time the schedule meets these settings.

    A schedule is called at every step with the same settings; they are checked once (the
    step itself, an integer >= 0, at every call).
    """

    def decorate(schedule):
        signature = inspect.signature(schedule)
        valid = set()

        @functools.wraps(schedule)
        def checked(step, **settings):
            _args.integer("step", step, minimum=0)
            key = tuple(sorted((name, type(v), v) for name, v in settings.items()))
            if key not in valid:
                bound = signature.bind(step, **settings)
                bound.apply_defaults()
                check(**{k: v for k, v in bound.arguments.items() if k != "step"})
                valid.add(key)
            return schedule(step, **settings)

        return checked

    return decorate


def _check_range(min_lr: float, peak_lr: float, peak_name: str = "peak_lr") -> None:
    _args.nonnegative(peak_name, peak_lr)
    _args.nonnegative("min_lr", min_lr)
    if min_lr > peak_lr:
        raise ValueError(f"min_lr ({min_lr}) must be <= {peak_name} ({peak_lr})")


def _check_gamma(gamma: float) -> None:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")


def _check_warmup(warmup_steps: int, total_steps: int) -> None:
    _args.integer("total_steps", total_steps, minimum=1)
    _args.integer("warmup_steps", warmup_steps, minimum=0)
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be <= total_steps ({total_steps})")


def _cosine(start: float, end: float, fraction: float) -> float:
    """Half a cosine from ``start`` (fraction 0) down to ``end`` (fraction 1)."""
    return end + (start - end) * (1.0 + math.cos(math.pi * fraction)) / 2.0


def _check_constant(*, lr):
    _args.nonnegative("lr", lr)


@_checked(_check_constant)
def constant(step: int, *, lr: float) -> float:
    """eta, at every step."""
    return float(lr)


def _check_step_decay(*, lr, step_size, gamma):
    _args.nonnegative("lr", lr)
    _args.integer("step_size", step_size, minimum=1)
    _check_gamma(gamma)


@_checked(_check_step_decay)
def step_decay(step: int, *, lr: float, step_size: int, gamma: float = 0.1) -> float:
    """eta * gamma ** (step // step_size): multiply by gamma every ``step_size`` steps."""
    return lr * gamma ** (step // step_size)


def _check_exponential(*, lr, gamma):
    _args.nonnegative("lr", lr)
    _check_gamma(gamma)


@_checked(_check_exponential)
def exponential(step: int, *, lr: float, gamma: float) -> float:
    """eta * gamma ** step."""
    return lr * gamma**step


def _check_linear_warmup(*, warmup_steps, peak_lr, start_lr):
    _args.integer("warmup_steps", warmup_steps, minimum=1)
    _check_range(start_lr, peak_lr)


@_checked(_check_linear_warmup)
def linear_warmup(step: int, *, warmup_steps: int, peak_lr: float, start_lr: float = 0.0) -> float:
    """Straight line from ``start_lr`` at step 0 to ``peak_lr`` at ``warmup_steps``, then flat."""
    if step >= warmup_steps:
        return float(peak_lr)
    return start_lr + (peak_lr - start_lr) * step / warmup_steps


def _check_cosine_decay(*, total_steps, peak_lr, min_lr):
    _args.integer("total_steps", total_steps, minimum=1)
    _check_range(min_lr, peak_lr)


@_checked(_check_cosine_decay)
def cosine_decay(step: int, *, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    """Half a cosine from ``peak_lr`` at step 0 to ``min_lr`` at ``total_steps``, then flat."""
    return _cosine(peak_lr, min_lr, min(step, total_steps) / total_steps)


def _check_warmup_cosine(*, warmup_steps, total_steps, peak_lr, min_lr, start_lr):
    _check_warmup(warmup_steps, total_steps)
    _check_range(min_lr, peak_lr)
    _check_range(start_lr, peak_lr)


@_checked(_check_warmup_cosine)
def warmup_cosine(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    peak_lr: float,
    min_lr: float = 0.0,
    start_lr: float = 0.0,
) -> float:
    """Linear warmup from ``start_lr`` to ``peak_lr`` over ``warmup_steps``, then cosine decay
    to ``min_lr`` at ``total_steps`` (and ``min_lr`` after)."""
    if step < warmup_steps:
        return start_lr + (peak_lr - start_lr) * step / warmup_steps
    if total_steps == warmup_steps:
        return float(min_lr)
    fraction = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
    return _cosine(peak_lr, min_lr, fraction)


def _check_warmup_stable_decay(
    *, warmup_steps, decay_steps, total_steps, peak_lr, min_lr, start_lr
):
    _check_warmup(warmup_steps, total_steps)
    _args.integer("decay_steps", decay_steps, minimum=1)
    if warmup_steps + decay_steps > total_steps:
        raise ValueError(
            f"warmup_steps + decay_steps ({warmup_steps} + {decay_steps}) must be "
            f"<= total_steps ({total_steps})"
        )
    _check_range(min_lr, peak_lr)
    _check_range(start_lr, peak_lr)


@_checked(_check_warmup_stable_decay)
def warmup_stable_decay(
    step: int,
    *,
    warmup_steps: int,
    decay_steps: int,
    total_steps: int,
    peak_lr: float,
    min_lr: float = 0.0,
    start_lr: float = 0.0,
) -> float:
    """WSD: linear warmup over ``warmup_steps``, ``peak_lr`` held, then a linear decay to
    ``min_lr`` over the last ``decay_steps`` steps before ``total_steps``."""
    decay_start = total_steps - decay_steps
    if step < warmup_steps:
        return start_lr + (peak_lr - start_lr) * step / warmup_steps
    if step < decay_start:
        return float(peak_lr)
    fraction = min(step - decay_start, decay_steps) / decay_steps
    return peak_lr + (min_lr - peak_lr) * fraction


def _check_one_cycle(
    *, total_steps, max_lr, pct_start, div_factor, final_div_factor, anneal_strategy
):
    _args.integer("total_steps", total_steps, minimum=2)
    _args.nonnegative("max_lr", max_lr)
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start!r}")
    if not (div_factor >= 1.0 and final_div_factor >= 1.0):
        raise ValueError("div_factor and final_div_factor must be >= 1")
    _args.one_of("anneal_strategy", anneal_strategy, ("cos", "linear"))
    peak_step, last_step = float(pct_start * total_steps) - 1, total_steps - 1
    if not 0 < peak_step < last_step:
        raise ValueError(
            f"pct_start * total_steps - 1 ({peak_step}) must lie strictly between 0 and "
            f"total_steps - 1 ({last_step}): choose a larger total_steps or another pct_start"
        )


@_checked(_check_one_cycle)
def one_cycle(
    step: int,
    *,
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
) -> float:
    """Smith's one-cycle policy with torch.optim.lr_scheduler.OneCycleLR's numerics.

    Rises from max_lr / div_factor to max_lr at step pct_start * total_steps - 1, then falls
    to max_lr / (div_factor * final_div_factor) at step total_steps - 1 (and stays there).
    """
    peak_step = float(pct_start * total_steps) - 1
    last_step = total_steps - 1

    def anneal(start: float, end: float, fraction: float) -> float:
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)
        return (end - start) * fraction + start

    initial_lr = max_lr / div_factor
    final_lr = initial_lr / final_div_factor
    if step <= peak_step:
        return anneal(initial_lr, max_lr, step / peak_step)
    fraction = min(step, last_step) - peak_step
    return anneal(max_lr, final_lr, fraction / (last_step - peak_step))


def lambda_lr(
    optimizer: torch.optim.Optimizer, schedule: Callable[[int], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that sets every group's lr to ``schedule(step)``.

    LambdaLR multiplies each group's initial lr by a factor; the factor used is
    ``schedule(step) / initial_lr``, so each group's initial lr must be > 0. Use
    ``functools.partial`` to fix the schedule's settings, e.g.
    ``lambda_lr(opt, partial(warmup_cosine, warmup_steps=100, total_steps=1000, peak_lr=3e-4))``.
    """
    factors = []
    for i, group in enumerate(optimizer.param_groups):
        base_lr = float(group.get("initial_lr", group["lr"]))
        if not base_lr > 0:
            raise ValueError(f"param group {i} has lr {base_lr}: lambda_lr needs lr > 0")
        factors.append(lambda step, base_lr=base_lr: schedule(step) / base_lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def torch_lrs(
    make_scheduler: Callable[[torch.optim.Optimizer], object], n_steps: int, lr: float
) -> list[float]:
    """The learning rate that a torch scheduler sets at steps ``0 .. n_steps - 1``.

    ``make_scheduler(optimizer)`` builds the scheduler around a dummy one-parameter SGD
    whose initial lr is ``lr``; each step reads the lr, steps the optimizer, then the
    scheduler. This is how the tests and chapter 10 compare a schedule with torch's.
    """
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR warns about its own internal calls
        for _ in range(n_steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return lrs
