"""Tests of course_lib.data_selection against independent recomputations.

Losses are recomputed in float64 from the towers' layers with binary cross-entropy (not the
module's logsigmoid), sub-batch losses on the sub-batch alone (not as a sub-matrix), FLOPs
with torch's FlopCounterMode, and Gumbel top-k frequencies against softmax probabilities.
"""

import itertools
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_lib import data_selection as ds

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed):
    torch.manual_seed(seed)
    model = ds.TwoTower(temperature=5.0, bias=-2.0).double()
    with torch.no_grad():  # move the scalars away from their initial values
        model.log_temperature.add_(0.1 * seed)
        model.bias.add_(0.3 * seed)
    return model


def _batch_loss_sum(model, top, bottom):
    """Summed SigLIP loss of a batch, recomputed alone: BCE with targets 1 on the true pairs."""
    logits = _batch_logits(model, top, bottom)
    targets = torch.eye(len(top), dtype=torch.float64)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")


def _batch_logits(model, top, bottom):
    u = model.top(top)
    v = model.bottom(bottom)
    u, v = u / u.norm(dim=1, keepdim=True), v / v.norm(dim=1, keepdim=True)
    return torch.exp(model.log_temperature) * (u @ v.T) + model.bias


def _learnability_sum(learner, reference, top, bottom, index):
    index = list(index)
    if not index:
        return torch.tensor(0.0, dtype=torch.float64)
    with torch.no_grad():
        return _batch_loss_sum(learner, top[index], bottom[index]) - _batch_loss_sum(
            reference, top[index], bottom[index]
        )


@pytest.fixture(scope="module")
def toy():
    generator = torch.Generator().manual_seed(0)
    top = torch.rand(12, 32, generator=generator, dtype=torch.float64)
    bottom = torch.rand(12, 32, generator=generator, dtype=torch.float64)
    learner, reference = _model(1), _model(2)
    scores = ds.pairwise_learnability(learner, reference, top, bottom)
    return top, bottom, learner, reference, scores


