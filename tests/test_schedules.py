"""Schedules equal torch's lr_schedulers step by step; shape properties; bad input."""

import math
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler

from course_lib import schedules as S
from course_lib.schedules import torch_lrs


def assert_all_close(ours, theirs):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), f"step {step}: {a} != {b}"


def test_step_decay_equals_step_lr():
    theirs = torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 60, 0.3)
    assert_all_close([S.step_decay(t, lr=0.3, step_size=7, gamma=0.5) for t in range(60)], theirs)


def test_exponential_equals_exponential_lr():
    theirs = torch_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.95), 100, 0.1)
    assert_all_close([S.exponential(t, lr=0.1, gamma=0.95) for t in range(100)], theirs)


def test_cosine_decay_equals_cosine_annealing_lr():
    theirs = torch_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=1e-3), 51, 0.2)
    ours = [S.cosine_decay(t, total_steps=50, peak_lr=0.2, min_lr=1e-3) for t in range(51)]
    assert_all_close(ours, theirs)


def test_linear_warmup_equals_linear_lr():
    theirs = torch_lrs(
        lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10),
        30,
        0.5,
    )
    ours = [S.linear_warmup(t, warmup_steps=10, peak_lr=0.5, start_lr=0.05) for t in range(30)]
    assert_all_close(ours, theirs)


def test_warmup_cosine_equals_linear_lr_then_cosine_in_sequential_lr():
    warmup, total, peak, low = 8, 40, 0.3, 0.01

    def make(opt):
        ramp = lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=warmup)
        decay = lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=low)
        return lr_scheduler.SequentialLR(opt, [ramp, decay], milestones=[warmup])

    theirs = torch_lrs(make, total + 1, peak)
    ours = [
        S.warmup_cosine(
            t, warmup_steps=warmup, total_steps=total, peak_lr=peak, min_lr=low, start_lr=0.075
        )
        for t in range(total + 1)
    ]
    assert_all_close(ours, theirs)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("total,pct", [(100, 0.3), (37, 0.25), (10, 0.5)])
def test_one_cycle_equals_one_cycle_lr(strategy, total, pct):
    def make(opt):
        return lr_scheduler.OneCycleLR(
            opt,
            max_lr=0.4,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=strategy,
            div_factor=20.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        )

    theirs = torch_lrs(make, total, 0.4)
    ours = [
        S.one_cycle(
            t,
            total_steps=total,
            max_lr=0.4,
            pct_start=pct,
            div_factor=20.0,
            final_div_factor=100.0,
            anneal_strategy=strategy,
        )
        for t in range(total)
    ]
    assert_all_close(ours, theirs)


def test_lambda_lr_adapter_drives_a_torch_optimizer():
    schedule = partial(S.warmup_cosine, warmup_steps=5, total_steps=30, peak_lr=0.2, min_lr=0.02)
    theirs = torch_lrs(lambda o: S.lambda_lr(o, schedule), 35, 0.2)
    assert_all_close([schedule(t) for t in range(35)], theirs)
    # the adapter does not depend on the optimizer's own lr
    theirs_other_lr = torch_lrs(lambda o: S.lambda_lr(o, schedule), 35, 7.0)
    assert_all_close([schedule(t) for t in range(35)], theirs_other_lr)


def check_shape(lrs, peak_step, peak_lr, min_lr):
    """No decay during warmup, peak at its end, monotone after, >= min, never rising again."""
    tol = 1e-12 * max(peak_lr, 1e-300)
    for a, b in zip(lrs[:peak_step], lrs[1 : peak_step + 1], strict=True):
        assert b >= a - tol, "decayed during warmup"
    assert lrs[peak_step] == pytest.approx(peak_lr, rel=1e-12)
    assert max(lrs) <= peak_lr + tol
    after = lrs[peak_step:]
    for a, b in zip(after, after[1:], strict=False):
        assert b <= a + tol, "rose after the peak"
    assert min(after) >= min_lr - tol
    reached = [i for i, lr in enumerate(after) if lr <= min_lr + tol]
    if reached:
        assert all(lr == pytest.approx(min_lr, abs=tol) for lr in after[reached[0] :])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    warmup=st.integers(0, 30),
    length=st.integers(1, 100),
    decay=st.integers(1, 40),
    peak=st.floats(1e-4, 10.0),
    min_fraction=st.floats(0.0, 1.0),
    start_fraction=st.floats(0.0, 1.0),
)
def test_every_schedule_has_the_promised_shape(
    warmup, length, decay, peak, min_fraction, start_fraction
):
    total = warmup + length
    low, start = peak * min_fraction, peak * start_fraction
    steps = range(total + decay + 20)
    wc = [
        S.warmup_cosine(
            t, warmup_steps=warmup, total_steps=total, peak_lr=peak, min_lr=low, start_lr=start
        )
        for t in steps
    ]
    check_shape(wc, warmup, peak, low)
    wsd_total = warmup + decay + length
    wsd = [
        S.warmup_stable_decay(
            t,
            warmup_steps=warmup,
            decay_steps=decay,
            total_steps=wsd_total,
            peak_lr=peak,
            min_lr=low,
            start_lr=start,
        )
        for t in range(wsd_total + 10)
    ]
    check_shape(wsd, warmup, peak, low)
    assert wsd[wsd_total - decay] == peak and wsd[wsd_total] == pytest.approx(low, abs=1e-12)
    check_shape(
        [S.cosine_decay(t, total_steps=total, peak_lr=peak, min_lr=low) for t in steps],
        0,
        peak,
        low,
    )
    if warmup > 0:
        lw = [S.linear_warmup(t, warmup_steps=warmup, peak_lr=peak, start_lr=start) for t in steps]
        check_shape(lw, warmup, peak, peak)
    check_shape([S.constant(t, lr=peak) for t in steps], 0, peak, peak)
    gamma = 0.5 + 0.5 * min_fraction
    check_shape([S.exponential(t, lr=peak, gamma=gamma) for t in steps], 0, peak, 0.0)
    check_shape(
        [S.step_decay(t, lr=peak, step_size=decay, gamma=gamma) for t in steps], 0, peak, 0.0
    )
    if total >= 4:
        final = peak / 25.0 / 1e4
        oc = [S.one_cycle(t, total_steps=total, max_lr=peak, pct_start=0.5) for t in steps]
        peak_step = 0.5 * total - 1
        if peak_step == int(peak_step):  # the peak itself is a step
            check_shape(oc, int(peak_step), peak, final)
        assert oc[-1] == pytest.approx(final, rel=1e-12)


