"""Command line: ``python -m course_lib.grading {release,validate,grade} ...``.

Run from the repository root (or pass ``--root``). Exit status 0 means success; 1 means a
check failed (``release --check`` found stale exercises, ``validate`` found a problem).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from .autograde import grade_class
from .isolation import confinement, unsupported_reason
from .release import exercise_sets, release, source_path
from .report import write_report
from .validate import validate_set


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    commands = parser.add_subparsers(dest="command", required=True)

    rel = commands.add_parser("release", help="solutions/chNN -> exercises/chNN")
    rel.add_argument("sets", nargs="*", help="e.g. ch01 (default: every set)")
    rel.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")

    val = commands.add_parser("validate", help="solutions pass, untouched exercises fail")
    val.add_argument("sets", nargs="*", help="e.g. ch01 (default: every set)")
    val.add_argument("--timeout", type=float, default=60.0, help="seconds per cell")

    grd = commands.add_parser("grade", help="grade a folder of submissions")
    grd.add_argument("set", help="e.g. ch01")
    grd.add_argument("--submissions", type=Path, required=True, help="one folder per student")
    grd.add_argument("--out", type=Path, required=True, help="the grades CSV to write")
    grd.add_argument("--feedback", type=Path, help="feedback HTML folder (default: beside --out)")
    grd.add_argument("--timeout", type=float, default=30.0, help="seconds per cell")
    grd.add_argument("--memory-mb", type=int, default=2048, help="address-space limit")
    grd.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
    grd.add_argument(
        "--max-processes", type=int, default=64, help="processes and threads per worker"
    )
    grd.add_argument(
        "--hide-hidden-tracebacks",
        action="store_true",
        help="feedback says only that a test cell with hidden tests failed, not how",
    )
    return parser.parse_args(argv)


def chosen_sets(root: Path, names: list[str]) -> list[str]:
    known = exercise_sets(root)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown exercise set(s) {unknown}; known: {known}")
    return names or known


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    root = args.root
    if args.command == "release":
        names = chosen_sets(root, args.sets)
        stale = release(root, names, check=args.check)
        for name in names:
            state = ("stale" if args.check else "written") if name in stale else "up to date"
            print(f"{name}: exercises/{name}/{name}.ipynb {state}")
        return 1 if args.check and stale else 0
    if unsupported_reason():  # validate and grade run student code in worker processes
        raise SystemExit(unsupported_reason())
    if args.command == "validate":
        names = chosen_sets(root, args.sets)
        problems = [p for name in names for p in validate_set(root, name, args.timeout)]
        print(f"validate: {len(names)} set(s), {len(problems)} problem(s)")
        return 1 if problems else 0
    if args.jobs < 1 or args.max_processes < 1:
        raise SystemExit("--jobs and --max-processes must be at least 1")
    if args.timeout <= 0:
        raise SystemExit("--timeout must be positive")
    if args.memory_mb < 256:
        raise SystemExit("--memory-mb must be at least 256")
    if not args.submissions.is_dir():
        raise SystemExit(f"--submissions {args.submissions} is not a folder")
    (name,) = chosen_sets(root, [args.set])
    if confinement().warning:
        print(f"WARNING: {confinement().warning}", file=sys.stderr)
    start = time.perf_counter()
    grades = grade_class(
        source_path(root, name),
        name,
        args.submissions,
        args.timeout,
        args.memory_mb,
        args.jobs,
        args.max_processes,
        args.hide_hidden_tracebacks,
    )
    feedback = args.feedback or args.out.parent / "feedback"
    write_report(grades, args.out, feedback)
    counts = Counter(g.status for g in grades)
    seconds = time.perf_counter() - start
    print(
        f"graded {len(grades)} submission(s) of {name} in {seconds:.1f} s "
        f"({len(grades) / seconds:.2f} per second, {args.jobs} at once)"
    )
    print("statuses: " + ", ".join(f"{s}={counts[s]}" for s in sorted(counts)))
    print(f"wrote {args.out} and {len(grades)} page(s) in {feedback}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
