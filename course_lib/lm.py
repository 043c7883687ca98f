"""A small decoder-only transformer, an offline corpus with a known entropy floor, a sampler.

**The corpus.** Text from a *second-order Markov chain* over a 16-symbol alphabet: each
symbol is drawn given the two before it, from a table of 16 x 16 next-symbol distributions
that is itself drawn once from a fixed seed (each context allows only a few next symbols, so
the language has structure to learn). This choice gives the chapter two things a real text
cannot: the same bytes on every machine (everything is generated from fixed seeds by
inverse-CDF sampling of float64 uniforms on the CPU) and an exactly computable floor. A
model that predicts the next symbol from the whole past cannot do better, on average, than
the chain's *entropy rate*

.. math::

    H = \\sum_{a, b} \\pi(a, b) \\, H\\big(P(\\cdot \\mid a, b)\\big)
      = -\\sum_{a, b, c} \\pi(a, b) P(c \\mid a, b) \\log P(c \\mid a, b),

where :math:`\\pi` is the stationary distribution of the pair chain :math:`(a, b) \\to (b, c)`
(computed here by power iteration in float64). A model's validation cross-entropy in nats
per token minus :math:`H` is how far it is from perfect; :math:`\\log 16` is the loss of
guessing uniformly. The first prediction of a window sees only one symbol, which raises the
best achievable mean loss of a window slightly above :math:`H`
(:meth:`MarkovLanguage.window_floor` computes it exactly); the chapter uses that floor.

**The model.** GPT-2 style (Radford et al. 2019) in the pre-norm form: token and position
embeddings, then blocks of ``x + attention(layer_norm(x))`` and ``x + mlp(layer_norm(x))``,
a final layer norm, and an output layer that reuses the token embedding (weight tying).
Attention is :func:`causal_attention`, written out so that it reads like the formula
``softmax(Q K^T / sqrt(d) + M) V`` with ``M`` the causal mask (Vaswani et al. 2017).

**Training.** :func:`train_lm` trains with a warmup + cosine schedule and logs the
validation loss against tokens seen and wall-clock seconds. It runs unchanged under
``torchrun`` with ``DistributedDataParallel``: when a process group is initialised, each
process takes its share of every batch and DDP averages the gradients. On one CPU machine,
:func:`course_lib.parallel.map_forked` trains independent runs side by side, one forked
process per core.
"""

import bisect
import functools
import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import course_lib.optim as co
from course_lib.schedules import warmup_cosine

ALPHABET = "abcdefghijklmnop"