def test_learnability_is_difference_of_independently_computed_losses(toy):
    top, bottom, learner, reference, scores = toy
    assert scores.shape == (12, 12)
    for index in ([0, 3, 5, 7], [11, 2], list(range(12))):
        expected = _learnability_sum(learner, reference, top, bottom, index) / len(index)
        got = ds.batch_learnability(scores, torch.tensor(index))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # and the model's own SigLIP loss agrees with the BCE recomputation
        got = ds.sigmoid_contrastive_loss(learner.logits(top, bottom))
        torch.testing.assert_close(got, _batch_loss_sum(learner, top, bottom) / 12)
    per_example = ds.learnability(torch.tensor([3.0, 1.0]), torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(per_example, torch.tensor([2.5, -1.0]))
    with pytest.raises(ValueError, match="reference_loss"):
        ds.learnability(torch.zeros(3), torch.zeros(4))


def test_batch_interaction_splits_brute_force_learnability(toy):
    top, bottom, learner, reference, scores = toy
    index = [0, 3, 4, 9, 11]
    split = ds.batch_interaction(scores, torch.tensor(index))
    joint = _learnability_sum(learner, reference, top, bottom, index).item()
    alone = sum(_learnability_sum(learner, reference, top, bottom, [k]).item() for k in index)
    assert split["marginal"] == pytest.approx(alone / len(index), rel=1e-10)
    assert split["interaction"] == pytest.approx((joint - alone) / len(index), rel=1e-10)
    assert abs(split["interaction"]) > 1e-3  # the toy's batch-mates do interact


def test_own_logits_are_the_diagonal_of_the_logits(toy):
    top, bottom, learner, _, _ = toy
    with torch.no_grad():
        own, full = learner.own_logits(top, bottom), _batch_logits(learner, top, bottom)
    assert torch.allclose(own, full.diagonal(), rtol=0, atol=1e-12)


def test_top_k_picks_the_k_largest():
    scores = torch.randn(50, generator=torch.Generator().manual_seed(3))
    for k in (1, 7, 50):
        expected = sorted(range(50), key=lambda i: -scores[i].item())[:k]
        assert ds.top_k(scores, k).tolist() == expected
    for bad in (0, 51):
        with pytest.raises(ValueError, match="k must"):
            ds.top_k(scores, bad)


def test_independent_scores_are_each_examples_learnability_alone(toy):
    top, bottom, learner, reference, scores = toy
    expected = torch.stack(
        [_learnability_sum(learner, reference, top, bottom, [k]) for k in range(12)]
    )
    torch.testing.assert_close(ds.independent_scores(scores), expected, rtol=1e-10, atol=1e-10)
    # joint selection in ONE chunk at near-zero temperature is independent top-k
    greedy = ds.joint_select(scores, 5, 1, torch.Generator(), temperature=1e-9)
    assert set(greedy.tolist()) == set(ds.top_k(ds.independent_scores(scores), 5).tolist())


def test_chunk_scores_equal_brute_force_conditional_losses(toy):
    top, bottom, learner, reference, scores = toy
    for chosen_index in ([], [4], [0, 5, 9]):
        chosen = torch.zeros(12, dtype=torch.bool)
        chosen[chosen_index] = True
        got = ds.conditional_scores(scores, chosen)
        before = _learnability_sum(learner, reference, top, bottom, chosen_index)
        for k in range(12):
            if k in chosen_index:
                assert got[k] == -float("inf")
                continue
            after = _learnability_sum(learner, reference, top, bottom, chosen_index + [k])
            torch.testing.assert_close(got[k], after - before, rtol=1e-10, atol=1e-10)


def test_joint_select_at_low_temperature_is_greedy_by_chunk(toy):
    top, bottom, learner, reference, scores = toy
    chunk, n_chunks = 2, 3
    chosen = []
    for _ in range(n_chunks):  # brute force: the best `chunk` candidates given what is chosen
        before = _learnability_sum(learner, reference, top, bottom, chosen)
        gains = {
            k: (_learnability_sum(learner, reference, top, bottom, chosen + [k]) - before).item()
            for k in range(12)
            if k not in chosen
        }
        chosen += sorted(gains, key=lambda k: -gains[k])[:chunk]
    got = ds.joint_select(scores, chunk * n_chunks, n_chunks, torch.Generator(), temperature=1e-9)
    for c in range(n_chunks):
        assert set(got[c * chunk : (c + 1) * chunk].tolist()) == set(
            chosen[c * chunk : (c + 1) * chunk]
        )
    assert len(set(got.tolist())) == chunk * n_chunks
    with pytest.raises(ValueError, match="n_chunks"):
        ds.joint_select(scores, 6, 4, torch.Generator())
    with pytest.raises(ValueError, match="temperature"):
        ds.joint_select(scores, 6, 3, torch.Generator(), temperature=0.0)


def test_gumbel_top_k_draws_without_replacement_with_softmax_probabilities():
    logits = torch.tensor([0.0, 1.0, -0.5, 2.0], dtype=torch.float64)
    n = 40_000
    draws = ds.gumbel_top_k(logits.expand(n, 4), 2, torch.Generator().manual_seed(0))
    p = torch.softmax(logits, dim=0)
    for i, j in itertools.permutations(range(4), 2):
        expected = (p[i] * p[j] / (1 - p[i])).item()  # Plackett-Luce: i first, then j
        frequency = ((draws[:, 0] == i) & (draws[:, 1] == j)).double().mean().item()
        assert abs(frequency - expected) < 4 * (expected * (1 - expected) / n) ** 0.5 + 1e-3


def test_forward_flops_match_torch_flop_counter():
    model = ds.TwoTower(hidden=20, dim=7)
    top, bottom = torch.rand(9, 32), torch.rand(9, 32)
    with FlopCounterMode(display=False) as counter:
        model.logits(top, bottom)
    assert model.forward_flops(9) == counter.get_total_flops()


def test_selection_prefers_learnable_pairs_over_corrupted_ones():
    data = ds.digit_pairs(corrupted_share=0.5, seed=0)
    assert data.pool_corrupted.double().mean().item() == pytest.approx(0.5, abs=0.01)
    # corrupted pairs show a bottom half of another image; clean pairs their own
    corrupted = data.pool_corrupted
    assert not torch.equal(data.pool_bottom[corrupted][0], data.pool_bottom[~corrupted][0])
    reference = ds.train_reference(data, steps=100, seed=0)
    learner = ds.TwoTower()  # untrained: every pair still unlearned
    generator = torch.Generator().manual_seed(0)
    shares = {"independent": [], "joint": [], "superbatch": []}
    for _ in range(5):
        candidates = torch.randperm(len(data.pool_top), generator=generator)[:160]
        scores = ds.pairwise_learnability(
            learner, reference, data.pool_top[candidates], data.pool_bottom[candidates]
        )
        picks = {
            "independent": ds.top_k(ds.independent_scores(scores), 32),
            "joint": ds.joint_select(scores, 32, 4, generator),
            "superbatch": torch.arange(160),
        }
        for name, chosen in picks.items():
            shares[name].append(corrupted[candidates[chosen]].double().mean().item())
    mean = {name: sum(values) / len(values) for name, values in shares.items()}
    assert 0.4 < mean["superbatch"] < 0.6
    assert mean["independent"] < 0.25 and mean["joint"] < 0.25


def test_digit_pairs_split_and_corruption():
    data = ds.digit_pairs(corrupted_share=0.0)
    assert data.reference_top.shape == (300, 32) and data.test_top.shape == (400, 32)
    assert len(data.pool_top) == 1797 - 700 and not data.pool_corrupted.any()
    assert data.pool_top.min() >= 0 and data.pool_top.max() <= 1
    # reassembling the halves gives the sklearn images (same multiset of test labels)
    from sklearn.datasets import load_digits

    raw = load_digits()
    image = torch.cat([data.test_top[0], data.test_bottom[0]]).reshape(8, 8) * 16
    matches = [
        i
        for i in range(len(raw.images))
        if torch.equal(torch.tensor(raw.images[i]), image.double())
    ]
    assert matches and raw.target[matches[0]] == data.test_labels[0]
    with pytest.raises(ValueError, match="corrupted_share"):
        ds.digit_pairs(corrupted_share=1.0)


def test_training_runs_are_reproducible_by_seed():
    data = ds.digit_pairs(corrupted_share=0.5, seed=1)
    reference = ds.train_reference(data, steps=20, seed=1)
    kwargs = dict(max_iterations=30, target=1.1, eval_every=10)
    first = ds.train_with_selection("joint", data, reference, seed=3, **kwargs)
    again = ds.train_with_selection("joint", data, reference, seed=3, **kwargs)
    other = ds.train_with_selection("joint", data, reference, seed=4, **kwargs)
    assert first["curve"] == again["curve"] and first["corrupted_share"] == again["corrupted_share"]
    assert first["curve"] != other["curve"]
    assert first["iterations"] is None  # target above 1 is never reached
    # FLOPs: 30 steps of 3 forward passes on 32 pairs, 30 scorings of 160 pairs by each model
    assert first["train_flops"] == 30 * 3 * reference.forward_flops(32)
    assert (
        first["learner_scoring_flops"]
        == first["reference_scoring_flops"]
        == 30 * reference.forward_flops(160)
    )
    assert first["train_passes"] == 30 * 3 * 32 and first["scoring_passes"] == 30 * 2 * 160
    with pytest.raises(ValueError, match="method"):
        ds.train_with_selection("best", data, reference)
    with pytest.raises(ValueError, match="filter_ratio"):
        ds.train_with_selection("joint", data, reference, filter_ratio=1.0)


def test_iterations_to_target_and_summary_statistics():
    curve = [(10, 0.2), (20, 0.5), (30, 0.45), (40, 0.7)]
    assert ds.iterations_to_target(curve, 0.5) == 20
    assert ds.iterations_to_target(curve, 0.8) is None
    flops = dict(learner_scoring_flops=5, reference_scoring_flops=7, selection_flops=1)
    runs = [
        dict(method="joint", iterations=it, seconds=s, corrupted_share=c, train_flops=f, **flops)
        for it, s, c, f in [(80, 1.0, 0.1, 10**6), (120, 2.0, 0.3, 3 * 10**6), (None, 9.0, 0.2, 0)]
    ]
    row = ds.summarize(runs)["joint"]
    assert row["reached"] == 2 and row["runs"] == 3
    assert row["iterations"] == 100 and row["iterations_std"] == pytest.approx(
        statistics.stdev([80, 120])
    )
    assert row["mflops"] == pytest.approx((1e6 + 3e6 + 2 * 13) / 2 / 1e6)
    assert row["mflops_cached_reference"] == pytest.approx((1e6 + 3e6 + 2 * 6) / 2 / 1e6)
    assert row["corrupted_share"] == pytest.approx(0.2)


def test_cached_reference_scoring_selects_as_the_full_super_batch_scores():
    """train_with_selection scores from the pool's cached reference losses (and, for independent
    selection and one-chunk joint selection, the learner's own-pair losses only): its first
    batch must be the one that scoring the super-batch from scratch with pairwise_learnability
    picks."""
    data = ds.digit_pairs(corrupted_share=0.5, seed=2)
    reference = ds.train_reference(data, steps=20, seed=2)
    run = ds.train_with_selection(
        "independent", data, reference, seed=5, max_iterations=1, target=1.1, eval_every=1
    )
    generator = torch.Generator().manual_seed(5)
    candidates = torch.randperm(len(data.pool_top), generator=generator)[:160]
    torch.manual_seed(5)
    learner = ds.TwoTower()
    scores = ds.pairwise_learnability(
        learner, reference, data.pool_top[candidates], data.pool_bottom[candidates]
    )
    batch = candidates[ds.top_k(ds.independent_scores(scores), 32)]
    expected = data.pool_corrupted[batch].double().mean().item()
    assert run["corrupted_share"] == expected
    # joint selection with one chunk also scores the own pairs alone: the same draw as
    # joint_select on the full matrix of pair learnabilities
    run = ds.train_with_selection(
        "joint", data, reference, seed=5, n_chunks=1, max_iterations=1, target=1.1, eval_every=1
    )
    generator = torch.Generator().manual_seed(5)
    candidates = torch.randperm(len(data.pool_top), generator=generator)[:160]
    batch = candidates[ds.joint_select(scores, 32, 1, generator)]
    assert run["corrupted_share"] == data.pool_corrupted[batch].double().mean().item()
    shared = ds.compare_selection(
        seeds=(0, 1), methods=("uniform",), reference=reference, max_iterations=10, target=1.1
    )
    assert shared[0]["reference_accuracy"] == shared[1]["reference_accuracy"]


def test_compare_selection_in_forked_processes_matches_serial_runs():
    data = ds.digit_pairs(corrupted_share=0.5, seed=0)
    reference = ds.train_reference(data, steps=20, seed=0)
    kwargs = dict(seeds=(0, 1), methods=("uniform", "joint"), max_iterations=20, target=1.1)
    serial = ds.compare_selection(processes=1, reference=reference, **kwargs)
    forked = ds.compare_selection(processes=2, reference=reference, **kwargs)
    assert [(r["seed"], r["method"]) for r in forked] == [
        (0, "uniform"),
        (0, "joint"),
        (1, "uniform"),
        (1, "joint"),
    ]
    for one, other in zip(serial, forked, strict=True):
        for key in (
            "curve",
            "corrupted_share",
            "train_flops",
            "scoring_passes",
            "reference_accuracy",
        ):
            assert one[key] == other[key]
        for p, q in zip(one["learner"].parameters(), other["learner"].parameters(), strict=True):
            assert torch.equal(p, q)
    assert serial[0]["curve"] != serial[2]["curve"]  # the seeds differ
