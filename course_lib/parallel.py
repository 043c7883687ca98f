"""Independent pieces of work in forked processes, one per core: for a notebook's loops.

A chapter's explorer frames and its seeded runs do not depend on one another, so
:func:`map_forked` computes them in forked children, which inherit the notebook's state
(functions defined in cells, data, the items themselves) without pickling it; only the
results cross between processes. Where forking is unsafe (not Linux, or after CUDA has
started) the work runs here, one item after another, with the same results. Example
(chapter 9: the runs of a learning-rate grid)::

    finals = map_forked(lambda lr: run("AdamW", lr, seed=0), [1e-3, 3e-3, 1e-2])
"""

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

_WORK = None  # (function, items) being mapped, inherited (not pickled) by the children


def _call(index: int):
    function, items = _WORK
    return function(items[index])


def _one_thread():
    if "torch" in sys.modules:  # a forked child must not reuse the parent's thread pool
        sys.modules["torch"].set_num_threads(1)


def can_fork() -> bool:
    """Linux, and torch has not started CUDA (a forked child cannot use it)."""
    torch = sys.modules.get("torch")
    return sys.platform == "linux" and not (torch and torch.cuda.is_initialized())


def map_forked(function: Callable, items: Iterable, processes: int | None = None) -> list:
    """``[function(item) for item in items]``, in ``processes`` forked processes if allowed.

    ``processes`` defaults to the cores this process may use; the results must pickle.
    """
    global _WORK
    items = list(items)
    if processes is None:
        processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    processes = min(processes, len(items))
    if processes < 2 or not can_fork():
        return [function(item) for item in items]
    _WORK = function, items
    try:
        with ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("fork"), initializer=_one_thread
        ) as pool:
            return list(pool.map(_call, range(len(items))))
    finally:
        _WORK = None
