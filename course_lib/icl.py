"""Linear self-attention as a mesa-optimizer: in-context linear regression.

The toy problem of von Oswald et al. (2023), "Transformers learn in-context by gradient
descent". Each task draws a weight vector ``w ~ N(0, I_d)`` and ``N + 1`` inputs
``x ~ U(-a, a)^d`` (``a = 1`` in distribution; ``input_scale = a`` moves it out of
distribution), with targets ``y = w^T x``. A model sees the ``N`` context tokens
``e_i = (x_i, y_i)`` in ``R^{d+1}`` and the query token ``e_q = (x_q, 0)``, and must predict
``y_q``.

One step of gradient descent on the in-context least-squares loss

    L(w) = 1/(2N) sum_i (w^T x_i - y_i)^2,   grad L(0) = -1/N sum_i y_i x_i,

from ``w = 0`` with learning rate ``eta`` gives ``w_1 = eta/N sum_i y_i x_i`` and the
prediction ``y_gd = w_1^T x_q``.

A linear self-attention (LSA) layer, no softmax, with heads ``h`` updates every token by

    e_j <- e_j + sum_h P_h W_v,h (1/N) sum_i e_i e_i^T W_k,h^T W_q,h e_j,

where ``i`` runs over the context tokens only. Its prediction is read from the query's
y-slot and negated, as in the paper: ``y_lsa = -[e_q after the layer]_{d+1}``. With
``W_q = W_k = [[I, 0], [0, 0]]``, ``W_v = [[0, 0], [0, -1]]`` and ``P = eta I`` the query's
y-slot receives ``-eta/N sum_i y_i x_i^T x_q = -y_gd``: the layer IS one GD step
(:func:`gd_construction`). :func:`train_lsa` trains the same layer with Adam from small
random weights, and :func:`compare_with_gd` measures how close it comes to GD.
"""

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import _args
from course_lib.optim import Adam


@dataclass
class Tasks:
    """A batch of in-context regression tasks.

    Shapes: ``context_x (B, N, d)``, ``context_y (B, N)``, ``query_x (B, d)``,
    ``query_y (B,)``, ``weights (B, d)`` (the ``w`` that made the targets).
    """

    context_x: torch.Tensor
    context_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    weights: torch.Tensor

    def tokens(self, query_x=None):
        """Tokens ``(B, N + 1, d + 1)``: rows ``(x_i, y_i)``, then ``(x_q, 0)`` last."""
        query_x = self.query_x if query_x is None else query_x
        context = torch.cat([self.context_x, self.context_y.unsqueeze(-1)], dim=-1)
        query = torch.cat([query_x, torch.zeros_like(query_x[:, :1])], dim=-1)
        return torch.cat([context, query.unsqueeze(1)], dim=1)


def sample_tasks(
    num_tasks,
    *,
    dim=10,
    num_context=10,
    input_scale=1.0,
    generator=None,
    device=None,
    dtype=torch.float32,
):
    """Draw ``num_tasks`` tasks: ``w ~ N(0, I)``, ``x ~ U(-input_scale, input_scale)^dim``.

    Random numbers come from ``generator`` on the CPU, so a seed gives the same tasks on
    every device; the tensors are then moved to ``device`` and ``dtype``.
    """
    for name, value in (("num_tasks", num_tasks), ("dim", dim), ("num_context", num_context)):
        _args.integer(name, value, minimum=1)
    _args.positive("input_scale", input_scale)
    weights = torch.randn(num_tasks, dim, generator=generator, dtype=dtype)
    x = torch.rand(num_tasks, num_context + 1, dim, generator=generator, dtype=dtype)
    x = (input_scale * (2 * x - 1)).to(device)
    weights = weights.to(device)
    y = torch.einsum("btd,bd->bt", x, weights)
    return Tasks(x[:, :-1], y[:, :-1], x[:, -1], y[:, -1], weights)


