"""fused=True: each optimizer's own update compiled by torch.compile (Inductor) against the
eager update: equal within float32 rounding over many steps with a changing learning rate,
no recompilation once the layout has been seen, the same state_dict, and a warning and the
eager result where compiling fails. Tiny tensors keep the compiles (one per class) short."""

import pytest
import torch
from torch._dynamo.utils import counters

import course_lib.optim as co
from course_lib.optim import _base

MATRICES = [(6, 4), (4, 5)]
MIXED = [(6, 4), (4,)]
# optimizer, hyperparameters, shapes, steps, tolerance (relative to the largest entry)
CASES = [
    (co.SGD, dict(lr=0.05), MIXED, 1e-6),
    (co.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), MIXED, 1e-6),
    (co.Adagrad, dict(lr=0.05, lr_decay=0.01, weight_decay=0.1), MIXED, 1e-6),
    (co.RMSprop, dict(lr=0.01, momentum=0.9, centered=True), MIXED, 1e-5),
    (co.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True), MIXED, 1e-5),
    (co.AdamW, dict(lr=0.01), MIXED, 1e-5),
    (co.RAdam, dict(lr=0.01), MIXED, 1e-5),
    (co.NAdam, dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1), MIXED, 1e-5),
    (co.Lion, dict(lr=0.01, weight_decay=0.1), MIXED, 1e-6),
    (co.Adafactor, dict(lr=0.01, weight_decay=0.1), MIXED, 1e-5),
    (co.Adafactor, dict(lr=0.05, beta1=0.9, d=1.5), MIXED, 1e-5),
    (co.Muon, dict(lr=0.01), MATRICES, 1e-2),
    (co.Shampoo, dict(lr=0.01, momentum=0.9, update_freq=3), MATRICES, 1e-4),
    (co.SOAP, dict(lr=0.01), MATRICES, 1e-4),
    (co.AdamWScheduleFree, dict(lr=0.01, warmup_steps=5), MIXED, 1e-5),
]
STEPS = 30
# their updates branch on the step (RAdam's rectification, NAdam's product of momenta read
# with .item(), Shampoo's and SOAP's preconditioner refreshed every few steps), so their
# compiled step is several graphs: correct, but not one kernel
BRANCHING = (co.RAdam, co.NAdam, co.Shampoo, co.SOAP)


def make(cls, kwargs, shapes, fused):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    opt = cls(params, **kwargs, fused=fused)
    if hasattr(opt, "train"):
        opt.train()
    return params, opt


def run(params, opt, steps, lr0):
    """Steps on the loss sum(p^4)/4 + noise . p with a learning rate changed at every step."""
    gen = torch.Generator().manual_seed(1)
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr0 * (1 + 0.5 * (t % 3))
        for p in params:
            p.grad = p.detach() ** 3 + torch.randn(p.shape, generator=gen)
        opt.step()


@pytest.mark.parametrize(
    "cls, kwargs, shapes, tol", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]
)
def test_fused_equals_eager_without_recompiling(cls, kwargs, shapes, tol):
    eager_params, eager = make(cls, kwargs, shapes, fused=False)
    fused_params, fused = make(cls, kwargs, shapes, fused=True)
    run(eager_params, eager, STEPS, kwargs["lr"])
    with torch._dynamo.config.patch(recompile_limit=64):  # a recompile must show, not hide
        before = counters["stats"]["unique_graphs"]
        breaks = sum(counters["graph_break"].values())
        run(fused_params, fused, STEPS, kwargs["lr"])
        compiled = counters["stats"]["unique_graphs"]
        # a new optimizer of the same layout, with other learning rates: nothing compiles
        run(*make(cls, kwargs, shapes, fused=True), STEPS, 0.7 * kwargs["lr"])
    assert compiled > before, "the update was compiled"
    assert counters["stats"]["unique_graphs"] == compiled, "recompiled for a new lr"
    if cls not in BRANCHING:
        assert sum(counters["graph_break"].values()) == breaks, "the update is one graph"
    assert _base._COMPILED.get(type(fused).update) is not None or cls is co.AdamWScheduleFree
    start = make(cls, kwargs, shapes, fused=False)[0]
    for a, b, a0 in zip(eager_params, fused_params, start, strict=True):
        assert (a - a0).abs().max() > 1e-2 * a.abs().max(), "the steps moved the weights"
        torch.testing.assert_close(b, a, rtol=0, atol=tol * a.abs().max().item())
    eager_state, fused_state = eager.state_dict(), fused.state_dict()
    for i, state in eager_state["state"].items():
        assert state.keys() == fused_state["state"][i].keys()
        for name, value in state.items():
            assert_state_close(fused_state["state"][i][name], value, tol)


def assert_state_close(got, expected, tol):
    """State entries: tensors (same dtype and shape, close), numbers, or lists of these."""
    if isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_state_close(g, e, tol)
    elif isinstance(expected, torch.Tensor):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        scale = expected.abs().max().item() if expected.numel() else 0.0
        torch.testing.assert_close(got, expected, rtol=0, atol=tol * max(scale, 1e-30))
    else:
        assert got == expected


def test_fused_falls_back_to_eager_with_a_warning(monkeypatch):
    """Simulate torch.compile failing (as when Inductor finds no C++ compiler)."""

    def failing_compile(function, **options):
        def compiled(*args, **kwargs):
            raise RuntimeError("simulated: InvalidCxxCompiler, no working C++ compiler found")

        return compiled

    monkeypatch.setattr(_base, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", failing_compile)
    kwargs = dict(lr=0.05, momentum=0.9)
    eager_params, eager = make(co.SGD, kwargs, MIXED, fused=False)
    fused_params, fused = make(co.SGD, kwargs, MIXED, fused=True)
    run(eager_params, eager, 5, kwargs["lr"])
    with pytest.warns(RuntimeWarning, match="runs eager") as record:
        run(fused_params, fused, 5, kwargs["lr"])
    assert len(record) == 1, "warned once, then eager without trying again"
    for a, b in zip(eager_params, fused_params, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


def test_fused_and_foreach_together_is_an_error():
    with pytest.raises(ValueError, match="fused and foreach"):
        co.Adam([torch.zeros(2, requires_grad=True)], fused=True, foreach=True)


def test_fused_chunks_sort_parameters_by_dimensions(monkeypatch):
    """run_fused compiles a chunk of at most CHUNK parameters at a time, sorted by their number
    of dimensions (so that a model's chunks repeat few layouts); every parameter is in one
    chunk, and a group of at most CHUNK parameters is one chunk (one compiled call)."""
    monkeypatch.setattr(_base, "CHUNK", 5)
    shapes = [(3, 2), (4,), (2, 2, 2), (5, 1), (6,), (1, 7)] * 4  # 8 vectors, 12 matrices, 4 3-D
    items = [(torch.zeros(s), i) for i, s in enumerate(shapes)]
    chunks = list(_base.chunks(items))
    assert sorted(i for chunk in chunks for _, i in chunk) == list(range(len(shapes)))
    assert [[p.ndim for p, _ in c] for c in chunks] == [
        [1] * 5,
        [1] * 3 + [2] * 2,
        [2] * 5,
        [2] * 5,
        [3] * 4,
    ]
    assert len(list(_base.chunks(items[:5]))) == 1
