"""course_lib's AdamW and Lion run unchanged under DistributedDataParallel.

Two processes (gloo backend, meeting through a file store, started by torch.multiprocessing,
bounded by timeouts) each train on half of every batch; DDP averages their gradients, so the
result must equal one process training on the full batches, up to float32 reduction order.

The workers are never forked from the pytest process: its OpenMP and other thread pools are
live after the earlier tests, and a child forked from a process with running threads can wait
forever on a lock that one of those threads held at the moment of the fork (the child has no
such thread to release it); that hang appeared only on a busy machine. They are forked from
multiprocessing's fork server instead, a fresh single-threaded process that imported torch
once. Starting it gets its own, generous time limit, apart from the training's.
"""

import datetime
import os
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import course_lib.optim as co

WORLD_SIZE = 2
STEPS = 15
# Generous limits: on a 2-core machine kept busy by other processes, importing torch in two
# fresh processes and meeting took over a minute; the training itself takes a second alone.
STARTUP_TIMEOUT_S = 300  # import, then meet in init_process_group
TIMEOUT_S = 120  # train, once both have met
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


def worker(rank, out_path):
    """One of the two DDP processes: trains on its half of every batch."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=Path(f"{out_path}.store").as_uri(),  # a file: no port to race for
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=TIMEOUT_S),
    )
    Path(f"{out_path}.met{rank}").touch()
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


def test_ddp_matches_single_process_full_batch(tmp_path):
    expected, initial = {}, [p.detach().clone() for p in make_model().parameters()]
    for name, make_optimizer in OPTIMIZERS.items():
        model = make_model()
        train(model, make_optimizer(model.parameters()), make_batches())
        expected[name] = [p.detach() for p in model.parameters()]

    out_path = os.fspath(tmp_path / "ddp_params.pt")
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    mp.set_forkserver_preload(["torch", "torch.distributed", __name__])
    context = mp.start_processes(
        worker, args=(out_path,), nprocs=WORLD_SIZE, join=False, start_method=method
    )
    met = [Path(f"{out_path}.met{rank}") for rank in range(WORLD_SIZE)]
    deadline, what = time.monotonic() + STARTUP_TIMEOUT_S, f"meet within {STARTUP_TIMEOUT_S} s"
    while not context.join(timeout=0.2):
        if what.startswith("meet") and all(p.exists() for p in met):
            deadline, what = time.monotonic() + TIMEOUT_S, f"finish training within {TIMEOUT_S} s"
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the DDP processes did not {what}")
    got = torch.load(out_path)

    for name in OPTIMIZERS:
        for p_ddp, p, p0 in zip(got[name], expected[name], initial, strict=True):
            torch.testing.assert_close(p_ddp, p, rtol=1e-5, atol=1e-6)
            assert not torch.equal(p_ddp, p0)  # training moved the parameters
