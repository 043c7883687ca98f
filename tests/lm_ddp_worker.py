"""Run by tests/test_lm_ddp.py under torchrun: course_lib.lm.train_lm, unchanged, with DDP.

torchrun --standalone --nproc_per_node=2 tests/lm_ddp_worker.py OUT.pt
"""

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from course_lib import lm

STEPS, BATCH = 6, 8


def setup():
    """The same corpus, model and optimizers in every process and in the reference."""
    corpus = lm.markov_corpus(train_tokens=4_000, val_tokens=400, test_tokens=10)
    torch.manual_seed(0)
    # float64: Adam-type steps divide by sqrt(v), which would blow float32 reduction-order
    # differences in near-zero gradients up to visible parameter differences
    model = lm.TinyGPT(seq_len=8, width=16, layers=1, heads=2).double()
    return corpus, model


def run(name, wrap=lambda m: m):
    corpus, model = setup()
    ddp_or_plain = wrap(model)
    optimizers = lm.make_optimizers(name, model, lr=1e-2)
    history = lm.train_lm(
        ddp_or_plain,
        optimizers,
        corpus,
        steps=STEPS,
        batch_size=BATCH,
        warmup_steps=2,
        eval_every=3,
    )
    return [p.detach().clone() for p in model.parameters()], history.val_loss


if __name__ == "__main__":
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        results = {name: run(name, DistributedDataParallel) for name in ("AdamW", "Muon")}
        if dist.get_rank() == 0:
            torch.save(results, sys.argv[1])
    finally:
        dist.destroy_process_group()