class LinearSelfAttention(nn.Module):
    """One layer of linear self-attention (no softmax) over tokens of size ``dim + 1``.

    Parameters ``query, key, value, projection`` have shape ``(num_heads, D, D)``,
    ``D = dim + 1``, and are drawn from ``N(0, init_scale^2)``. ``forward`` returns the
    updated tokens (see the module docstring); ``predict`` returns ``-y``-slot of the query.
    """

    def __init__(self, dim=10, num_heads=1, init_scale=0.02, generator=None):
        super().__init__()
        _args.integer("dim", dim, minimum=1)
        _args.integer("num_heads", num_heads, minimum=1)
        _args.nonnegative("init_scale", init_scale)
        self.dim = dim
        shape = (num_heads, dim + 1, dim + 1)

        def draw():
            return nn.Parameter(init_scale * torch.randn(shape, generator=generator))

        self.query, self.key, self.value, self.projection = draw(), draw(), draw(), draw()

    def _check(self, tokens):
        if tokens.dim() != 3 or tokens.shape[-1] != self.dim + 1 or tokens.shape[1] < 2:
            raise ValueError(
                f"tokens must have shape (batch, N + 1, {self.dim + 1}) with N >= 1, "
                f"got {tuple(tokens.shape)}"
            )

    def forward(self, tokens):
        self._check(tokens)
        context = tokens[:, :-1]
        queries = torch.einsum("hij,btj->bhti", self.query, tokens)
        keys = torch.einsum("hij,bnj->bhni", self.key, context)
        values = torch.einsum("hij,bnj->bhni", self.value, context)
        scores = queries @ keys.transpose(-1, -2) / context.shape[1]
        heads = scores @ values
        return tokens + torch.einsum("hij,bhtj->bti", self.projection, heads)

    def predict(self, tokens):
        """The prediction for the query (the last token): minus its y-slot after the layer.

        Computes only what reaches that slot, ``-(1/N) sum_h sum_i (b_h^T e_i)
        (e_i^T W_k,h^T W_q,h e_q)`` with ``b_h^T`` the last row of ``P_h W_v,h``: the same
        number as ``-self(tokens)[:, -1, -1]``, several times faster to train.
        """
        self._check(tokens)
        context, query = tokens[:, :-1], tokens[:, -1]
        scores_matrix = self.key.transpose(-1, -2) @ self.query
        y_row = (self.projection @ self.value)[:, -1]
        scored_query = torch.einsum("hij,bj->bhi", scores_matrix, query)
        scores = torch.einsum("bni,bhi->bhn", context, scored_query)
        values = torch.einsum("bni,hi->bhn", context, y_row)
        return -(scores * values).sum(dim=(1, 2)) / context.shape[1]


def gd_construction(lr, *, dim=10, device=None, dtype=torch.float32):
    """LSA weights, set by hand, whose prediction is one GD step of size ``lr`` from w = 0.

    ``W_q = W_k = [[I_d, 0], [0, 0]]`` so the attention score of query ``j`` on context
    token ``i`` is ``x_i^T x_j``; ``W_v = [[0, 0], [0, -1]]`` carries ``-y_i`` into the
    y-slot; ``P = lr I``. The query's y-slot becomes ``-lr/N sum_i y_i x_i^T x_q``, and the
    negated read-out is ``gd_predict(tasks, lr)``.
    """
    if not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number, got {lr}")
    model = LinearSelfAttention(dim, num_heads=1, init_scale=0.0).to(device=device, dtype=dtype)
    inputs_only = torch.eye(dim + 1, device=device, dtype=dtype)
    inputs_only[dim, dim] = 0
    minus_target = torch.zeros(dim + 1, dim + 1, device=device, dtype=dtype)
    minus_target[dim, dim] = -1
    with torch.no_grad():
        model.query[0] = inputs_only
        model.key[0] = inputs_only
        model.value[0] = minus_target
        model.projection[0] = lr * torch.eye(dim + 1, device=device, dtype=dtype)
    return model


def gd_predict(tasks, lr, query_x=None):
    """One GD step on ``L(w) = 1/(2N) sum (w^T x_i - y_i)^2`` from 0, applied to ``x_q``."""
    query_x = tasks.query_x if query_x is None else query_x
    w1 = lr * torch.einsum("bn,bnd->bd", tasks.context_y, tasks.context_x)
    w1 = w1 / tasks.context_x.shape[1]
    return (w1 * query_x).sum(-1)


def best_gd_lr(tasks):
    """The learning rate minimising the query loss of one GD step on these tasks.

    The prediction is linear in the learning rate, ``y_gd = lr * g`` with ``g = y_gd(lr=1)``,
    so the best rate is the least-squares fit ``lr = sum g y_q / sum g^2``.
    """
    g = gd_predict(tasks, 1.0).double()
    return float((g * tasks.query_y.double()).sum() / (g * g).sum())


def query_loss(prediction, target):
    """``1/(2B) sum_b (prediction_b - target_b)^2``, the paper's training loss."""
    return 0.5 * ((prediction - target) ** 2).mean()


