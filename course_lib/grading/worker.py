"""The child process that runs a student's cells; started only by ``sandbox.Kernel``.

    python -m course_lib.grading.worker COMMAND_FD REPLY_FD MEMORY_MB OUTPUT_CHARS [PRELOAD]
    python -m course_lib.grading.worker --server SOCKET_FD [PRELOAD]   (a fork server)

It limits its own address space (``RLIMIT_AS``) and the size of files it may write before any
student code runs, points file descriptors 0-2 at /dev/null, imports the modules named in
PRELOAD (comma-separated, e.g. ``torch,numpy``: the instructor's imports, so their import time
does not count against a cell) and says it is ready (``{"id": "ready"}``). Then it reads one
JSON command per line from COMMAND_FD (``{"id": ..., "source": ...}``), runs the cell in an
IPython shell (so magics work), and writes one JSON reply per line to REPLY_FD with the same
id: the status, the exception if any, and the first OUTPUT_CHARS characters the cell printed.
"""

import io
import json
import os
import re
import resource
import sys
import traceback

TRACEBACK_CHARS = 4000
COURSE_LIB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # checks.py, this file


class CappedText(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def take(self) -> tuple[str, int]:
        text, dropped = "".join(self.parts), self.dropped
        self.parts, self.kept, self.dropped = [], 0, 0
        return text, dropped


def describe(error: BaseException) -> str:
    """The traceback without the shell's or course_lib's frames; cell names that do not vary."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "IPython" + os.sep not in frame.filename and not frame.filename.startswith(COURSE_LIB)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(error)
    text = "".join(lines)
    text = re.sub(r"<ipython-input-\d+-[0-9a-f]+>", "<cell>", text)
    return text[-TRACEBACK_CHARS:]


def limit_resources(memory_mb: int) -> None:
    memory = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def preload_modules(names) -> None:
    for module in names:
        try:
            __import__(module)
        except Exception:  # the cell that imports it will report the error
            pass


def serve(command_fd: int, reply_fd: int, memory_mb: int, output_chars: int, preload=()):
    """Limit this process, then run cells from COMMAND_FD until it closes."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    limit_resources(memory_mb)

    from IPython.core.interactiveshell import InteractiveShell

    preload_modules(preload)
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database shared with the user's IPython
    shell = InteractiveShell.instance(config=config)
    shell.showtraceback = shell.showsyntaxerror = lambda *args, **kwargs: None  # we reply instead
    captured = CappedText(output_chars)
    commands = os.fdopen(command_fd, "rb")
    replies = os.fdopen(reply_fd, "wb")
    replies.write(b'{"id": "ready"}\n')
    replies.flush()
    while True:
        try:
            line = commands.readline()
        except KeyboardInterrupt:  # an interrupt that came late, between cells
            continue
        if not line:
            return
        command = json.loads(line)
        source = command["source"]
        sys.stdout = sys.stderr = captured
        try:
            result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as raised:  # noqa: B036 (the shell lets very little through)
            error = raised
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        output, dropped = captured.take()
        reply = {"id": command["id"], "status": "ok", "output": output, "dropped": dropped}
        if error is not None:
            reply.update(
                status="error",
                ename=type(error).__name__,
                evalue=str(error)[:1000],
                traceback=describe(error),
            )
        try:
            data = json.dumps(reply).encode() + b"\n"
        except MemoryError:
            data = json.dumps({"id": command["id"], "status": "error", "ename": "MemoryError"})
            data = data.encode() + b"\n"
        replies.write(data)
        replies.flush()


def fork_server(socket_fd: int, preload) -> None:
    """Import the slow modules once, then fork one fresh worker per request.

    A request is a JSON message ``{"cwd", "memory_mb", "output_chars"}`` with the worker's two
    pipe ends attached (SCM_RIGHTS); the answer is the worker's pid. Each worker starts its
    own session, so it and whatever it starts can be killed as one group.
    """
    import signal
    import socket

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    preload_modules(preload)
    import IPython.core.interactiveshell  # noqa: F401

    server = socket.socket(fileno=socket_fd)
    while True:
        message, fds, _, _ = socket.recv_fds(server, 65536, 2)
        if not message:
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.chdir(request["cwd"])
                sys.path[0] = request["cwd"]
                sys.argv = [sys.argv[0]]
                serve(fds[0], fds[1], request["memory_mb"], request["output_chars"])
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        server.sendall(f"{pid}\n".encode())


def main() -> None:
    if sys.argv[1] == "--server":
        fork_server(int(sys.argv[2]), [n for n in "".join(sys.argv[3:4]).split(",") if n])
        return
    command_fd, reply_fd, memory_mb, output_chars = (int(a) for a in sys.argv[1:5])
    preload = [name for name in "".join(sys.argv[5:6]).split(",") if name]
    serve(command_fd, reply_fd, memory_mb, output_chars, preload)


if __name__ == "__main__":
    main()
