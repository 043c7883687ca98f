"""What Newton's method costs as the number of parameters n grows, and the ways out.

    .venv/bin/python benchmarks/second_order.py [--sizes 64 128 ... 2048] [--history 10]
                                                [--threads 1]

For a smooth convex f(x) = x.A.x / 2 + sum softplus(x) with a dense n x n A (so one gradient
costs O(n^2)), it measures and prints, for each n:

* building the Hessian by double backward (n backward passes: O(n^3)),
* solving the Newton system (H + 0 I) d = -g by LU (O(n^3)),
* Newton-CG: the same direction from conjugate gradient on Hessian-vector products only
  (O(n^2) per product, never forming H), with the number of products it needed,
* memory: the Hessian (n^2 numbers) vs the s, y history that L-BFGS keeps (2 m n numbers),
  read from the tensors themselves,

then the exponents p of fitted power laws time ~ n^p (least squares on log-log, over the
three largest sizes, where fixed per-call overheads no longer dominate). Times are the best
of up to three runs, on one thread by default so that the shared machine disturbs them less.
"""

import argparse
import math
import time

import numpy as np
import torch

from course_lib.optim.lbfgs import LBFGS
from course_lib.second_order import conjugate_gradient, gradient, hessian, hvp_operator


def make_problem(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=gen, dtype=torch.float64)
    A = M @ M.T / n + torch.eye(n, dtype=torch.float64)  # eigenvalues in about [1, 5]

    def f(x):
        return 0.5 * x @ (A @ x) + torch.nn.functional.softplus(x).sum()

    x = torch.randn(n, generator=gen, dtype=torch.float64)
    return f, x


def best_time(fn, min_total=0.3, max_runs=3):
    """(best wall time of up to max_runs calls, last result)."""
    times, total = [], 0.0
    while len(times) < max_runs and (total < min_total or not times):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        total += times[-1]
    return min(times), result


def newton_cg(f, x):
    """Newton direction by CG on HVPs; returns (direction, number of HVPs)."""
    g, matvec = hvp_operator(f, x)
    calls = [0]

    def counted(v):
        calls[0] += 1
        return matvec(v)

    return conjugate_gradient(counted, -g, tol=1e-10).detach(), calls[0]


def lbfgs_history_bytes(f, x, history):
    """Bytes of the s and y vectors L-BFGS holds once its history is full."""
    p = x.clone().requires_grad_(True)
    opt = LBFGS([p], history_size=history, max_iter=history + 5, tolerance_grad=0.0,
                tolerance_change=0.0, line_search_fn="strong_wolfe")  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = f(p)
        loss.backward()
        return loss

    opt.step(closure)
    state = opt.state[p]
    return sum(t.nbytes for t in state["s"] + state["y"]), len(state["s"])


def fitted_exponent(sizes, values):
    """Slope of log(value) vs log(n) by least squares over the three largest sizes."""
    return float(np.polyfit(np.log(sizes[-3:]), np.log(values[-3:]), 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--history", type=int, default=10, help="L-BFGS history m")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float64")
    header = (
        f"{'n':>6} {'Hessian s':>10} {'solve s':>9} {'Newton-CG s':>11} {'HVPs':>5}"
        f" {'|d_cg-d|/|d|':>12} {'H MiB':>8} {'L-BFGS MiB':>10} {'H/L-BFGS':>8}"
    )
    print(header)
    rows = []
    f, x = make_problem(32)  # warm up: first calls pay one-time costs
    hessian(f, x), newton_cg(f, x), lbfgs_history_bytes(f, x, 2)
    for n in args.sizes:
        f, x = make_problem(n)
        g = gradient(f, x)
        t_hessian, H = best_time(lambda f=f, x=x: hessian(f, x))
        t_solve, d = best_time(lambda H=H, g=g: torch.linalg.solve(H, -g))
        t_cg, (d_cg, n_hvp) = best_time(lambda f=f, x=x: newton_cg(f, x))
        error = ((d_cg - d).norm() / d.norm()).item()
        h_bytes = H.nbytes
        l_bytes, m = lbfgs_history_bytes(f, x, args.history)
        assert h_bytes == n * n * 8 and l_bytes == 2 * m * n * 8
        rows.append((n, t_hessian, t_solve, t_cg, h_bytes, l_bytes))
        print(
            f"{n:>6} {t_hessian:>10.4f} {t_solve:>9.5f} {t_cg:>11.4f} {n_hvp:>5}"
            f" {error:>12.1e} {h_bytes / 2**20:>8.3f} {l_bytes / 2**20:>10.3f}"
            f" {h_bytes / l_bytes:>8.1f}",
            flush=True,
        )
    sizes = [r[0] for r in rows]
    print(f"\nfitted exponents, time ~ n^p (least squares over n = {sizes[-3:]}):")
    for name, column, theory in [
        ("Hessian build (n backward passes)", 1, "3 (n passes x O(n^2))"),
        ("Newton solve (LU)", 2, "3"),
        ("Newton-CG (HVPs only)", 3, "2 (O(n^2) per HVP, iterations ~ constant)"),
        ("Hessian memory", 4, "2"),
        ("L-BFGS memory", 5, "1"),
    ]:
        p = fitted_exponent(sizes, [r[column] for r in rows])
        print(f"  {name:<34} p = {p:5.2f}   (theory: {theory})")
    largest = rows[-1]
    print(
        f"\nat n = {largest[0]}: Hessian {largest[4] / 2**20:.1f} MiB vs L-BFGS (m = "
        f"{args.history}) {largest[5] / 2**20:.2f} MiB; Newton-CG "
        f"{(largest[1] + largest[2]) / largest[3]:.0f}x faster than build + solve"
    )
    assert all(math.isfinite(v) for r in rows for v in r)


if __name__ == "__main__":
    main()