def train_lsa(
    *,
    dim=10,
    num_context=10,
    num_heads=1,
    steps=1000,
    batch_size=512,
    lr=3e-3,
    init_scale=0.02,
    seed=0,
    device=None,
    dtype=torch.float32,
):
    """Train one LSA layer with Adam on fresh tasks every step; return ``(model, history)``.

    The learning rate decays along a cosine from ``lr`` to 0 over ``steps``. ``history``
    holds ``losses`` (one per step) and ``seconds`` (wall-clock training time). The
    matrices are small (``dim + 1`` square): on a CPU, one thread (``torch.set_num_threads``)
    may well be faster than several; that is the caller's choice.
    """
    _args.integer("steps", steps, minimum=1)
    _args.integer("batch_size", batch_size, minimum=1)
    _args.positive("lr", lr)
    generator = torch.Generator().manual_seed(seed)
    model = LinearSelfAttention(dim, num_heads, init_scale, generator=generator)
    model = model.to(device=device, dtype=dtype)
    optimizer = Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        tasks = sample_tasks(
            batch_size,
            dim=dim,
            num_context=num_context,
            generator=generator,
            device=device,
            dtype=dtype,
        )
        loss = query_loss(model.predict(tasks.tokens()), tasks.query_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return model, {"losses": losses, "seconds": time.perf_counter() - start}


def _input_gradients(predict, query_x):
    """Per-task gradient ``d prediction_b / d x_q,b``, shape ``(B, d)``."""
    query_x = query_x.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(predict(query_x).sum(), query_x)
    return gradient


def compare_on_tasks(model, tasks, gd_lr):
    """Compare an LSA layer with one GD step of size ``gd_lr`` on ``tasks``; a dict of floats.

    - ``lsa_loss``, ``gd_loss``: query loss ``1/2 mean (y_hat - y_q)^2`` of each;
    - ``baseline_loss``: the same loss for the prediction 0 (what no learning achieves);
    - ``gd_lr``: the learning rate GD used;
    - ``prediction_diff``: ``mean (y_lsa - y_gd)^2``;
    - ``sensitivity_cosine``: mean over tasks of ``cos(d y_lsa/d x_q, d y_gd/d x_q)``;
    - ``relative_gap``: ``(lsa_loss - gd_loss) / gd_loss``.
    """

    def lsa(query_x):
        return model.predict(tasks.tokens(query_x))

    def gd(query_x):
        return gd_predict(tasks, gd_lr, query_x)

    cosine = nn.functional.cosine_similarity(
        _input_gradients(lsa, tasks.query_x), _input_gradients(gd, tasks.query_x), dim=-1
    )
    with torch.no_grad():
        y_lsa, y_gd = lsa(tasks.query_x), gd(tasks.query_x)
        lsa_loss = query_loss(y_lsa, tasks.query_y).item()
        gd_loss = query_loss(y_gd, tasks.query_y).item()
        return {
            "lsa_loss": lsa_loss,
            "gd_loss": gd_loss,
            "baseline_loss": query_loss(torch.zeros_like(y_gd), tasks.query_y).item(),
            "gd_lr": float(gd_lr),
            "prediction_diff": ((y_lsa - y_gd) ** 2).mean().item(),
            "sensitivity_cosine": cosine.mean().item(),
            "relative_gap": (lsa_loss - gd_loss) / gd_loss,
        }


def compare_with_gd(
    model,
    *,
    num_tasks=10000,
    num_context=10,
    input_scale=1.0,
    gd_lr=None,
    seed=1234,
):
    """Compare an LSA layer with one GD step on fresh tasks (see ``compare_on_tasks``).

    If ``gd_lr`` is None, GD's best learning rate is fitted (closed form, ``best_gd_lr``)
    on ``num_tasks`` held-out in-distribution tasks; both are then evaluated on another
    ``num_tasks`` tasks with inputs scaled by ``input_scale``. Tasks follow the model's
    device and dtype.
    """
    _args.positive("input_scale", input_scale)
    parameter = next(model.parameters())
    generator = torch.Generator().manual_seed(seed)
    options = {
        "dim": model.dim,
        "num_context": num_context,
        "generator": generator,
        "device": parameter.device,
        "dtype": parameter.dtype,
    }
    fit_tasks = sample_tasks(num_tasks, **options)
    tasks = sample_tasks(num_tasks, input_scale=input_scale, **options)
    if gd_lr is None:
        gd_lr = best_gd_lr(fit_tasks)
    return compare_on_tasks(model, tasks, gd_lr)


def out_of_distribution(model, alphas, *, gd_lr=None, num_tasks=10000, seed=1234):
    """Losses of the LSA layer and of GD when inputs are scaled by each ``alpha``.

    GD keeps the learning rate fitted in distribution (``alpha = 1``), as the trained layer
    keeps its weights. Returns a dict of lists: ``alpha, lsa_loss, gd_loss,
    baseline_loss, prediction_diff, sensitivity_cosine``. Divide a loss by
    ``baseline_loss`` to compare scales: the targets grow with ``alpha`` too.
    """
    alphas = [float(alpha) for alpha in alphas]
    if not alphas or min(alphas) <= 0:
        raise ValueError(f"alphas must be a non-empty list of positive numbers, got {alphas}")
    if gd_lr is None:
        gd_lr = compare_with_gd(model, num_tasks=num_tasks, seed=seed)["gd_lr"]
    keys = ("lsa_loss", "gd_loss", "baseline_loss", "prediction_diff", "sensitivity_cosine")
    result = {"alpha": alphas, **{key: [] for key in keys}}
    for alpha in alphas:
        row = compare_with_gd(model, num_tasks=num_tasks, input_scale=alpha, gd_lr=gd_lr, seed=seed)
        for key in keys:
            result[key].append(row[key])
    return result
