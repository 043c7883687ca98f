"""The chapter's training function, course_lib.lm.train_lm, runs unchanged under torchrun.

The test starts ``torchrun --standalone --nproc_per_node=2`` (gloo on this CPU) on
tests/lm_ddp_worker.py: each process trains on half of every batch and DDP averages the
gradients, so the parameters must equal one process training on the full batches, up to
float64 reduction order (the worker trains in float64). torchrun starts fresh interpreters
(no fork of this process and its thread pools); the run is bounded by a timeout generous
enough for a busy machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import lm_ddp_worker as worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def test_train_lm_under_torchrun_matches_one_process_on_full_batches(tmp_path):
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*command, str(ROOT / "tests/lm_ddp_worker.py"), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = torch.load(out)
    for name in ("AdamW", "Muon"):
        expected, val_loss = worker.run(name)
        initial = [p.detach() for p in worker.setup()[1].parameters()]
        ddp_params, ddp_val_loss = got[name]
        for p_ddp, p, p0 in zip(ddp_params, expected, initial, strict=True):
            torch.testing.assert_close(p_ddp, p, rtol=1e-7, atol=1e-10)
            assert not torch.equal(p_ddp, p0)  # training moved every parameter
        torch.testing.assert_close(
            torch.tensor(ddp_val_loss), torch.tensor(val_loss), rtol=1e-5, atol=1e-6
        )
