"""What a student's code can see while it is graded, and as whom it runs.

The workers get a scrubbed environment (only ``ALLOWED_VARIABLES`` pass, so the instructor's
tokens and keys never reach them) and import ``course_lib`` from a private copy of the
package, not from the repository that holds ``solutions/``. On Linux with bubblewrap
(``bwrap``, Debian package ``bubblewrap``) they also run in their own mount, PID, network and
IPC namespaces: the file system they see holds only the system directories, the Python
installation, the copy of ``course_lib`` and the scratch folders, so no path (walking up
from the working directory or the package, or /proc, where only the sandbox's own processes
exist) reaches the solutions, the hidden tests or the other submissions. When the grader
runs as root, each worker then switches to a user id of its own (``FIRST_UID`` and up), so
workers cannot signal or read one another and the process-count limit counts only its own
processes. Without bubblewrap, grading still runs, with a warning: the student's code then
runs as the instructor's user and can read what that user can.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

ALLOWED_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
FIRST_UID = 200_000  # workers' own user ids (root inside the sandbox only); no account needed
PACKAGE = Path(__file__).resolve().parents[1]  # the course_lib folder


@dataclass(frozen=True)
class Confinement:
    prefix: tuple[str, ...]  # the command that starts the worker's interpreter inside the sandbox
    library: Path  # holds the copy of course_lib, first on the worker's PYTHONPATH
    scratch: Path  # the workers' working directories are made here
    warning: str  # empty when sandboxed

    @property
    def sandboxed(self) -> bool:
        return bool(self.prefix)

    def environment(self) -> dict[str, str]:
        environment = {k: os.environ[k] for k in ALLOWED_VARIABLES if k in os.environ}
        environment.update(
            PATH="/usr/local/bin:/usr/bin:/bin",
            HOME=str(self.scratch),
            TMPDIR=str(self.scratch),
            PYTHONPATH=str(self.library),
            PYTHONNOUSERSITE="1",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONHASHSEED="0",
            MPLBACKEND="Agg",
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        if self.sandboxed:
            environment["COURSE_GRADING_SANDBOX"] = "1"
        return environment


def unsupported_reason() -> str:
    """Why grading cannot run on this system ('' when it can)."""
    if os.name != "posix" or not hasattr(os, "fork"):
        return (
            "grading needs a POSIX system with fork() and the resource module (Linux; macOS "
            "without the sandbox); on Windows, run it in WSL 2 or a Linux container"
        )
    return ""


def bwrap_arguments(scratch: Path) -> list[str]:
    """bubblewrap's arguments: a fresh root with only what the interpreter and torch need."""
    arguments = ["bwrap", "--die-with-parent", "--new-session"]
    arguments += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    arguments += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for folder in SYSTEM_DIRS:
        if os.path.exists(folder):
            kind = "--ro-bind" if not os.path.islink(folder) else "--symlink"
            source = os.readlink(folder) if kind == "--symlink" else folder
            arguments += [kind, source, folder]
    # the interpreter: the base installation and the virtual environment, each at the path
    # it is known by (a symlinked .venv is bound from where it really is)
    for prefix in dict.fromkeys((sys.base_prefix, sys.prefix)):
        if not prefix.startswith(SYSTEM_DIRS):
            arguments += [
                *_traversable_parents(prefix),
                "--ro-bind",
                os.path.realpath(prefix),
                prefix,
            ]
    arguments += [*_traversable_parents(scratch), "--bind", str(scratch), str(scratch)]
    return [*arguments, "--chdir", str(scratch)]


def _traversable_parents(path) -> list[str]:
    """Make the folders above ``path`` (bubblewrap would make them 0700: the worker's user
    could not pass through them) as empty folders anyone may enter."""
    arguments = []
    for parent in reversed(Path(path).parents[:-1]):
        arguments += ["--perms", "0755", "--dir", str(parent)]
    return arguments


def _sandbox_works(arguments: list[str], environment: dict) -> str:
    """'' if bwrap starts the interpreter with these arguments, else what went wrong."""
    try:
        probe = subprocess.run(
            [*arguments, sys.executable, "-c", "import course_lib"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if probe.returncode == 0 else probe.stderr.strip()[-300:]


@functools.cache
def confinement() -> Confinement:
    """The confinement for this grading run, set up once per process (removed at exit)."""
    base = Path(tempfile.mkdtemp(prefix="course-grading-"))
    import atexit

    atexit.register(shutil.rmtree, base, ignore_errors=True)
    library, scratch = base / "lib", base / "work"
    shutil.copytree(PACKAGE, library / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    scratch.mkdir()
    for folder in (base, library, scratch):
        folder.chmod(0o755)
    if sys.platform != "linux" or shutil.which("bwrap") is None:
        why = "bubblewrap (bwrap) is not installed"
        if sys.platform != "linux":
            why = f"the sandbox needs Linux (this is {sys.platform})"
    else:
        arguments = [*bwrap_arguments(scratch), "--ro-bind", str(library), str(library)]
        plain = Confinement((), library, scratch, "")
        why = _sandbox_works(arguments, plain.environment())
        if not why:
            return Confinement(tuple(arguments), library, scratch, "")
    warning = (
        f"grading WITHOUT the sandbox: {why}. Student code runs as your user with a scrubbed "
        "environment but can read any file your user can, solutions/ included. Install "
        "bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) to isolate it."
    )
    warnings.warn(warning, RuntimeWarning, stacklevel=2)
    return Confinement((), library, scratch, warning)
