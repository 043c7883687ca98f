"""course_lib.lm against independent references: torch's fused attention, a float64
recomputation of the loss, closed-form and Monte-Carlo entropy rates, fresh processes."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib import lm
from course_lib.parallel import map_forked

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = lm.TinyGPT(vocab_size=16, seq_len=12, width=16, layers=2, heads=2)
    with torch.no_grad():  # away from the tiny initialisation, so attention is not uniform
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def test_causal_attention_matches_scaled_dot_product_attention():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(lm.causal_attention(q, k, v), expected)


def test_model_matches_itself_with_torch_attention(model, monkeypatch):
    tokens = torch.randint(16, (3, 12), generator=torch.Generator().manual_seed(1))
    ours = model(tokens)
    monkeypatch.setattr(
        lm,
        "causal_attention",
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    )
    torch.testing.assert_close(model(tokens), ours, rtol=1e-5, atol=1e-5)


def test_model_does_not_see_the_future(model):
    tokens = torch.randint(16, (1, 12), generator=torch.Generator().manual_seed(2))
    changed = tokens.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 16
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_loss_matches_float64_recomputation(model):
    batch = torch.randint(16, (4, 13), generator=torch.Generator().manual_seed(3))
    model64 = lm.TinyGPT(vocab_size=16, seq_len=12, width=16, layers=2, heads=2).double()
    model64.load_state_dict(model.state_dict())
    logits = model64(batch[:, :-1]).flatten(0, 1)
    targets = batch[:, 1:].flatten()
    by_hand = (logits.logsumexp(-1) - logits[torch.arange(len(targets)), targets]).mean()
    assert lm.lm_loss(model, batch).dtype == torch.float32
    assert abs(lm.lm_loss(model, batch).item() - by_hand.item()) < 1e-5


def test_uniform_chain_has_entropy_rate_log_branching():
    v, k = 8, 3
    table = torch.zeros(v, v, v, dtype=torch.float64)
    for a in range(v):
        for b in range(v):
            table[a, b, [(a + b + j) % v for j in range(k)]] = 1 / k
    assert math.isclose(lm.MarkovLanguage(table).entropy_rate(), math.log(k), rel_tol=1e-12)


def test_entropy_rate_matches_monte_carlo_estimate():
    lang = lm.markov_language(seed=3)
    x = lang.sample(100_000, seed=4)
    surprisal = -lang.table[x[:-2], x[1:-1], x[2:]].log()
    pairs = torch.bincount(x[:-1] * 16 + x[1:], minlength=256).double() / (len(x) - 1)
    assert abs(surprisal.mean().item() - lang.entropy_rate()) < 0.02
    assert (pairs - lang.stationary_pairs().flatten()).abs().max() < 0.005
    assert 0.5 < lang.entropy_rate() < math.log(4)  # below uniform over the 4 allowed symbols


DIGEST = (
    "import hashlib; from course_lib import lm; c = lm.markov_corpus(**SIZES);"
    "data = b''.join(t.numpy().astype('uint8').tobytes() for t in (c.train, c.val, c.test));"
    "digest = hashlib.sha256(data).hexdigest()"
)


def corpus_digest(**sizes) -> str:
    scope = {"SIZES": sizes}
    exec(DIGEST, scope)
    return scope["digest"]


def test_corpus_is_byte_identical_across_runs_and_processes():
    sizes = dict(train_tokens=5_000, val_tokens=500, test_tokens=500)
    here = corpus_digest(**sizes)
    assert here == corpus_digest(**sizes)
    assert corpus_digest(seed=1, **sizes) != here
    code = f"import torch; torch.manual_seed(123); SIZES = {sizes!r}; {DIGEST}; print(digest)"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    fresh = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert fresh.stdout.strip() == here, fresh.stderr


class FixedLogits(torch.nn.Module):
    """A stand-in model whose next-token distribution is always softmax(logits)."""

    seq_len = 4

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, tokens):
        return self.logits.expand(*tokens.shape, -1)


def test_sampler_draws_from_the_model_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    stub = FixedLogits(probs.clamp_min(1e-30).log())
    out = lm.sample(stub, [3, 3], length=1000, seed=0)
    assert out[:2].tolist() == [3, 3] and len(out) == 1002
    freq = torch.bincount(out[2:], minlength=4).float() / 1000
    torch.testing.assert_close(freq, probs, atol=0.05, rtol=0)  # 3.5 standard errors
    assert torch.equal(out, lm.sample(stub, [3, 3], length=1000, seed=0))


def test_muon_split_covers_every_parameter_once(model):
    matrices, others = lm.matrix_parameters(model)
    assert all(p.dim() == 2 for p in matrices) and model.token.weight in others
    assert {id(p) for p in matrices + others} == {id(p) for p in model.parameters()}
    assert len(matrices) + len(others) == len(list(model.parameters()))
    assert sum(
        len(g["params"]) for o in lm.make_optimizers("Muon", model, 1e-3) for g in o.param_groups
    ) == len(list(model.parameters()))


def test_window_floor_matches_monte_carlo_surprisal():
    lang = lm.markov_language(seed=3)
    x = lm.windows(lang.sample(40_000, seed=5), 8)  # windows start at ~stationary states
    first = torch.bincount(x[:, 0], minlength=16).double() + torch.bincount(x[:, 1], minlength=16)
    pi = lang.stationary_pairs()
    pair = pi / pi.sum(1, keepdim=True)
    surprisal = torch.cat(
        [
            -pair[x[:, 0], x[:, 1]].log(),
            -lang.table[x[:, :-2], x[:, 1:-1], x[:, 2:]].log().flatten(),
        ]
    )
    assert first.sum() > 0
    assert abs(surprisal.mean().item() - lang.window_floor(8)) < 0.03
    assert lang.window_floor(8) > lang.entropy_rate()


def test_block_sharpness_matches_full_hessian_eigenvalues(model):
    batch = torch.randint(16, (2, 13), generator=torch.Generator().manual_seed(6))
    names = ("ln.weight", "blocks.1.proj.bias")
    got = lm.block_sharpness(model, batch, iters=200, names=names)
    assert set(got) == set(names)
    for name in names:
        p = dict(model.named_parameters())[name]

        def f(x, name=name):
            logits = torch.func.functional_call(model, {name: x}, (batch[:, :-1],))
            return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())

        hessian = torch.autograd.functional.hessian(f, p.detach())
        top = torch.linalg.eigvalsh(hessian.double()).abs().max().item()
        assert abs(got[name] - top) < 1e-3 * top


def test_evaluate_in_chunks_is_the_mean_over_all_windows(model):
    stream = torch.randint(16, (12 * 50 + 1,), generator=torch.Generator().manual_seed(7))
    data = stream[:-1].view(50, 12)
    logits = model(data).double().flatten(0, 1)
    targets = stream[1:].view(50, 12).flatten()
    by_hand = (logits.logsumexp(-1) - logits[torch.arange(len(targets)), targets]).mean()
    for chunk in (7, 50, 64):  # uneven last chunk, one chunk, more than all
        assert abs(lm.evaluate(model, stream, 12, chunk=chunk) - by_hand.item()) < 1e-5


def _train(seed):
    torch.manual_seed(seed)
    model = lm.TinyGPT(vocab_size=16, seq_len=8, width=8, layers=1, heads=2)
    corpus = lm.markov_corpus(train_tokens=2_000, val_tokens=200, test_tokens=10)
    history = lm.train_lm(
        model, lm.make_optimizers("Adam", model, 1e-2), corpus, steps=5, batch_size=4, seed=seed
    )
    return history.val_loss, model.state_dict()


def test_forked_runs_train_like_one_process():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the forked processes: the same kernels, the same bits
    try:
        serial = [_train(seed) for seed in (0, 1, 2)]
    finally:
        torch.set_num_threads(threads)
    forked = map_forked(_train, (0, 1, 2), processes=2)
    assert len(forked) == 3 and serial[0][0] != serial[1][0]
    for (loss, state), (loss_f, state_f) in zip(serial, forked, strict=True):
        assert loss == loss_f
        assert all(torch.equal(state[k], state_f[k]) for k in state)
    assert map_forked(lambda x: x * x, range(5)) == [0, 1, 4, 9, 16]  # a closure is fine