# --------------------------------------------------------------------------- corpus
@dataclass
class MarkovLanguage:
    """A second-order Markov chain: ``table[a, b, c] = P(next = c | previous two = a, b)``."""

    table: torch.Tensor  # float64, (V, V, V), rows sum to 1

    @property
    def vocab_size(self) -> int:
        return self.table.shape[0]

    def stationary_pairs(self) -> torch.Tensor:
        """The stationary distribution pi(a, b) of the pair chain (a, b) -> (b, c).

        Solves pi = pi T with sum(pi) = 1 in float64, where T[(a, b), (b, c)] = P(c | a, b)."""
        v = self.vocab_size
        transition = torch.zeros(v, v, v, v, dtype=torch.float64)
        for b in range(v):
            transition[:, b, b, :] = self.table[:, b, :]
        transition = transition.reshape(v * v, v * v)
        system = transition.T - torch.eye(v * v, dtype=torch.float64)
        system[-1] = 1.0  # replace one (redundant) balance equation by sum(pi) = 1
        rhs = torch.zeros(v * v, dtype=torch.float64)
        rhs[-1] = 1.0
        return torch.linalg.solve(system, rhs).reshape(v, v)

    def entropy_rate(self) -> float:
        """H = -sum pi(a,b) P(c|a,b) log P(c|a,b), in nats per symbol."""
        p = self.table
        plogp = torch.where(p > 0, p * p.log(), torch.zeros_like(p))
        return float(-(self.stationary_pairs()[..., None] * plogp).sum())

    def window_floor(self, seq_len: int) -> float:
        """The best mean loss over a window of ``seq_len`` predictions started at stationarity.

        Position 0 sees one symbol, so its floor is H(X_1 | X_0); every later position sees
        two or more and its floor is the entropy rate H."""
        pi = self.stationary_pairs()
        first = pi.sum(0)  # marginal of one symbol
        pair = pi / first.clamp_min(1e-300)[:, None]  # P(X_1 = b | X_0 = a)
        logs = torch.where(pair > 0, pair.log(), torch.zeros_like(pair))
        first_step = float(-(first[:, None] * pair * logs).sum())
        return (first_step + (seq_len - 1) * self.entropy_rate()) / seq_len

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` symbols (int64) of the chain started from its stationary distribution.

        Inverse-CDF sampling from float64 uniforms of a seeded CPU generator: the same
        seed gives the same symbols on every machine."""
        gen = torch.Generator().manual_seed(seed)
        u = torch.rand(n, generator=gen, dtype=torch.float64).tolist()
        v = self.vocab_size
        pairs = self.stationary_pairs().flatten().cumsum(0).tolist()
        start = min(bisect.bisect_right(pairs, u[0]), v * v - 1)
        out = [start // v, start % v]
        cdf = [row for rows in self.table.cumsum(-1).tolist() for row in rows]  # index a*v + b
        for x in u[2:]:
            out.append(min(bisect.bisect_right(cdf[out[-2] * v + out[-1]], x), v - 1))
        return torch.tensor(out[:n], dtype=torch.int64)


def markov_language(vocab_size: int = 16, branching: int = 4, seed: int = 0) -> MarkovLanguage:
    """A random order-2 chain where each context allows ``branching`` next symbols.

    The allowed symbols of each context and their probabilities (normalised exponentials
    of standard normals) come from a seeded CPU generator."""
    if not 1 <= branching <= vocab_size:
        raise ValueError(f"branching must be in [1, {vocab_size}], got {branching}")
    gen = torch.Generator().manual_seed(seed)
    v = vocab_size
    logits = torch.randn(v, v, v, generator=gen, dtype=torch.float64)
    allowed = torch.rand(v, v, v, generator=gen, dtype=torch.float64).argsort(-1) < branching
    weights = torch.where(allowed, logits.exp(), torch.zeros_like(logits))
    return MarkovLanguage(weights / weights.sum(-1, keepdim=True))


@dataclass
class Corpus:
    """Training, validation and test streams of one language, and its entropy floor."""

    language: MarkovLanguage
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    entropy_rate: float

    @property
    def vocab_size(self) -> int:
        return self.language.vocab_size


def markov_corpus(
    train_tokens: int = 200_000, val_tokens: int = 20_000, test_tokens: int = 20_000, seed: int = 0
) -> Corpus:
    """The chapter's corpus: three independent streams of :func:`markov_language` text."""
    lang = markov_language(seed=seed)
    streams = [
        lang.sample(n, seed=seed + 1 + i)
        for i, n in enumerate((train_tokens, val_tokens, test_tokens))
    ]
    return Corpus(lang, *streams, entropy_rate=lang.entropy_rate())


def decode(tokens) -> str:
    """Symbols as text: token i is the letter ``ALPHABET[i]``."""
    return "".join(ALPHABET[int(t)] for t in tokens)


def windows(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` tokens (inputs and shifted targets)."""
    n = (len(stream) - 1) // seq_len
    return stream[: n * seq_len + 1].unfold(0, seq_len + 1, seq_len)


def random_batch(stream: torch.Tensor, batch_size: int, seq_len: int, generator) -> torch.Tensor:
    """``batch_size`` windows of ``seq_len + 1`` tokens at random offsets of ``stream``."""
    starts = torch.randint(len(stream) - seq_len, (batch_size,), generator=generator)
    return stream.unfold(0, seq_len + 1, 1)[starts]


# --------------------------------------------------------------------------- model
@functools.cache
def causal_mask(t: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The ``(t, t)`` mask M: 0 where j <= i, -inf where j > i; built once per t, dtype, device."""
    return torch.full((t, t), float("-inf"), dtype=dtype, device=device).triu(1)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + M) v, with M[i, j] = -inf where j > i (no peeking ahead).

    Shapes ``(..., T, d)``; the same result as
    ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return (scores + causal_mask(q.shape[-2], scores.dtype, q.device)).softmax(dim=-1) @ v


