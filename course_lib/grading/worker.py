"""The child process that runs a student's cells; started only by ``sandbox.Kernel``.

    python -m course_lib.grading.worker COMMAND REPLY MEMORY_MB OUTPUT_CHARS PROCESSES [PRELOAD]
    python -m course_lib.grading.worker --server SOCKET_FD [PRELOAD]   (a fork server)

Before any student code runs it switches, when it is root inside the sandbox (see
``isolation``), to a user id of its own, and limits its address space (``RLIMIT_AS``; where
that cannot be set, as on macOS, a thread polls the resident size instead), the number of
processes and threads of its user (``RLIMIT_NPROC``) and the size of files it may write. It
points file descriptors 0-2 at /dev/null, imports the modules named in
PRELOAD (comma-separated, e.g. ``torch,numpy``: the instructor's imports, so their import time
does not count against a cell) and says it is ready (``{"id": "ready"}``). Then it reads one
JSON command per line from COMMAND_FD (``{"id": ..., "source": ...}``), runs the cell in an
IPython shell (so magics work), and writes one JSON reply per line to REPLY_FD with the same
id: the status, the exception if any, and the first OUTPUT_CHARS characters the cell printed.
"""

import errno
import io
import json
import os
import re
import resource
import signal
import sys
import threading
import time
import traceback

from course_lib.grading.isolation import FIRST_UID

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


def own_user() -> bool:
    """True when this worker switches to a user id of its own (root inside the sandbox)."""
    return os.environ.get("COURSE_GRADING_SANDBOX") == "1" and os.geteuid() == 0


def worker_uid(pid: int) -> int:
    """The user id of the worker with this pid (pids in the sandbox are small and distinct)."""
    return FIRST_UID + pid % 60_000


def become(uid: int, workdir: str) -> None:
    """Root inside the sandbox: own the working directory, then drop to ``uid`` for good."""
    os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def my_tasks() -> int:
    """Processes and threads of this user that /proc shows (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == os.getuid():
                count += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            pass
    return count


def limit_resources(memory_mb: int, processes: int) -> bool:
    """Set the limits; False if the address space cannot be limited (then guard_memory)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # with a user id of its own the count starts at this process; otherwise (best effort)
    # it starts at what the user already runs
    start = 1 if os.getuid() >= FIRST_UID else my_tasks()
    resource.setrlimit(resource.RLIMIT_NPROC, (start + processes, start + processes))
    memory = memory_mb * 2**20
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        return True
    except (ValueError, OSError):
        return False


def guard_memory(memory_mb: int, replies, current: dict) -> None:
    """Poll the resident size; past the limit, answer MemoryError and end the worker."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB

    def watch():
        while resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale < memory_mb * 2**20:
            time.sleep(0.05)
        reply = {"id": current.get("id"), "status": "error", "ename": "MemoryError"}
        reply["evalue"] = f"resident memory above {memory_mb} MB"
        os.write(replies.fileno(), json.dumps(reply).encode() + b"\n")
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def is_process_limit(error: BaseException) -> bool:
    """fork() or a new thread refused: EAGAIN, which is how RLIMIT_NPROC answers."""
    return (isinstance(error, OSError) and error.errno == errno.EAGAIN) or (
        isinstance(error, RuntimeError) and "can't start new thread" in str(error)
    )


def preload_modules(names) -> None:
    for module in names:
        try:
            __import__(module)
        except Exception:  # the cell that imports it will report the error
            pass


def serve(
    command_fd: int, reply_fd: int, memory_mb: int, output_chars: int, processes: int, preload=()
):
    """Limit this process, then run cells from COMMAND_FD until it closes."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if own_user():
        become(worker_uid(os.getpid()), os.getcwd())
    os.environ["HOME"] = os.environ["TMPDIR"] = os.getcwd()  # the one folder it may write
    address_space_limited = limit_resources(memory_mb, processes)
    me = os.getpid()

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
    current = {}
    if not address_space_limited:
        guard_memory(memory_mb, replies, current)
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
        current["id"], source = command["id"], command["source"]
        sys.stdout = sys.stderr = captured
        try:
            result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as raised:  # noqa: B036 (the shell lets very little through)
            error = raised
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if os.getpid() != me:  # a process the cell forked: it never answers
            os._exit(0)
        if os.getuid() >= FIRST_UID:  # nothing the cell started outlives it
            os.kill(-1, signal.SIGKILL)  # every process of this user but this one
        output, dropped = captured.take()
        reply = {"id": command["id"], "status": "ok", "output": output, "dropped": dropped}
        if error is not None:
            reply.update(
                status="error",
                ename=type(error).__name__,
                evalue=str(error)[:1000],
                traceback=describe(error),
            )
            if is_process_limit(error):
                reply.update(ename="ProcessLimit", evalue=f"at most {processes} processes: {error}")
        try:
            data = json.dumps(reply).encode() + b"\n"
        except MemoryError:
            data = json.dumps({"id": command["id"], "status": "error", "ename": "MemoryError"})
            data = data.encode() + b"\n"
        replies.write(data)
        replies.flush()


def fork_server(socket_fd: int, preload) -> None:
    """Import the slow modules once, then fork one fresh worker per request.

    A request is a JSON message ``{"cwd", "memory_mb", "output_chars", "processes"}`` with the
    worker's two pipe ends attached (SCM_RIGHTS); the answer is the worker's pid. Each worker
    starts its own session, so it and whatever it starts can be killed as one group. A request
    ``{"signal", "pid", "group"}`` signals a worker (the grader cannot: inside the sandbox the
    pid is the PID namespace's); a worker with a user id of its own is killed with every
    process of that user. The answer is 0.
    """
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
        if "signal" in request:
            send_signal(request["pid"], request["signal"], request["group"])
            server.sendall(b"0\n")
            continue
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.chdir(request["cwd"])
                sys.path[0] = request["cwd"]
                sys.argv = [sys.argv[0]]
                limits = request["memory_mb"], request["output_chars"], request["processes"]
                serve(fds[0], fds[1], *limits)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        server.sendall(f"{pid}\n".encode())


def send_signal(pid: int, number: int, group: bool) -> None:
    for send in (os.killpg, os.kill) if group else (os.kill,):
        try:
            send(pid, number)
        except (ProcessLookupError, PermissionError):
            pass
    if group and own_user() and os.fork() == 0:  # processes that left the group, too
        try:
            os.setresuid(*(worker_uid(pid),) * 3)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)


def main() -> None:
    if sys.argv[1] == "--server":
        fork_server(int(sys.argv[2]), [n for n in "".join(sys.argv[3:4]).split(",") if n])
        return
    command_fd, reply_fd, memory_mb, output_chars, processes = (int(a) for a in sys.argv[1:6])
    preload = [name for name in "".join(sys.argv[6:7]).split(",") if name]
    serve(command_fd, reply_fd, memory_mb, output_chars, processes, preload)


if __name__ == "__main__":
    main()
