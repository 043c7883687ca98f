r"""Choosing the data: learnability scores and joint example selection (JEST).

A learner trains on sub-batches of :math:`b` examples picked from a larger *super-batch* of
:math:`B` candidates. RHO-LOSS (Mindermann et al. 2022) and JEST (Evans et al. 2024) rank
the candidates by **learnability**, the learner's loss minus the loss of a *reference*
model trained on a small clean set:

.. math::  s(x) = \ell_{\text{learner}}(x) - \ell_{\text{ref}}(x).

High learner loss says "not learned yet"; low reference loss says "learnable at all". Noisy
examples have both losses high (low score); learned examples have both low (low score).

For a contrastive loss examples interact: the loss of a batch holds a term for every PAIR
:math:`(i, j)`. With the sigmoid (SigLIP) loss of Zhai et al. 2023, logits
:math:`\ell_{ij} = t\,\langle u_i, v_j\rangle + c` and labels :math:`z_{ij} = +1` if
:math:`i = j` else :math:`-1`, the summed loss of a batch :math:`S` is

.. math::  L(S) = \sum_{i, j \in S} a_{ij}, \qquad a_{ij} = -\log \sigma(z_{ij} \ell_{ij}),

and since :math:`a_{ij}` depends on the pair only, every sub-batch's loss is a sub-matrix sum
of the super-batch's :math:`B \times B` matrix. With :math:`D = A_{\text{learner}} -
A_{\text{ref}}` the learnability of a sub-batch is :math:`\sum_{i,j \in S} D_{ij} / |S|`.
Joint selection grows :math:`S` chunk by chunk; a candidate :math:`k` is scored by what it
adds given the chunks already chosen,

.. math::  \Delta(k \mid S) = D_{kk} + \sum_{j \in S} (D_{kj} + D_{jk}),

and each chunk is drawn without replacement with probabilities
:math:`\propto \exp(\Delta / \tau)` (Gumbel top-k), a blocked Gibbs-like sampler.

The real analogue here: two views of each 8x8 digit (top and bottom half) paired by a small
two-tower model, a share of the training pairs corrupted (mismatched halves), and a
reference trained on a small clean split. :func:`compare_selection` measures iterations and
compute (scoring included) to reach a target accuracy on a clean held-out set.
"""

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _args
from course_lib.models import mlp
from course_lib.optim import Adam
from course_lib.parallel import map_forked

METHODS = ("uniform", "independent", "joint")


# ---------------------------------------------------------------- data: two views of a digit