class Block(nn.Module):
    """x + attention(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        y = causal_attention(q, k, v)  # (b, heads, t, w / heads)
        return self.proj(y.transpose(1, 2).reshape(b, t, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer: embeddings, ``layers`` blocks, layer norm, tied output."""

    def __init__(
        self,
        vocab_size: int = 16,
        seq_len: int = 32,
        width: int = 32,
        layers: int = 2,
        heads: int = 2,
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
        self.seq_len = seq_len
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(
                    p, std=0.02 / (math.sqrt(2 * layers) if name.endswith("proj.weight") else 1)
                )
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, T, vocab)`` for the next token at every position."""
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.token.weight.T  # weight tying


def lm_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of windows ``(batch, T + 1)`` under ``model``
    (a :class:`TinyGPT`, DDP-wrapped or not)."""
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    stream: torch.Tensor,
    seq_len: int,
    max_windows: int | None = None,
    chunk: int = 64,
) -> float:
    """Mean cross-entropy over the non-overlapping windows of ``stream``.

    The windows go through the model ``chunk`` at a time (on a CPU, small batches that stay
    in the cache are faster than one large one); the mean is weighted by chunk size."""
    device = next(model.parameters()).device
    data = windows(stream, seq_len)[:max_windows]
    total = sum(float(lm_loss(model, part.to(device))) * len(part) for part in data.split(chunk))
    return total / len(data)


def matrix_parameters(model: nn.Module) -> tuple[list, list]:
    """(hidden weight matrices, everything else: embeddings, gains, biases).

    Muon orthogonalises the updates of the first group; the second goes to AdamW, as in
    Jordan et al. 2024. The token embedding is also the output layer (tied), so it stays
    with AdamW."""
    matrices, others = [], []
    for name, p in model.named_parameters():
        (matrices if p.dim() == 2 and name.startswith("blocks.") else others).append(p)
    return matrices, others


OPTIMIZERS = ("SGD", "Adam", "AdamW", "Lion", "Adafactor", "Muon")


