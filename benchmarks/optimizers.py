"""Step time of course_lib.optim against torch.optim and reference packages, and the roofline.

Run:  .venv/bin/python benchmarks/optimizers.py [--quick]

Side by side, in one run: course_lib eager (one kernel per operation and tensor), foreach
(one kernel per operation) and fused (the update compiled by torch.compile: one kernel per
tensor) against torch.optim's for-loop, foreach and fused implementations (where torch has
them), and lion-pytorch / schedulefree for the optimizers torch lacks. The steps of all
implementations are interleaved round by round, so a busy machine slows all alike; each
ratio is the median over rounds of (this step / the fastest peer's step in the same round).

An optimizer step is memory-bound: it reads and writes a few numbers per parameter and does
little arithmetic on each. The roofline time is bytes moved / memory bandwidth, with the
bandwidth measured here by a large in-place update; "roof" is that time divided by the
measured one.
Then: optimizer state bytes per parameter byte, and the matrix-aware optimizers.
"""

import argparse
import importlib
import statistics
import time

import torch
from torch import nn

import course_lib.optim as co
from course_lib.memory import optimizer_state_bytes, state_bytes_per_parameter_byte

# tensors of the parameter's size read + written by one step (the compulsory traffic:
# param, grad and state each touched once; a fused kernel can do no better)
TENSORS_MOVED = {
    "SGD": 2 + 1,  # read p, g; write p
    "SGD momentum": 3 + 2,  # read p, g, b; write p, b
    "Adagrad": 3 + 2,  # p, g, sum -> p, sum
    "RMSprop": 3 + 2,  # p, g, v -> p, v
    "Adam": 4 + 3,  # p, g, m, v -> p, m, v
    "AdamW": 4 + 3,
    "Adafactor": 2 + 1,  # p, g -> p (row and column statistics are negligible)
    "Muon": 3 + 2,  # p, g, b -> p, b (plus the Newton-Schulz matmuls, compute-bound)
    "Lion": 3 + 2,  # p, g, m -> p, m
    "AdamWScheduleFree": 4 + 3,  # y, g, z, v -> y, z, v
}


def peers(name):
    """The reference implementations of ``name``: label -> factory(params)."""
    if name == "Lion":
        try:
            lion = importlib.import_module("lion_pytorch").Lion
        except ImportError:
            return {}
        return {"lion-pytorch": lambda ps: lion(ps, lr=1e-4, weight_decay=0.1)}
    if name == "AdamWScheduleFree":
        try:
            sf = importlib.import_module("schedulefree").AdamWScheduleFree
        except ImportError:
            return {}
        return {"schedulefree": lambda ps: _train(sf(ps))}
    cls, kwargs = getattr(torch.optim, name.split()[0]), OPTIMIZERS[name][1]
    out = {
        "torch for-loop": lambda ps: cls(ps, foreach=False, **kwargs),
        "torch foreach": lambda ps: cls(ps, foreach=True, **kwargs),
    }
    if "fused" in cls.__init__.__code__.co_varnames:
        out["torch fused"] = lambda ps: cls(ps, fused=True, **kwargs)
    if name == "Muon":  # torch.optim.Muon has one implementation
        out = {"torch": lambda ps: cls(ps, **kwargs)}
    return out


def _train(optimizer):
    """Schedule-free optimizers step in train mode."""
    if hasattr(optimizer, "train"):
        optimizer.train()
    return optimizer


# name -> (course_lib class, hyperparameters shared with the peers)
OPTIMIZERS = {
    "SGD": (co.SGD, dict(lr=1e-3)),
    "SGD momentum": (co.SGD, dict(lr=1e-3, momentum=0.9)),
    "Adagrad": (co.Adagrad, dict()),
    "RMSprop": (co.RMSprop, dict()),
    "Adam": (co.Adam, dict()),
    "AdamW": (co.AdamW, dict()),
    "Adafactor": (co.Adafactor, dict()),
    "Muon": (co.Muon, dict()),
    "Lion": (co.Lion, dict(lr=1e-4, weight_decay=0.1)),
    "AdamWScheduleFree": (co.AdamWScheduleFree, dict()),
}


def ours(name):
    cls, kwargs = OPTIMIZERS[name]
    if not cls.supports_foreach:  # Adafactor, Muon: eager is their only unfused path
        return {
            "course eager": lambda ps: cls(ps, **kwargs),
            "course fused": lambda ps: cls(ps, fused=True, **kwargs),
        }
    out = {"course eager": lambda ps: cls(ps, foreach=False, **kwargs)}
    out["course foreach"] = lambda ps: cls(ps, **kwargs)
    out["course fused"] = lambda ps: cls(ps, fused=True, **kwargs)
    return out


