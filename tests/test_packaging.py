"""course_lib installs as a package, and a learner's JupyterLab starts without grader noise.

The wheel test builds course_lib's wheel and installs it with pip into a fresh virtual
environment (no system site-packages) that holds only the runtime requirements' closure:
those distributions are linked in from this environment, which is exact (the lock's versions)
and needs no network and no copy of torch. ``pip check`` then confirms that the wheel's
declared requirements are met, and a process started outside the repository, with no
PYTHONPATH, imports course_lib from the wheel and runs an optimizer step and a chapter's
library calls: a module or data file missing from the wheel, or a runtime dependency missing
from pyproject.toml, fails it.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from lock import closure  # noqa: E402

# one optimizer step, then chapter 4's calls: the digits data, a model trained by course_lib
RUN_IN_WHEEL = """
import course_lib, torch
from course_lib.data import digits
from course_lib.optim import SGD
from course_lib.train import train
assert "site-packages" in course_lib.__file__, course_lib.__file__
torch.manual_seed(0)
model = torch.nn.Linear(64, 10)
before = model.weight.detach().clone()
history = train(model, SGD(model.parameters(), lr=0.1, momentum=0.9),
                torch.nn.functional.cross_entropy, digits(), steps=30, progress=False)
assert not torch.equal(model.weight, before)
assert history.loss[-1] < history.loss[0] / 2, history.loss
print("ok", course_lib.__version__)
"""


def clean_environment(**extra) -> dict:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def link_distribution(name: str, site_packages: Path) -> None:
    """'Install' an already installed distribution by linking its top-level entries."""
    distribution = metadata.distribution(name)
    base = Path(distribution.locate_file(""))
    for top in {Path(f).parts[0] for f in distribution.files or []}:
        target = site_packages / top
        if top not in ("..", "bin") and (base / top).exists() and not target.exists():
            target.symlink_to(base / top)


def test_wheel_installs_with_only_the_runtime_dependencies(tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # setuptools writes build/ there
    shutil.copytree(
        ROOT / "course_lib", source / "course_lib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", source)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("course_lib-*.whl")

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False, system_site_packages=False)
    python = fresh / "bin" / "python"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = fresh / "lib" / version / "site-packages"
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in [*closure(runtime), "pip"]:
        link_distribution(name, site_packages)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    install = [*pip, "install", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=clean_environment())
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, env=clean_environment())
    assert check.returncode == 0, check.stdout + check.stderr
    assert not (site_packages / "nbgrader").exists()  # the grading extra is not in the runtime

    run = subprocess.run(
        [python, "-c", RUN_IN_WHEEL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_environment(MPLBACKEND="Agg"),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["ok", metadata.version("course_lib")]


def test_learner_jupyterlab_starts_without_grader_errors(tmp_path):
    """`make lab`'s configuration: nbgrader's extensions stay quiet (no course directory)."""
    log = tmp_path / "lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--port=0"]
    command += ["--IdentityProvider.token=", "--allow-root", f"--notebook-dir={ROOT / 'notebooks'}"]
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(ROOT / "scripts" / "lab-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
        try:
            deadline = time.monotonic() + 300  # generous: a busy 2-core machine
            while "is running at" not in log.read_text() and server.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start within 300 s:\n" + log.read_text())
                time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(timeout=60)
    text = log.read_text()
    assert "is running at" in text, text
    assert not re.search(r"nbgrader|course directory", text, re.IGNORECASE), text