def make_optimizers(name: str, model: nn.Module, lr: float) -> list:
    """The chapter's optimizer ``name`` at peak learning rate ``lr``, as a list.

    Settings other than lr are common choices for transformers: SGD with momentum 0.9;
    Adam and AdamW with betas (0.9, 0.95), AdamW with weight decay 0.1; Lion with the
    betas of Chen et al. 2023 and weight decay 1.0 (its lr is ~10x smaller than AdamW's, so
    lr * wd is alike); Adafactor with torch's defaults. "Muon" is Muon on the hidden
    matrices plus AdamW on the rest, one lr for both: Muon's ``match_rms_adamw`` scaling
    gives its updates AdamW's size (Liu et al. 2025)."""
    params = list(model.parameters())
    if name == "SGD":
        return [co.SGD(params, lr=lr, momentum=0.9)]
    if name == "Adam":
        return [co.Adam(params, lr=lr, betas=(0.9, 0.95))]
    if name == "AdamW":
        return [co.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.1)]
    if name == "Lion":
        return [co.Lion(params, lr=lr, weight_decay=1.0)]
    if name == "Adafactor":
        return [co.Adafactor(params, lr=lr)]
    if name == "Muon":
        matrices, others = matrix_parameters(model)
        return [
            co.Muon(matrices, lr=lr, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"),
            co.AdamW(others, lr=lr, betas=(0.9, 0.95), weight_decay=0.1),
        ]
    raise ValueError(f"name must be one of {OPTIMIZERS}, got {name!r}")


@torch.no_grad()
def sample(
    model: TinyGPT, prompt, length: int, seed: int = 0, temperature: float = 1.0
) -> torch.Tensor:
    """Extend ``prompt`` (a 1-D tensor of tokens) by ``length`` sampled tokens."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    tokens = torch.as_tensor(prompt, dtype=torch.int64, device=device).clone()
    for _ in range(length):
        logits = model(tokens[-model.seq_len :][None])[0, -1] / temperature
        nxt = torch.multinomial(logits.softmax(-1), 1, generator=gen)
        tokens = torch.cat([tokens, nxt])
    return tokens


def block_sharpness(
    model: nn.Module, batch: torch.Tensor, iters: int = 20, seed: int = 0, names=None
) -> dict:
    """Largest |eigenvalue| of the Hessian of the loss restricted to each parameter tensor.

    Zhang et al. 2024's block view: for block b, H_bb = d^2 loss / d p_b^2 with the other
    blocks held fixed. Power iteration v <- H_bb v / |H_bb v| on Hessian-vector products
    (double backward through the gradient of block b); returns {name: |v^T H_bb v|} for
    every parameter, or for those in ``names``."""
    gen = torch.Generator().manual_seed(seed)
    named = [(n, p) for n, p in model.named_parameters() if names is None or n in names]
    grads = torch.autograd.grad(lm_loss(model, batch), [p for _, p in named], create_graph=True)
    out = {}
    for (name, p), g in zip(named, grads, strict=True):
        v = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
        v /= v.norm()
        for _ in range(iters):
            hv = torch.autograd.grad(g, p, v, retain_graph=True)[0]
            eigenvalue = float((v * hv).sum())
            v = hv / hv.norm().clamp_min(1e-30)
        out[name] = abs(eigenvalue)
    return out


# --------------------------------------------------------------------------- training
@dataclass
class LMHistory:
    """Validation loss logged against optimizer steps, tokens seen and seconds spent."""

    step: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _shard(batch: torch.Tensor) -> torch.Tensor:
    """This process's rows of the batch (all of it without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return batch
    return batch.chunk(dist.get_world_size())[dist.get_rank()]


def train_lm(
    model: nn.Module,
    optimizers,
    corpus: Corpus,
    *,
    steps: int,
    batch_size: int = 32,
    warmup_steps: int = 0,
    eval_every: int = 50,
    eval_windows: int | None = 32,
    seed: int = 0,
) -> LMHistory:
    """Train with a linear warmup + cosine decay of every group's lr to 0 at ``steps``.

    ``optimizers`` is one optimizer or a list (Muon on the matrices + AdamW on the rest);
    each group's lr at construction is its peak. Batches of ``batch_size`` random windows
    come from a generator seeded by ``seed``, identical in every process; under DDP each
    process trains on its share of every batch. The validation loss is logged every
    ``eval_every`` steps on the first ``eval_windows`` windows of ``corpus.val``, and at the
    end on all of it; the evaluation time is not counted in ``seconds``."""
    optimizers = optimizers if isinstance(optimizers, (list, tuple)) else [optimizers]
    groups = [g for opt in optimizers for g in opt.param_groups]
    for g in groups:
        g.setdefault("peak_lr", g["lr"])
    seq_len = model.module.seq_len if hasattr(model, "module") else model.seq_len
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    history, seconds = LMHistory(), 0.0
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            model.eval()
            history.step.append(step)
            history.tokens.append(step * batch_size * seq_len)
            history.seconds.append(seconds)
            last = step == steps  # the final loss, used to choose hyperparameters: all of val
            history.val_loss.append(
                evaluate(model, corpus.val, seq_len, None if last else eval_windows)
            )
            model.train()
        if step == steps:
            return history
        start = time.perf_counter()
        batch = _shard(random_batch(corpus.train, batch_size, seq_len, gen)).to(device)
        factor = warmup_cosine(step, warmup_steps=warmup_steps, total_steps=steps, peak_lr=1.0)
        for g in groups:
            g["lr"] = g["peak_lr"] * factor
        for opt in optimizers:
            opt.zero_grad()
        lm_loss(model, batch).backward()
        for opt in optimizers:
            opt.step()
        seconds += time.perf_counter() - start