def mlp(device):
    """About 10M parameters in 8 tensors: 1000 -> 2000 -> 2000 -> 2000 -> 10."""
    sizes = [1000, 2000, 2000, 2000, 10]
    layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return nn.Sequential(*layers).to(device)


def copies_with_grads(model, n, matrices_only=False):
    """n independent parameter lists equal to the model's, each with the same gradients."""
    tensors = [p for p in model.parameters() if p.ndim == 2 or not matrices_only]
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen).to(p.device) for p in tensors]
    copies = []
    for _ in range(n):
        params = [p.detach().clone().requires_grad_() for p in tensors]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        copies.append(params)
    return copies


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_step(optimizer, device):
    synchronize(device)
    start = time.perf_counter()
    optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def step_times(optimizers, rounds, device, warmup=3):
    """Seconds of each step() round by round (alternating the order), and of each first step
    (for the fused course_lib optimizers, that one includes the compilation)."""
    first = [timed_step(opt, device) for opt in optimizers]
    for opt in optimizers:
        for _ in range(warmup):
            opt.step()
    times = [[] for _ in optimizers]
    for r in range(rounds):
        order = range(len(optimizers)) if r % 2 == 0 else reversed(range(len(optimizers)))
        for i in order:
            times[i].append(timed_step(optimizers[i], device))
    return first, times


