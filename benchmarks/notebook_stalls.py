"""Execute notebooks repeatedly with the other core busy and count execution stalls.

    python benchmarks/notebook_stalls.py --runs 20 --timeout 120 notebooks/04_sgd_momentum.ipynb

``--no-hog`` skips the busy-loop process, for a machine that other work already loads; the
load average is printed with every run either way.

Each run executes the notebook twice, once with nbclient's own kernel client and once with
the short-poll client of scripts/execute_notebooks.py, interleaved so both see the same load.

A stall is a cell whose execution, as seen by the client, took much longer than the kernel
says it did: the kernel stamps each message (``iopub.execute_input`` when it starts the cell,
``shell.execute_reply`` when it replies), and nbclient records them in the cell's metadata.
For every stall the script prints the cell, the kernel's time and the client's time, so
that a lost or late message shows up as the difference. Nothing is written back.
"""

import argparse
import copy
import multiprocessing
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from execute_notebooks import ShortPollClient, notebook_client  # noqa: E402

CLIENTS = {"nbclient": AsyncKernelClient, "short-poll": ShortPollClient}


def busy(stop):
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def stamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def execute_once(original, path: Path, timeout: int, client_class):
    notebook = copy.deepcopy(original)
    client_seconds = {}
    started = {}

    def before(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def after(cell, cell_index, **_):
        client_seconds[cell_index] = time.perf_counter() - started[cell_index]

    client = notebook_client(
        notebook, path, timeout, client_class, on_cell_execute=before, on_cell_executed=after
    )
    start = time.perf_counter()
    client.execute(cleanup_kc=True)  # else every run leaves its kernel running
    total = time.perf_counter() - start
    stalls = []
    for index, cell in enumerate(notebook.cells):
        times = cell.get("metadata", {}).get("execution", {})
        if index not in client_seconds or "shell.execute_reply" not in times:
            continue
        kernel = stamp(times["shell.execute_reply"]) - stamp(times["iopub.execute_input"])
        if client_seconds[index] - kernel > 3.0:
            stalls.append((index, kernel, client_seconds[index]))
    return total, stalls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--no-hog", action="store_true", help="the machine is loaded already")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    stop = multiprocessing.Event()
    hog = multiprocessing.Process(target=busy, args=(stop,), daemon=True)
    if not args.no_hog:
        hog.start()
    try:
        originals = {path: nbformat.read(path, as_version=4) for path in args.notebooks}
        stalled = {(path, name): 0 for path in args.notebooks for name in CLIENTS}
        for run in range(args.runs):  # chapters and clients interleaved: all see the same load
            for path, original in originals.items():
                for name, client_class in CLIENTS.items():
                    total, stalls = execute_once(original, path, args.timeout, client_class)
                    stalled[path, name] += bool(stalls)
                    load = os.getloadavg()[0]
                    print(f"{path.name} run {run + 1} {name}: {total:.1f} s, load {load:.1f}")
                    for index, kernel, client in stalls:
                        print(f"  STALL cell {index}: kernel {kernel:.1f} s, client {client:.1f} s")
        for (path, name), count in stalled.items():
            print(f"{path.name} {name}: {count} stalled run(s) in {args.runs}")
    finally:
        stop.set()
        if hog.is_alive():
            hog.join()


if __name__ == "__main__":
    main()
