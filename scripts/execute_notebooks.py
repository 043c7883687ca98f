"""Execute notebooks in place, keep their outputs and widget state, and print each run time.

    python scripts/execute_notebooks.py notebooks/01_gradients.ipynb [more.ipynb ...]

Chapters are committed executed: the website renders these stored outputs and nbval
compares against them. Widget state is stored so the site shows each explorer's last view.

Why the kernel client below polls in short slices: nbclient waits for a cell's reply with
one asyncio ZeroMQ poll that lasts the whole cell timeout. Under load that poll sometimes
misses the wake-up of a reply that has already arrived (ZeroMQ signals readiness on an
edge-triggered descriptor), and only finds it when the timeout fires and pyzmq looks once
more: the cell then "finishes normally" a full timeout late (measured with
benchmarks/notebook_stalls.py: the kernel's own timestamps show the reply sent seconds after
the cell started). Polling for at most a second at a time bounds such a miss to a second.
"""

import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from nbclient import NotebookClient
from traitlets import Type

POLL_SLICE_S = 1.0
CELL_TIMEOUT_S = 180  # the slowest cell of any chapter takes well under a minute alone


class ShortPollChannel(AsyncZMQSocketChannel):
    """A kernel channel whose ``get_msg(timeout)`` re-polls every POLL_SLICE_S seconds."""

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await super().get_msg(timeout=min(POLL_SLICE_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class ShortPollClient(AsyncKernelClient):
    shell_channel_class = Type(ShortPollChannel)
    iopub_channel_class = Type(ShortPollChannel)


def notebook_client(
    notebook, path: Path, timeout=CELL_TIMEOUT_S, client_class=ShortPollClient, **options
):
    """An nbclient NotebookClient for ``notebook`` (stored at ``path``) on a python3 kernel."""
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    manager = AsyncKernelManager(kernel_name="python3", client_factory=client_class)
    return NotebookClient(
        notebook,
        km=manager,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        **options,
    )


def execute(path: Path, timeout: int = CELL_TIMEOUT_S) -> float:
    notebook = nbformat.read(path, as_version=4)
    client = notebook_client(notebook, path, timeout, store_widget_state=True)
    start = time.perf_counter()
    client.execute(cleanup_kc=True)  # nbclient leaves a kernel it did not start running
    seconds = time.perf_counter() - start
    nbformat.write(notebook, path)
    return seconds


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {execute(Path(name)):.1f} s", flush=True)
