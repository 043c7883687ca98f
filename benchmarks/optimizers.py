"""Step time of course_lib.optim vs torch.optim, and optimizer state bytes per parameter byte.

Run:  .venv/bin/python benchmarks/optimizers.py [--quick]

Two models: an MLP with about 10M parameters in a few large tensors, and a stack of 100
small linear layers (200 parameter tensors), where Python overhead per tensor dominates.
Each optimizer gets its own copy of the parameters and the same fixed gradients; steps of
the implementations are interleaved round by round (so a busy machine slows all alike) and
the ratio of each round is taken; its median over rounds is printed. The ratios are
course_lib / torch.optim, against
torch's ``foreach=True`` implementation and against torch's default on this device (on a
CPU torch's default is its per-tensor for-loop; on CUDA it is foreach).
"""

import argparse
import statistics
import time

import torch
from torch import nn

import course_lib.optim as co
from course_lib.memory import optimizer_state_bytes, state_bytes_per_parameter_byte

# name, course_lib class, torch.optim class (None: no torch counterpart), hyperparameters
OPTIMIZERS = [
    ("SGD", co.SGD, torch.optim.SGD, dict(lr=1e-3)),
    ("SGD momentum", co.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9)),
    ("SGD nesterov", co.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9, nesterov=True)),
    ("Adagrad", co.Adagrad, torch.optim.Adagrad, dict()),
    ("RMSprop", co.RMSprop, torch.optim.RMSprop, dict()),
    ("RMSprop centered+mom", co.RMSprop, torch.optim.RMSprop, dict(centered=True, momentum=0.9)),
    ("Adam", co.Adam, torch.optim.Adam, dict()),
    ("Adam amsgrad", co.Adam, torch.optim.Adam, dict(amsgrad=True)),
    ("AdamW", co.AdamW, torch.optim.AdamW, dict()),
    ("Adafactor", co.Adafactor, torch.optim.Adafactor, dict()),
    ("Lion", co.Lion, None, dict(weight_decay=0.1)),
]


def mlp(device):
    """About 10M parameters in 8 tensors: 1000 -> 2000 -> 2000 -> 2000 -> 10."""
    sizes = [1000, 2000, 2000, 2000, 10]
    layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return nn.Sequential(*layers).to(device)


def many_small(device):
    """200 parameter tensors: 100 linear layers 64 -> 64."""
    return nn.Sequential(*[nn.Linear(64, 64) for _ in range(100)]).to(device)


def copies_with_grads(model, n):
    """n independent parameter lists equal to the model's, each with the same gradients."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen).to(p.device) for p in model.parameters()]
    copies = []
    for _ in range(n):
        params = [p.detach().clone().requires_grad_() for p in model.parameters()]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        copies.append(params)
    return copies


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_times(optimizers, rounds, device, warmup=3):
    """Seconds per step() of each optimizer, round by round (alternating the order)."""
    for opt in optimizers:
        for _ in range(warmup):
            opt.step()
    times = [[] for _ in optimizers]
    for r in range(rounds):
        order = range(len(optimizers)) if r % 2 == 0 else reversed(range(len(optimizers)))
        for i in order:
            synchronize(device)
            start = time.perf_counter()
            optimizers[i].step()
            synchronize(device)
            times[i].append(time.perf_counter() - start)
    return times


def ratio(ours, theirs):
    """Median over rounds of the per-round ratio: steps timed side by side share the load."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def benchmark(model_name, model, rounds, device):
    n_tensors = len(list(model.parameters()))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"\n{model_name}: {n_params / 1e6:.2f}M parameters in {n_tensors} tensors, {rounds} rounds"
    )
    print("median ms per step; ratio = median over rounds of course_lib / torch.optim")
    print(
        f"{'optimizer':22s} {'course':>8s} {'torch foreach':>14s} {'ratio':>6s}"
        f" {'torch default':>14s} {'ratio':>6s}"
    )
    results = {}
    for name, ours, theirs, kwargs in OPTIMIZERS:
        a, b, c = copies_with_grads(model, 3)
        if theirs is None:  # Lion: compare with AdamW, the optimizer it replaces
            optimizers = [ours(a, **kwargs), co.AdamW(b), torch.optim.AdamW(c, foreach=True)]
        else:
            optimizers = [ours(a, **kwargs), theirs(b, foreach=True, **kwargs), theirs(c, **kwargs)]
        t_ours, t_b, t_c = step_times(optimizers, rounds, device)
        ms = [statistics.median(t) * 1e3 for t in (t_ours, t_b, t_c)]
        if theirs is None:
            results[name] = dict(
                vs_course_adamw=ratio(t_ours, t_b), vs_torch_adamw=ratio(t_ours, t_c)
            )
            r = results[name]
            print(
                f"{name:22s} {ms[0]:8.3f}   Lion / course AdamW ({ms[1]:.3f} ms) ="
                f" {r['vs_course_adamw']:.2f}; Lion / torch AdamW foreach ({ms[2]:.3f} ms) ="
                f" {r['vs_torch_adamw']:.2f}"
            )
        else:
            results[name] = dict(vs_foreach=ratio(t_ours, t_b), vs_default=ratio(t_ours, t_c))
            print(
                f"{name:22s} {ms[0]:8.3f} {ms[1]:14.3f} {results[name]['vs_foreach']:6.2f}"
                f" {ms[2]:14.3f} {results[name]['vs_default']:6.2f}"
            )
        del optimizers, a, b, c
    return results


def state_memory(model):
    print("\nOptimizer state bytes per parameter byte (MLP, after one step)")
    for name, ours, _, kwargs in OPTIMIZERS:
        params = copies_with_grads(model, 1)[0]
        opt = ours(params, **kwargs)
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
        "torch Muon": torch.optim.Muon(params()),
        "SOAP": co.SOAP(params()),
        "Shampoo+graft": co.Shampoo(params(), graft="adam", update_freq=10),
    }
    times = dict(
        zip(optimizers, step_times(list(optimizers.values()), rounds, device), strict=True)
    )
    print(f"Muon / torch.optim.Muon step time = {ratio(times['Muon'], times['torch Muon']):.2f}")
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
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    benchmark("MLP", mlp(device), rounds=5 if args.quick else 21, device=device)
    benchmark("Many small tensors", many_small(device), 21 if args.quick else 101, device)
    state_memory(mlp(device))
    matrix_aware(device, rounds=5 if args.quick else 15)


if __name__ == "__main__":
    main()