def test_warmup_reaches_peak_exactly_and_cosine_midpoint_is_the_mean():
    kw = dict(warmup_steps=10, total_steps=110, peak_lr=1.0, min_lr=0.2)
    assert S.warmup_cosine(0, **kw) == 0.0
    assert S.warmup_cosine(5, **kw) == 0.5
    assert S.warmup_cosine(10, **kw) == 1.0
    assert S.warmup_cosine(60, **kw) == pytest.approx(0.6, rel=1e-15)
    assert S.warmup_cosine(110, **kw) == pytest.approx(0.2, rel=1e-15)
    assert S.warmup_cosine(10_000, **kw) == 0.2
    assert S.cosine_decay(25, total_steps=100, peak_lr=1.0) == pytest.approx(
        (1 + math.cos(math.pi / 4)) / 2, rel=1e-15
    )


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: S.warmup_cosine(0, warmup_steps=11, total_steps=10, peak_lr=1.0), "warmup_steps"),
        (lambda: S.warmup_cosine(-1, warmup_steps=1, total_steps=10, peak_lr=1.0), "step"),
        (lambda: S.warmup_cosine(1.5, warmup_steps=1, total_steps=10, peak_lr=1.0), "step"),
        (lambda: S.warmup_cosine(0, warmup_steps=1, total_steps=0, peak_lr=1.0), "total_steps"),
        (lambda: S.warmup_cosine(0, warmup_steps=1, total_steps=9, peak_lr=-1.0), "peak_lr"),
        (
            lambda: S.warmup_cosine(0, warmup_steps=1, total_steps=9, peak_lr=1.0, min_lr=2.0),
            "min_lr",
        ),
        (
            lambda: S.warmup_stable_decay(
                0, warmup_steps=5, decay_steps=6, total_steps=10, peak_lr=1.0
            ),
            "decay_steps",
        ),
        (lambda: S.linear_warmup(0, warmup_steps=0, peak_lr=1.0), "warmup_steps"),
        (lambda: S.cosine_decay(0, total_steps=0, peak_lr=1.0), "total_steps"),
        (lambda: S.step_decay(0, lr=1.0, step_size=0), "step_size"),
        (lambda: S.step_decay(0, lr=1.0, step_size=2, gamma=0.0), "gamma"),
        (lambda: S.exponential(0, lr=1.0, gamma=1.5), "gamma"),
        (lambda: S.constant(0, lr=float("nan")), "lr"),
        (lambda: S.one_cycle(0, total_steps=10, max_lr=1.0, pct_start=1.0), "pct_start"),
        (lambda: S.one_cycle(0, total_steps=3, max_lr=1.0, pct_start=0.3), "pct_start"),
        (lambda: S.one_cycle(0, total_steps=10, max_lr=1.0, anneal_strategy="x"), "anneal"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_lambda_lr_rejects_zero_lr():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        S.lambda_lr(opt, partial(S.constant, lr=0.1))


def test_settings_are_checked_once_not_at_every_step(monkeypatch):
    calls = []
    check_range = S._check_range
    monkeypatch.setattr(S, "_check_range", lambda *a, **k: calls.append(a) or check_range(*a, **k))
    settings = dict(warmup_steps=3, total_steps=17, peak_lr=0.25, min_lr=0.01)
    lrs = [S.warmup_cosine(t, **settings) for t in range(17)]
    assert len(calls) == 2  # (min_lr, peak_lr) and (start_lr, peak_lr), at the first call only
    assert lrs[3] == 0.25 and lrs[-1] > 0.01
    with pytest.raises(ValueError, match="step"):  # the step is still checked at every call
        S.warmup_cosine(True, **settings)
    with pytest.raises(ValueError, match="peak_lr"):  # other settings: checked again
        S.warmup_cosine(0, **dict(settings, peak_lr=True))
