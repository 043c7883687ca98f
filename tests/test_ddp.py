"""course_lib's AdamW and Lion run unchanged under DistributedDataParallel.

Two processes on 127.0.0.1 (gloo backend, started by torch.multiprocessing, bounded by a
timeout) each train on half of every batch; DDP averages their gradients, so the result must
equal one process training on the full batches, up to float32 reduction order.
"""

import datetime
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import course_lib.optim as co

WORLD_SIZE = 2
STEPS = 15
TIMEOUT_S = 60
# "fork" starts the workers with torch already imported; "spawn" would re-import torch in
# each of them, which costs 10-20 s on a busy 2-core machine. The workers run with one
# thread, so forking after the parent has used its OpenMP pool is safe.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
OPTIMIZERS = {
    "AdamW": lambda params: co.AdamW(params, lr=1e-2, weight_decay=0.1),
    "Lion": lambda params: co.Lion(params, lr=1e-3, weight_decay=0.1),
}


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def make_batches():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, 32, 8, generator=gen)
    y = x[..., :1] * 2 - x[..., 1:2] + 0.1 * torch.randn(STEPS, 32, 1, generator=gen)
    return x, y


def train(model, optimizer, batches):
    for x, y in zip(*batches, strict=True):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def worker(rank, port, out_path):
    """One of the two DDP processes: trains on its half of every batch."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=TIMEOUT_S),
    )
    try:
        x, y = make_batches()
        shard = (x.chunk(WORLD_SIZE, dim=1)[rank], y.chunk(WORLD_SIZE, dim=1)[rank])
        results = {}
        for name, make_optimizer in OPTIMIZERS.items():
            model = DistributedDataParallel(make_model())
            train(model, make_optimizer(model.parameters()), shard)
            results[name] = [p.detach().clone() for p in model.module.parameters()]
        if rank == 0:
            torch.save(results, out_path)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_matches_single_process_full_batch(tmp_path):
    # the single-process reference first: forked workers then inherit everything it imported
    expected, initial = {}, [p.detach().clone() for p in make_model().parameters()]
    for name, make_optimizer in OPTIMIZERS.items():
        model = make_model()
        train(model, make_optimizer(model.parameters()), make_batches())
        expected[name] = [p.detach() for p in model.parameters()]

    out_path = os.fspath(tmp_path / "ddp_params.pt")
    context = mp.start_processes(
        worker,
        args=(free_port(), out_path),
        nprocs=WORLD_SIZE,
        join=False,
        start_method=START_METHOD,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=0.2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the DDP processes did not finish within {TIMEOUT_S} s")
    got = torch.load(out_path)

    for name in OPTIMIZERS:
        for p_ddp, p, p0 in zip(got[name], expected[name], initial, strict=True):
            torch.testing.assert_close(p_ddp, p, rtol=1e-5, atol=1e-6)
            assert not torch.equal(p_ddp, p0)  # training moved the parameters
