"""Run cells of untrusted code in a separate, limited process and survive whatever it does.

A ``Kernel`` is one ``worker`` process in its own session (process group), confined as
``isolation`` describes (sandbox, scrubbed environment, own user), with memory, process and
file-size limits, stdin/stdout/stderr on /dev/null and two private pipes: commands in,
replies out.
``Kernel.run`` sends one cell and waits at most ``timeout`` seconds for the reply. If none
comes, it interrupts the worker (SIGINT raises ``KeyboardInterrupt`` in an ordinary loop) and
waits a short grace period; if still none, it kills the whole process group. A worker that
exits (``os._exit``, a segfault, the memory limit) is seen as the end of its reply pipe.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .isolation import confinement

REPLY_BYTES = 1_000_000  # a reply longer than this is not from our worker
INTERRUPT_GRACE_S = 1.0
STARTUP_TIMEOUT_S = 180.0  # the worker imports torch before it is ready


@dataclass
class CellResult:
    """What happened to one cell: ``ok``, ``error``, ``timeout``, ``died`` or ``not_run``."""

    status: str
    ename: str = ""
    evalue: str = ""
    traceback: str = ""
    output: str = ""
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def _popen(arguments: list, **options) -> subprocess.Popen:
    confined = confinement()
    return subprocess.Popen(
        [*confined.prefix, sys.executable, "-m", "course_lib.grading.worker", *map(str, arguments)],
        env=confined.environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **options,
    )


class ForkServer:
    """A process that imported the slow modules once and forks a fresh worker on request.

    Starting a worker then costs a fork (milliseconds) instead of importing torch (seconds).
    The server runs only trusted code; each worker limits itself after the fork.
    """

    def __init__(self, preload: tuple[str, ...]):
        ours, theirs = socket.socketpair()
        self.process = _popen(
            ["--server", theirs.fileno(), ",".join(preload)],
            cwd=confinement().scratch,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self.socket = ours
        self.socket.settimeout(STARTUP_TIMEOUT_S)
        self.lock = threading.Lock()

    def spawn(self, workdir: Path, fds: tuple[int, int], limits: dict):
        """The pid of a new worker on these pipe ends, or None if the server is gone."""
        return self._ask({"cwd": str(workdir), **limits}, fds)

    def signal(self, pid: int, number: int, group: bool) -> None:
        """Signal a worker (and with ``group``, everything it started) through the server.

        The pid is the server's: inside the sandbox's PID namespace it names another process
        outside, so the grader never signals it directly.
        """
        self._ask({"signal": int(number), "pid": pid, "group": group}, ())

    def _ask(self, request: dict, fds) -> int | None:
        with self.lock:
            try:
                socket.send_fds(self.socket, [json.dumps(request).encode()], list(fds))
                answer = b""
                while not answer.endswith(b"\n"):
                    chunk = self.socket.recv(64)
                    if not chunk:
                        return None
                    answer += chunk
                return int(answer)
            except (OSError, ValueError):
                return None

    def close(self) -> None:
        self.socket.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


_servers: dict[tuple[str, ...], ForkServer] = {}
_servers_lock = threading.Lock()


def fork_server(preload: tuple[str, ...]) -> ForkServer:
    """The shared fork server for these preloaded modules, restarted if it has died."""
    with _servers_lock:
        server = _servers.get(preload)
        if server is None or server.process.poll() is not None:
            if server is not None:
                server.close()
            server = _servers[preload] = ForkServer(preload)
        return server


@atexit.register
def _close_servers() -> None:
    for server in _servers.values():
        server.close()
    _servers.clear()


class Kernel:
    """One worker process that runs cells in order, sharing one namespace.

    The worker is forked by the fork server for ``preload``; if that fails, it is started
    directly (slower: it imports the preloaded modules itself).
    """

    def __init__(
        self,
        workdir: Path,
        memory_mb: int = 2048,
        output_chars: int = 10_000,
        preload: tuple[str, ...] = (),
        max_processes: int = 64,
    ):
        command_read, self._command_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        fds = (command_read, reply_write)
        limits = dict(memory_mb=memory_mb, output_chars=output_chars, processes=max_processes)
        self.process = None
        self.server = fork_server(preload)
        self.pid = self.server.spawn(workdir, fds, limits)
        if self.pid is None:
            self.server = None
            arguments = [*fds, memory_mb, output_chars, max_processes, ",".join(preload)]
            self.process = _popen(arguments, cwd=workdir, pass_fds=fds)
            self.pid = self.process.pid
        os.close(command_read)
        os.close(reply_write)
        self._buffer = b""
        self.alive = True
        self._ready = False

    def _wait_until_ready(self) -> bool:
        if not self._ready:
            self._ready = isinstance(self._read_reply(STARTUP_TIMEOUT_S, "ready"), dict)
        return self._ready

    def run(self, source: str, timeout: float) -> CellResult:
        """Run one cell; never raises because of what the cell does."""
        if not self.alive:
            return CellResult("not_run", evalue="the worker had stopped")
        if not self._wait_until_ready():
            return self._died()
        command_id = secrets.token_hex(8)
        try:
            command = json.dumps({"id": command_id, "source": source}).encode() + b"\n"
            os.write(self._command_write, command)
        except OSError:
            return self._died()
        reply = self._read_reply(timeout, command_id)
        if reply == "timeout":
            self._signal(signal.SIGINT, group=False)
            reply = self._read_reply(INTERRUPT_GRACE_S, command_id)
            if isinstance(reply, dict):
                result = self._result(reply)
                return CellResult(
                    "timeout", result.ename, result.evalue, "", result.output, result.dropped
                )
            self.kill()
            return CellResult("timeout", evalue="stopped by killing the worker")
        if reply == "died":
            return self._died()
        return self._result(reply)

    def _result(self, reply: dict) -> CellResult:
        return CellResult(
            str(reply.get("status", "error")),
            str(reply.get("ename", "")),
            str(reply.get("evalue", "")),
            str(reply.get("traceback", "")),
            str(reply.get("output", "")),
            int(reply.get("dropped", 0)) if str(reply.get("dropped", 0)).isdigit() else 0,
        )

    def _read_reply(self, timeout: float, command_id: str):
        """The reply to ``command_id``: a dict, or ``"timeout"`` or ``"died"``.

        Lines that are not that reply (say, written to the pipe by the student's code to
        answer for the tests ahead) are skipped: the id is drawn afresh for every cell.
        """
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                ready, _, _ = select.select([self._reply_read], [], [], left)
                if not ready:
                    return "timeout"
                chunk = os.read(self._reply_read, 65536)
                if not chunk or len(self._buffer) > REPLY_BYTES:
                    return "died"
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("id") == command_id:
                return reply

    def _died(self) -> CellResult:
        self.kill()
        how = ""
        code = self.process.returncode if self.process else None
        if code is not None:
            how = (
                f" (killed by {signal.Signals(-code).name})" if code < 0 else f" (exit code {code})"
            )
        return CellResult("died", evalue=f"the worker process ended{how}")

    def _signal(self, number: int, group: bool) -> None:
        if self.server is not None:
            self.server.signal(self.pid, number, group)
            return
        for send in (os.killpg, os.kill) if group else (os.kill,):
            try:
                send(self.pid, number)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        """Stop the worker and every process it started; release the pipes."""
        if self.alive:
            self.alive = False
            self._signal(signal.SIGKILL, group=True)
            if self.process:
                self.process.wait()
            os.close(self._command_write)
            os.close(self._reply_read)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def run_cells(
    sources: list[str],
    workdir: Path,
    timeout: float,
    memory_mb: int = 2048,
    output_chars: int = 10_000,
    max_restarts: int = 3,
    preload: tuple[str, ...] = (),
    max_processes: int = 64,
) -> list[CellResult]:
    """Run cells in order in one kernel; after a kernel is lost, start a new one, replay.

    When a cell hangs or kills its worker, a fresh worker replays the cells that had finished
    (skipping the bad one) and goes on, so one bad cell costs only its own tests. After
    ``max_restarts`` restarts, the remaining cells are reported ``not_run``. ``preload`` names
    trusted modules each worker imports before the first cell (outside the time limit).
    """
    results: list[CellResult] = []
    finished: list[str] = []
    restarts = 0
    kernel = Kernel(workdir, memory_mb, output_chars, preload, max_processes)
    try:
        for source in sources:
            if not kernel.alive:
                if restarts >= max_restarts:
                    results.append(CellResult("not_run", evalue="too many restarts"))
                    continue
                restarts += 1
                kernel = Kernel(workdir, memory_mb, output_chars, preload, max_processes)
                for earlier in finished:
                    if kernel.run(earlier, timeout).status in ("timeout", "died"):
                        kernel.kill()
                        break
                if not kernel.alive:
                    results.append(
                        CellResult("not_run", evalue="the replay of earlier cells failed")
                    )
                    continue
            result = kernel.run(source, timeout)
            results.append(result)
            if result.status in ("ok", "error"):
                finished.append(source)
    finally:
        kernel.kill()
    return results
