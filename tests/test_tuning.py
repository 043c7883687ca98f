"""course_lib.tuning against independent references: torch.nn.utils.clip_grad_norm_ and
torch.optim.SGD for the controlled step, numpy.geomspace for the range test's rates, the
statistics module for the spike detector's median, a direct sum for the moving average."""

import math
import statistics

import numpy as np
import pytest
import torch

from course_lib import tuning
from course_lib.optim import SGD


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))


def _batch(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(16, 5, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def _closure(model, optimizer, x, y):
    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("max_norm", [None, 0.05, 100.0])
def test_controlled_step_matches_torch_clip_and_sgd(max_norm):
    x, y = _batch()
    ours, reference = _model(), _model()
    controlled = tuning.Controlled(
        SGD(ours.parameters(), lr=0.1, momentum=0.9),
        lr_schedule=lambda t: 0.5 / (t + 1),
        max_grad_norm=max_norm,
    )
    torch_sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for t in range(3):
        controlled.step(_closure(ours, controlled, x, y))
        torch_sgd.zero_grad()
        torch.nn.functional.cross_entropy(reference(x), y).backward()
        grads = [p.grad.double().flatten() for p in reference.parameters()]
        norm = torch.cat(grads).norm().item()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm)
        for group in torch_sgd.param_groups:
            group["lr"] = 0.5 / (t + 1)
        torch_sgd.step()
        assert controlled.grad_norms[-1] == pytest.approx(norm, rel=1e-5)
        assert controlled.lrs[-1] == pytest.approx(0.5 / (t + 1))
    for p, q in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_clipping_bounds_the_update_of_plain_sgd():
    x, y = _batch()
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    controlled = tuning.Controlled(SGD(model.parameters(), lr=1.0), max_grad_norm=1e-3)
    controlled.step(_closure(model, controlled, x, y))
    moved = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)]
    )
    assert moved.norm().item() == pytest.approx(1e-3, rel=1e-4)  # lr * max_norm
    assert controlled.grad_norms[0] > 1e-3


def test_controlled_rejects_bad_max_norm():
    with pytest.raises(ValueError, match="max_grad_norm"):
        tuning.Controlled(SGD(_model().parameters(), lr=0.1), max_grad_norm=0.0)


def test_exponential_lrs_are_geometric():
    rates = tuning.exponential_lrs(1e-4, 10.0, 26)
    np.testing.assert_allclose(rates, np.geomspace(1e-4, 10.0, 26), rtol=1e-12)
    for bad in ({"min_lr": 0.0}, {"max_lr": 1e-5}, {"steps": 1}):
        arguments = {"min_lr": 1e-4, "max_lr": 10.0, "steps": 5} | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            tuning.exponential_lrs(**arguments)


def test_lr_range_test_uses_the_rates_in_order():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=generator)
    y = torch.randint(0, 3, (64,), generator=generator)
    model = _model()
    result = tuning.lr_range_test(
        model,
        SGD(model.parameters(), lr=1.0),
        torch.nn.functional.cross_entropy,
        (x, y),
        min_lr=1e-3,
        max_lr=1.0,
        steps=12,
        batch_size=16,
        progress=False,
    )
    np.testing.assert_allclose(result.lrs, np.geomspace(1e-3, 1.0, 12), rtol=1e-12)
    assert len(result.losses) == 12 and all(math.isfinite(v) for v in result.losses)


def test_smooth_is_a_bias_corrected_average():
    values = [3.0, 1.0, 4.0, 1.0, 5.0]
    beta = 0.7
    for t, got in enumerate(tuning.smooth(values, beta)):
        weights = [(1 - beta) * beta ** (t - k) for k in range(t + 1)]
        assert got == pytest.approx(
            sum(w * v for w, v in zip(weights, values, strict=False)) / sum(weights)
        )
    assert tuning.smooth([2.0] * 4, 0.9) == pytest.approx([2.0] * 4)


def test_suggest_lr_backs_off_from_the_minimum():
    rates = list(np.geomspace(1e-4, 1.0, 41))
    losses = [(math.log10(r) + 1.0) ** 2 + 1.0 for r in rates]  # lowest at lr = 0.1
    assert tuning.suggest_lr(rates, losses, beta=0.0, factor=10.0) == pytest.approx(0.01)
    blown_up = losses[:31] + [math.nan] * 10  # everything after the first NaN is ignored
    blown_up[35] = -5.0
    assert tuning.suggest_lr(rates, blown_up, beta=0.0, factor=1.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="first loss"):
        tuning.suggest_lr(rates[:2], [math.inf, 1.0])


def _median_reference(losses, window, factor, floor):
    flags, seen = [], []
    for loss in losses:
        if not math.isfinite(loss):
            flags.append(True)
            continue
        flags.append(bool(seen) and loss > factor * max(statistics.median(seen[-window:]), floor))
        seen.append(loss)
    return flags


@pytest.mark.parametrize("window, factor, floor", [(1, 1.5, 0.0), (4, 2.0, 0.0), (5, 3.0, 0.3)])
def test_detect_spikes_matches_a_direct_median(window, factor, floor):
    generator = np.random.default_rng(0)
    losses = list(np.exp(generator.normal(size=60)))
    losses[20], losses[41] = math.nan, math.inf
    got = tuning.detect_spikes(losses, window=window, factor=factor, floor=floor)
    assert got == _median_reference(losses, window, factor, floor)


def test_detect_spikes_finds_planted_spikes_only():
    losses = [2.0 * 0.97**t for t in range(100)]
    losses[40] *= 5
    losses[70] = math.nan
    flags = tuning.detect_spikes(losses, window=10, factor=2.0)
    assert [t for t, f in enumerate(flags) if f] == [40, 70]
    tiny = [0.01, 0.005, 0.02, 0.004, 0.012]  # noise near zero: a ratio test alone flags it
    assert any(tuning.detect_spikes(tiny, window=3))
    assert not any(tuning.detect_spikes(tiny, window=3, floor=0.1))


def test_detect_spikes_rejects_bad_settings():
    for bad in ({"window": 0}, {"factor": 1.0}, {"floor": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            tuning.detect_spikes([1.0, 2.0], **bad)
