"""Write, or check, requirements.txt: the exact lock of pyproject.toml's dependencies.

    python scripts/lock.py           # rewrite requirements.txt from the installed environment
    python scripts/lock.py --check   # exit 1 if requirements.txt is out of sync (CI)

pyproject.toml declares compatible ranges (the runtime, and the extras book, test, grading,
lab). The lock is every distribution those requirements reach, transitively, with the
version installed in this environment: install the ranges (``pip install -e ".[all]"``),
then run this script. ``--check`` also fails if an installed version is outside its range.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# The exact lock of pyproject.toml's dependencies and all its extras: written by\n"
    "# scripts/lock.py from a working environment, checked by `scripts/lock.py --check`.\n"
)


def closure(requirements: list[str]) -> dict[str, str]:
    """Every installed distribution these requirements reach: canonical name -> version."""
    found: dict[str, str] = {}
    pending = [(Requirement(text), frozenset()) for text in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while pending:
        requirement, via_extras = pending.pop()
        environment = [{"extra": extra} for extra in via_extras or {""}]
        if requirement.marker and not any(requirement.marker.evaluate(e) for e in environment):
            continue
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{requirement} is not installed") from None
        found[name] = distribution.version.split("+")[0]  # torch's "+cpu" names the index
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            raise SystemExit(f"installed {name}=={distribution.version} is outside {requirement}")
        pending += [
            (Requirement(text), frozenset(requirement.extras))
            for text in distribution.requires or []
        ]
    return found


def project_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    own = canonicalize_name(project["name"])
    return [
        text
        for text in [*project["dependencies"], *(t for ts in extras.values() for t in ts)]
        if canonicalize_name(Requirement(text).name) != own  # "course_lib[...]" in "all"
    ]


def lock_text() -> str:
    pins = closure(project_requirements())
    names = {
        canonicalize_name(d.metadata["Name"]): d.metadata["Name"] for d in metadata.distributions()
    }
    lines = [
        f"{names.get(n, n)}=={pins[n]}" for n in sorted(pins, key=lambda n: names.get(n, n).lower())
    ]
    return HEADER + "\n".join(lines) + "\n-e .\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    path = ROOT / "requirements.txt"
    wanted = lock_text()
    if not args.check:
        path.write_text(wanted)
        return 0
    committed = {line for line in path.read_text().splitlines() if not line.startswith("#")}
    expected = {line for line in wanted.splitlines() if not line.startswith("#")}
    for line in sorted(committed - expected):
        print(
            f"requirements.txt has {line!r}, which pyproject.toml does not reach", file=sys.stderr
        )
    for line in sorted(expected - committed):
        print(f"requirements.txt lacks {line!r}", file=sys.stderr)
    return 1 if committed != expected else 0


if __name__ == "__main__":
    sys.exit(main())