def ratio(ours, theirs):
    """Median over rounds of the per-round ratio: steps timed side by side share the load."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def bandwidth(device, mib=512):
    """Bytes per second of a large in-place update x += y (reads x and y, writes x), the best
    of a few: the access pattern of an optimizer step. (A copy into another buffer measures
    less here, as the CPU reads each destination line before writing it.)"""
    x = torch.ones(mib * 2**18, device=device)  # mib MiB of float32
    y = torch.ones_like(x)
    best = min(timed_add(x, y, device) for _ in range(5))
    return 3 * x.numel() * x.element_size() / best


def timed_add(x, y, device):
    synchronize(device)
    start = time.perf_counter()
    x.add_(y, alpha=1e-9)
    synchronize(device)
    return time.perf_counter() - start


def benchmark(model, rounds, device, names):
    """Print ms/step, the ratio to the fastest peer, compile time and fraction of the roofline.

    The bandwidth is measured before the first optimizer and after each one's rounds, and
    the highest is the roofline's: a single measurement taken while the machine was slowed
    for a moment would put steps timed at a faster moment above the roofline.
    """
    bandwidths = [bandwidth(device)]
    rows = []
    for name in names:
        impls = {**ours(name), **peers(name)}
        copies = copies_with_grads(model, len(impls), matrices_only=name == "Muon")
        optimizers = [_train(make(ps)) for make, ps in zip(impls.values(), copies, strict=True)]
        first, times = step_times(optimizers, rounds, device)
        bandwidths.append(bandwidth(device))
        numel = sum(p.numel() for p in copies[0])
        moved = TENSORS_MOVED[name] * numel * copies[0][0].element_size()
        peer_labels = [label for label in impls if not label.startswith("course")]
        peer_times = [times[list(impls).index(label)] for label in peer_labels]
        # no peer installed (lion-pytorch): ratios to course_lib's own fastest instead
        peer_times = peer_times or times
        fastest = [min(t[r] for t in peer_times) for r in range(rounds)]
        for i, label in enumerate(impls):
            ms = statistics.median(times[i]) * 1e3
            rows.append((name, label, ms, ratio(times[i], fastest), first[i], moved))
        del optimizers, copies
    bw = max(bandwidths)
    print(
        f"memory bandwidth (x += y on 512 MiB each, best of 5, {len(bandwidths)} times over the"
        f" run): highest {bw / 1e9:.1f} GB/s, lowest {min(bandwidths) / 1e9:.1f} GB/s"
    )
    print(
        f"{'optimizer':18s} {'implementation':16s} {'ms/step':>8s} {'/ fastest peer':>14s}"
        f" {'first step s':>12s} {'MB/step':>8s} {'roof':>6s}"
    )
    results = {}
    for name, label, ms, r, first_s, moved in rows:
        roof = moved / bw / (ms / 1e3)
        results[(name, label)] = dict(ms=ms, ratio=r, first_s=first_s, roof=roof)
        print(
            f"{name:18s} {label:16s} {ms:8.2f} {r:14.2f} {first_s:12.2f}"
            f" {moved / 1e6:8.1f} {roof:6.2f}"
        )
    return results


def state_memory(model):
    print("\nOptimizer state bytes per parameter byte (MLP, after one step; Muon: below)")
    for name, (cls, kwargs) in OPTIMIZERS.items():
        if name == "Muon":  # its bfloat16 Newton-Schulz on 2000 x 2000 takes minutes here
            continue
        params = copies_with_grads(model, 1)[0]
        opt = _train(cls(params, **kwargs))
        opt.step()
        print(f"{name:22s} {state_bytes_per_parameter_byte(opt):.5f}")
    matrix = torch.zeros(1024, 4096, requires_grad=True)
    matrix.grad = torch.randn(1024, 4096)
    opt = co.Adafactor([matrix])
    opt.step()
    print(f"{'Adafactor 1024x4096':22s} {state_bytes_per_parameter_byte(opt):.5f}")
    lion, adamw = (cls(copies_with_grads(model, 1)[0]) for cls in (co.Lion, co.AdamW))
    lion.step()
    adamw.step()
    print(
        f"Lion state / AdamW state = {optimizer_state_bytes(lion) / optimizer_state_bytes(adamw)}"
    )


def matrix_aware(device, rounds):
    """Muon vs torch.optim.Muon; Muon, SOAP, Shampoo (+ Adam grafting) vs AdamW: step time
    and state bytes, on weight matrices only (Muon accepts nothing else)."""
    shapes = [(256, 256), (256, 1024), (1024, 256)]
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(s, generator=gen).to(device) for s in shapes]

    def params():
        ps = [torch.zeros(s, device=device, requires_grad=True) for s in shapes]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        return ps

    print(
        f"\nMatrix-aware, weights {shapes}, {rounds} rounds (SOAP, Shampoo: roots every 10 steps)"
    )
    optimizers = {
        "AdamW": co.AdamW(params()),
        "Muon": co.Muon(params()),
        "Muon fused": co.Muon(params(), fused=True),
        "torch Muon": torch.optim.Muon(params()),
        "SOAP": co.SOAP(params()),
        "Shampoo+graft": co.Shampoo(params(), graft="adam", update_freq=10),
    }
    times = dict(
        zip(optimizers, step_times(list(optimizers.values()), rounds, device)[1], strict=True)
    )
    for name in ("Muon", "Muon fused"):
        per_round = sorted(a / b for a, b in zip(times[name], times["torch Muon"], strict=True))
        quartiles = per_round[len(per_round) // 4], per_round[3 * len(per_round) // 4]
        print(
            f"{name} / torch.optim.Muon step time = {statistics.median(per_round):.3f}"
            f" (quartiles over rounds {quartiles[0]:.3f}-{quartiles[1]:.3f})"
        )
    adamw_bytes = optimizer_state_bytes(optimizers["AdamW"])
    for name in ("Muon", "SOAP", "Shampoo+graft"):
        print(
            f"{name:14s} {statistics.median(times[name]) * 1e3:8.2f} ms/step,"
            f" / AdamW = {ratio(times[name], times['AdamW']):5.2f};"
            f" state {optimizer_state_bytes(optimizers[name]) / 2**20:6.2f} MiB,"
            f" / AdamW = {optimizer_state_bytes(optimizers[name]) / adamw_bytes:.2f}"
        )
    print(
        f"{'AdamW':14s} {statistics.median(times['AdamW']) * 1e3:8.2f} ms/step,"
        f" state {adamw_bytes / 2**20:6.2f} MiB"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--only",
        nargs="*",
        # Muon's bfloat16 Newton-Schulz on the MLP's 2000 x 2000 matrices takes minutes a step
        # on a CPU without bfloat16 units: it is compared on smaller matrices at the end
        default=[name for name in OPTIMIZERS if name != "Muon" or torch.cuda.is_available()],
        help="optimizer names",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    model = mlp(device)
    n = sum(p.numel() for p in model.parameters())
    print(f"MLP: {n / 1e6:.2f}M parameters in {len(list(model.parameters()))} tensors (Muon: the")
    print("matrices only); first step s = the first step, with the compile for course fused")
    benchmark(model, 5 if args.quick else 21, device, args.only)
    state_memory(mlp(device))
    matrix_aware(device, rounds=5 if args.quick else 15)


if __name__ == "__main__":
    main()