@dataclass(frozen=True)
class DigitPairs:
    """Top and bottom halves of the digits (each 32 pixels in [0, 1]), in three splits.

    ``reference_*``: small clean split for the reference model. ``test_*`` and
    ``test_labels``: clean held-out pairs. ``pool_*``: the training pool, in which the
    pairs flagged by ``pool_corrupted`` had their bottom halves shuffled among themselves.
    """

    reference_top: torch.Tensor
    reference_bottom: torch.Tensor
    test_top: torch.Tensor
    test_bottom: torch.Tensor
    test_labels: torch.Tensor
    pool_top: torch.Tensor
    pool_bottom: torch.Tensor
    pool_corrupted: torch.Tensor

    def to(self, device=None, dtype=None) -> "DigitPairs":
        """Move every tensor to ``device``; cast the pixel tensors to ``dtype`` if given."""

        def move(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return DigitPairs(*(move(t) for t in vars(self).values()))


@lru_cache(maxsize=1)
def _shuffled_digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    order = torch.randperm(len(raw.images), generator=torch.Generator().manual_seed(1797))
    images = torch.as_tensor(raw.images, dtype=torch.float64)[order] / 16.0
    return images, torch.as_tensor(raw.target, dtype=torch.long)[order]


def digit_pairs(
    corrupted_share: float = 0.5,
    n_reference: int = 300,
    n_test: int = 400,
    seed: int = 0,
    dtype=torch.float32,
) -> DigitPairs:
    """Pairs (top half, bottom half) of the scikit-learn digits, split at random (fixed order)
    into a clean reference split, a clean test split and a training pool in which a share
    ``corrupted_share`` of the pairs is corrupted: their bottom halves are permuted among
    them, so a corrupted pair shows two halves of (almost always) different images.
    ``seed`` picks which pairs are corrupted; the split itself never changes."""
    if not 0 <= corrupted_share < 1:
        raise ValueError(f"corrupted_share must be in [0, 1), got {corrupted_share}")
    images, labels = _shuffled_digits()
    if n_reference < 2 or n_test < 2 or n_reference + n_test > len(images) - 2:
        raise ValueError("n_reference and n_test must be >= 2 and leave a pool of >= 2 pairs")
    top = images[:, :4, :].reshape(len(images), -1).to(dtype)
    bottom = images[:, 4:, :].reshape(len(images), -1).to(dtype)

    ref, test = slice(0, n_reference), slice(n_reference, n_reference + n_test)
    pool = slice(n_reference + n_test, None)
    pool_bottom = bottom[pool].clone()
    generator = torch.Generator().manual_seed(seed + 7919)  # unrelated to training draws
    n_pool = len(pool_bottom)
    n_bad = round(corrupted_share * n_pool)
    bad = torch.randperm(n_pool, generator=generator)[:n_bad]
    # a derangement of the corrupted pairs (shift by one), so none keeps its own half
    pool_bottom[bad] = pool_bottom[bad.roll(1)]
    corrupted = torch.zeros(n_pool, dtype=torch.bool)
    corrupted[bad] = n_bad > 1
    return DigitPairs(
        top[ref], bottom[ref], top[test], bottom[test], labels[test],
        top[pool], pool_bottom, corrupted,
    )  # fmt: skip


# ------------------------------------------------------------- the model and the SigLIP loss


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row over its norm: ``F.normalize(x, dim=-1)``'s values, half its Python overhead."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class TwoTower(nn.Module):
    r"""Two small MLP towers embedding each view on the unit sphere, with a learnable
    temperature :math:`t = e^{\theta}` and bias :math:`c`: logits
    :math:`\ell_{ij} = t\,\langle u_i, v_j \rangle + c` (SigLIP's initialisation
    :math:`t = 10`, :math:`c = -10`)."""

    def __init__(self, in_features=32, hidden=64, dim=16, temperature=10.0, bias=-10.0):
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden), ("dim", dim)):
            _args.integer(name, value, minimum=1)
        _args.positive("temperature", temperature)
        self.top = mlp(hidden, 1, inputs=in_features, outputs=dim, seed=None)
        self.bottom = mlp(hidden, 1, inputs=in_features, outputs=dim, seed=None)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def logits(self, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """The (n, m) matrix of pair logits between n top halves and m bottom halves."""
        u = _unit_rows(self.top(top))
        v = _unit_rows(self.bottom(bottom))
        return self.log_temperature.exp() * u @ v.T + self.bias

    def own_logits(self, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """The diagonal of :meth:`logits` alone: each top half with its own bottom half."""
        u = _unit_rows(self.top(top))
        v = _unit_rows(self.bottom(bottom))
        return self.log_temperature.exp() * (u * v).sum(-1) + self.bias

    def forward_flops(self, n: int) -> int:
        """FLOPs of one forward pass on n pairs: 2 per multiply-add in the towers' linear
        layers plus the n x n logit matrix (activations and normalisation not counted)."""
        tower = sum(
            2 * m.in_features * m.out_features for m in self.top if hasattr(m, "in_features")
        )
        dim = self.top[-1].out_features
        return 2 * n * tower + 2 * n * n * dim


def pairwise_sigmoid_losses(logits: torch.Tensor) -> torch.Tensor:
    r""":math:`a_{ij} = -\log\sigma(z_{ij}\ell_{ij})` with :math:`z = 2I - 1`: the loss of every
    pair; the diagonal holds the true pairs, the rest the negatives."""
    losses = F.softplus(logits)  # -log sigma(-l), the negatives' loss
    losses.diagonal().sub_(logits.diagonal())  # -log sigma(l) = softplus(l) - l on the diagonal
    return losses


def sigmoid_contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    r"""SigLIP loss of a batch: :math:`\frac{1}{n}\sum_{i,j} a_{ij}`."""
    return pairwise_sigmoid_losses(logits).sum() / len(logits)


@torch.no_grad()
def retrieval_accuracy(model: TwoTower, top, bottom, labels) -> float:
    """Share of top halves whose best-matching bottom half (among all given) shows the
    same digit: class-level retrieval, since a half rarely pins down one exact image."""
    best = model.logits(top, bottom).argmax(dim=1)
    return (labels[best] == labels).double().mean().item()


# --------------------------------------------------------------------------- learnability


def learnability(learner_loss: torch.Tensor, reference_loss: torch.Tensor) -> torch.Tensor:
    """Learnability = learner loss - reference loss, elementwise (per example, or per pair)."""
    if learner_loss.shape != reference_loss.shape:
        raise ValueError(
            f"learner_loss and reference_loss must have the same shape, "
            f"got {tuple(learner_loss.shape)} and {tuple(reference_loss.shape)}"
        )
    return learner_loss - reference_loss


@torch.no_grad()
def pairwise_learnability(learner: TwoTower, reference: TwoTower, top, bottom) -> torch.Tensor:
    """:math:`D = A_{learner} - A_{ref}` on a super-batch: the (B, B) matrix of pair
    learnabilities, from one forward pass of each model."""
    return learnability(
        pairwise_sigmoid_losses(learner.logits(top, bottom)),
        pairwise_sigmoid_losses(reference.logits(top, bottom)),
    )


def batch_learnability(pair_scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    r"""Learnability of the sub-batch ``indices``: :math:`\sum_{i,j\in S} D_{ij} / |S|`, i.e.
    the learner's SigLIP loss on it minus the reference's."""
    return pair_scores[indices][:, indices].sum() / len(indices)


def independent_scores(pair_scores: torch.Tensor) -> torch.Tensor:
    r"""One score per example, each computed alone: the learnability of the example as a batch
    of one, :math:`\Delta(k \mid \emptyset) = D_{kk}` (for the sigmoid loss, its own true
    pair), blind to the examples it will be batched with."""
    return pair_scores.diagonal().clone()


def batch_interaction(pair_scores: torch.Tensor, indices: torch.Tensor) -> dict:
    r"""Split a sub-batch's summed learnability :math:`\sum_{i,j\in S} D_{ij}` into what
    independent scores see, the ``marginal`` :math:`\sum_{k\in S} D_{kk}`, and what only joint
    scores see, the ``interaction`` :math:`\sum_{i\ne j\in S} D_{ij}` (each pair of
    batch-mates as negatives of each other), both per example (divided by :math:`|S|`)."""
    block = pair_scores[indices][:, indices]
    marginal = block.diagonal().sum() / len(indices)
    interaction = block.sum() / len(indices) - marginal
    return dict(marginal=marginal.item(), interaction=interaction.item())


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores (independent selection), largest first."""
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be in [1, {len(scores)}], got {k}")
    return torch.topk(scores, k).indices


def conditional_scores(pair_scores: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    r""":math:`\Delta(k\mid S) = D_{kk} + \sum_{j\in S}(D_{kj} + D_{jk})` for every k: how much
    adding k raises the summed learnability of the chosen set S (a boolean mask). Chosen
    examples get :math:`-\infty`."""
    mask = chosen.to(pair_scores.dtype)
    scores = pair_scores.diagonal() + pair_scores @ mask + pair_scores.T @ mask
    return scores.masked_fill(chosen, -math.inf)


def gumbel_top_k(logits: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    r"""k indices drawn without replacement with probabilities :math:`\propto e^{\text{logit}}`
    (successively renormalised): the top k of logits + Gumbel noise."""
    uniform = torch.rand(logits.shape, generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
    return torch.topk(logits + gumbel.to(logits), k).indices


def joint_select(
    pair_scores: torch.Tensor,
    k: int,
    n_chunks: int,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> torch.Tensor:
    r"""JEST's joint selection of k of the B examples, in ``n_chunks`` equal chunks: each chunk
    drawn by :func:`gumbel_top_k` from :math:`\Delta(\cdot \mid S) / \tau` given the chunks
    S chosen before it (the first chunk, S empty, by :math:`D_{kk}`; Evans et al. draw it
    uniformly). Returns the indices in the order chosen."""
    if n_chunks < 1 or k % n_chunks:
        raise ValueError(f"n_chunks must be >= 1 and divide k={k}, got {n_chunks}")
    if not 1 <= k <= len(pair_scores):
        raise ValueError(f"k must be in [1, {len(pair_scores)}], got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    chosen = torch.zeros(len(pair_scores), dtype=torch.bool, device=pair_scores.device)
    picked = []
    for _ in range(n_chunks):
        chunk = gumbel_top_k(
            conditional_scores(pair_scores, chosen) / temperature, k // n_chunks, generator
        )
        chosen[chunk] = True
        picked.append(chunk)
    return torch.cat(picked)


# --------------------------------------------------------------------------- the experiment


def train_reference(data: DigitPairs, steps=300, batch_size=64, lr=3e-3, seed=0) -> TwoTower:
    """The reference model: a :class:`TwoTower` trained with Adam on the clean split only."""
    torch.manual_seed(seed)
    top, bottom = data.reference_top, data.reference_bottom
    model = TwoTower().to(device=top.device, dtype=top.dtype)
    optimizer = Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randperm(len(top), generator=generator)[:batch_size].to(top.device)
        optimizer.zero_grad()
        sigmoid_contrastive_loss(model.logits(top[batch], bottom[batch])).backward()
        optimizer.step()
    return model.eval()


def train_with_selection(
    method: str,
    data: DigitPairs,
    reference: TwoTower,
    seed: int = 0,
    batch_size: int = 32,
    filter_ratio: float = 0.8,
    n_chunks: int = 4,
    target: float = 0.55,
    max_iterations: int = 600,
    eval_every: int = 10,
    lr: float = 3e-3,
) -> dict:
    """Train a fresh learner, picking each batch of ``batch_size`` pairs by ``method``:
    ``"uniform"`` (at random from the pool), ``"independent"`` (top-k of
    :func:`independent_scores` on a super-batch of ``batch_size / (1 - filter_ratio)``
    random pairs) or ``"joint"`` (:func:`joint_select` on the same super-batch).
    Stops when the test retrieval accuracy reaches ``target`` (checked every
    ``eval_every`` steps) or after ``max_iterations``.

    The frozen reference's pair losses on the whole pool are computed once ahead of training
    (each :math:`a_{ij}` depends on its pair only, so a super-batch's are a sub-matrix), and
    independent selection, like joint selection with one chunk (drawn by :math:`D_{kk}`
    alone), computes only the learner's own-pair losses :math:`a_{kk}`; the cost counts
    below still charge a full forward pass of both models on every super-batch.

    Returns ``iterations`` (None if the target was not reached), FLOPs ``train_flops``,
    ``learner_scoring_flops``, ``reference_scoring_flops`` and ``selection_flops`` (training
    step = 3 forward passes), per-example forward passes ``train_passes`` (:math:`3b` a step)
    and ``scoring_passes`` (:math:`2B` a selected step: learner and reference), ``seconds``
    (wall time of the steps and scoring, evaluation excluded), ``corrupted_share`` (share of
    corrupted pairs among those trained on), the accuracy ``curve`` as (iteration, accuracy)
    pairs and the trained ``learner``."""
    _args.one_of("method", method, METHODS)
    _args.unit_interval("filter_ratio", filter_ratio)
    super_size = round(batch_size / (1 - filter_ratio))
    top, bottom = data.pool_top, data.pool_bottom
    if not 1 <= batch_size <= super_size <= len(top):
        raise ValueError(f"batch_size must be in [1, pool size], got {batch_size}")
    torch.manual_seed(seed)
    learner = TwoTower().to(device=top.device, dtype=top.dtype)
    optimizer = Adam(learner.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    if method != "uniform":
        with torch.no_grad():
            reference_losses = pairwise_sigmoid_losses(reference.logits(top, bottom))
    corrupted = data.pool_corrupted.to(top.device)
    seconds, n_corrupted, curve, reached = 0.0, 0, [], None
    for iteration in range(1, max_iterations + 1):
        start = time.perf_counter()
        if method == "uniform":
            batch = torch.randperm(len(top), generator=generator)[:batch_size].to(top.device)
        else:
            candidates = torch.randperm(len(top), generator=generator)[:super_size].to(top.device)
            with torch.no_grad():
                if method == "independent" or n_chunks == 1:  # both need D_kk alone
                    own = -F.logsigmoid(learner.own_logits(top[candidates], bottom[candidates]))
                    scores = learnability(own, reference_losses.diagonal()[candidates])
                    if method == "independent":
                        chosen = top_k(scores, batch_size)
                    else:  # joint_select with one chunk: Delta(k | empty set) = D_kk
                        chosen = gumbel_top_k(scores, batch_size, generator)
                else:
                    learner_losses = pairwise_sigmoid_losses(
                        learner.logits(top[candidates], bottom[candidates])
                    )
                    # two index_selects: ~10x faster than reference_losses[c[:, None], c]
                    block = reference_losses.index_select(0, candidates).index_select(1, candidates)
                    scores = learnability(learner_losses, block)
                    chosen = joint_select(scores, batch_size, n_chunks, generator)
            batch = candidates[chosen]
        optimizer.zero_grad()
        sigmoid_contrastive_loss(learner.logits(top[batch], bottom[batch])).backward()
        optimizer.step()
        seconds += time.perf_counter() - start
        n_corrupted = n_corrupted + corrupted[batch].sum()  # a tensor: no sync each step
        if iteration % eval_every == 0:
            accuracy = retrieval_accuracy(
                learner, data.test_top, data.test_bottom, data.test_labels
            )
            curve.append((iteration, accuracy))
            if accuracy >= target:
                reached = iteration
                break
    scored = 0 if method == "uniform" else iteration  # super-batches scored
    flops = dict(
        train_flops=iteration * 3 * learner.forward_flops(batch_size),
        learner_scoring_flops=scored * learner.forward_flops(super_size),
        reference_scoring_flops=scored * reference.forward_flops(super_size),
        selection_flops=scored
        * (super_size if method == "independent" else 4 * super_size**2 * n_chunks),
    )
    passes = dict(train_passes=iteration * 3 * batch_size, scoring_passes=scored * 2 * super_size)
    return dict(
        method=method,
        seed=seed,
        learner=learner,
        iterations=reached,
        seconds=seconds,
        corrupted_share=int(n_corrupted) / (iteration * batch_size),
        curve=curve,
        **flops,
        **passes,
    )


def total_flops(run: dict, cached_reference: bool = False) -> int:
    """Training plus scoring plus selection FLOPs of a run. With ``cached_reference`` the
    reference's forward passes are left out (the reference is frozen, so its embeddings can be
    computed once per example ahead of time; its logits still cost a little)."""
    total = run["train_flops"] + run["learner_scoring_flops"] + run["selection_flops"]
    return total + (0 if cached_reference else run["reference_scoring_flops"])


def compare_selection(
    seeds=(0, 1, 2, 3, 4),
    corrupted_share=0.5,
    methods=METHODS,
    reference_steps=300,
    device=None,
    reference=None,
    processes=None,
    **kwargs,
) -> list:
    """Run every method for every seed (data corruption, reference and learner all seeded
    by it) and return the list of run dicts of :func:`train_with_selection`, each with
    ``reference_accuracy`` and ``reference_train_flops`` added.

    A ``reference`` model, if given, serves every seed instead (sound because the clean
    reference split is the same for every seed; the spread over seeds then leaves out the
    reference's own seed).

    The runs are independent and seeded, so they run in ``processes`` forked processes
    (default: one per core; serially where fork is unsafe: not Linux, or CUDA started) with
    the same results as one after the other."""
    pending = []
    for seed in seeds:
        data = digit_pairs(corrupted_share, seed=seed).to(device)
        seed_reference = reference or train_reference(data, steps=reference_steps, seed=seed)
        extra = dict(
            reference_accuracy=retrieval_accuracy(
                seed_reference, data.test_top, data.test_bottom, data.test_labels
            ),
            reference_train_flops=reference_steps * 3 * seed_reference.forward_flops(64),
        )
        pending += [(method, data, seed_reference, seed, kwargs, extra) for method in methods]
    return map_forked(lambda args: _run(*args), pending, processes)


def _run(method, data, reference, seed, kwargs, extra) -> dict:
    return dict(train_with_selection(method, data, reference, seed=seed, **kwargs), **extra)


def iterations_to_target(curve, target: float):
    """First iteration of a ``curve`` of (iteration, accuracy) pairs whose accuracy reaches
    ``target``, or None."""
    return next((iteration for iteration, accuracy in curve if accuracy >= target), None)


def summarize(runs: list) -> dict:
    """Mean and standard deviation (over seeds, ddof=1) per method of ``iterations``,
    ``mflops`` (total FLOPs / 1e6, scoring included), ``mflops_cached_reference`` and
    ``seconds``, with the mean ``corrupted_share`` and ``reached`` (runs that hit the
    target; the statistics use only those)."""
    summary = {}
    for method in dict.fromkeys(run["method"] for run in runs):
        done = [r for r in runs if r["method"] == method and r["iterations"] is not None]
        columns = {
            "iterations": [r["iterations"] for r in done],
            "mflops": [total_flops(r) / 1e6 for r in done],
            "mflops_cached_reference": [total_flops(r, cached_reference=True) / 1e6 for r in done],
            "seconds": [r["seconds"] for r in done],
        }
        row = {"reached": len(done), "runs": sum(r["method"] == method for r in runs)}
        for name, values in columns.items():
            values = torch.tensor(values, dtype=torch.float64)
            row[name] = values.mean().item() if len(values) else math.nan
            row[name + "_std"] = values.std().item() if len(values) > 1 else math.nan
        shares = [r["corrupted_share"] for r in runs if r["method"] == method]
        row["corrupted_share"] = sum(shares) / len(shares)
        summary[method] = row
    return summary
