"""Grade a class of 30 crafted ch01 submissions and print the time and the status counts.

    .venv/bin/python benchmarks/grade_class.py [--jobs 2] [--timeout 10] [--keep DIR]

The class mixes good, partial, wrong and hostile submissions (infinite loops, exceptions,
sys.exit, os._exit, a memory bomb, output flooding, malformed JSON, a missing and a renamed
notebook, deleted and edited tests). It is built in a temporary folder from the released
exercise and the solution, graded with ``python -m course_lib.grading grade``, and the
expected score of each student is checked against grades.csv.
"""

import argparse
import csv
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.grading.__main__ import main  # noqa: E402
from course_lib.grading.release import student_version  # noqa: E402

SOURCE = ROOT / "solutions" / "ch01" / "ch01.ipynb"
POINTS = {"q1": 2, "q2": 2, "q3": 2, "q4": 1}


def build_class(folder: Path) -> dict[str, tuple[float, str]]:
    """Write 30 submissions; return each student's expected (score, status)."""
    source = nbformat.read(SOURCE, as_version=4)
    good = {
        c.metadata.nbgrader["grade_id"]: c.source
        for c in source.cells
        if c.metadata.nbgrader.get("solution")
    }

    def notebook(answers, drop=(), edit=None):
        released = student_version(source)
        cells = []
        for cell in released.cells:
            grade_id = cell.metadata.nbgrader["grade_id"]
            if grade_id in drop:
                continue
            cell.source = (edit or {}).get(grade_id, answers.get(grade_id, cell.source))
            cells.append(cell)
        released.cells = cells
        return nbformat.writes(released)

    def only(*questions):
        return {f"{q}_answer": good[f"{q}_answer"] for q in questions}

    def score(*lost):
        return float(sum(POINTS.values()) - sum(POINTS[q] for q in lost))

    forward_difference = good["q1_answer"].replace(
        "(f(x + step) - f(x - step)) / (2 * h)", "(f(x + step) - f(x)) / h"
    )
    kinds = {}
    for index in range(12):
        kinds[f"good_{index:02d}"] = (notebook(good), score(), "graded")
    kinds["partial_q1"] = (notebook(only("q1")), score("q2", "q3", "q4"), "graded")
    kinds["partial_q1_q2"] = (notebook(only("q1", "q2")), score("q3", "q4"), "graded")
    kinds["partial_q3_q4"] = (notebook(only("q3", "q4")), score("q1", "q2"), "graded")
    kinds["partial_q2_q3_q4"] = (notebook(only("q2", "q3", "q4")), score("q1"), "graded")
    kinds["wrong_forward_difference"] = (
        notebook({**good, "q1_answer": forward_difference}),
        score("q1"),
        "graded",
    )
    kinds["blank_00"] = (notebook({}), score(*POINTS), "graded")
    kinds["blank_01"] = (notebook({}), score(*POINTS), "graded")
    hostile = {
        "loop": ({"q2_answer": "while True:\n    pass"}, ("q2",), "timeout"),
        "loop_ignoring_sigint": (
            {
                "q1_answer": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "while True:\n    pass"
            },
            ("q1",),
            "timeout",
        ),
        "exception": ({"q3_answer": "1 / 0"}, ("q3",), "error"),
        "sys_exit": ({"q4_answer": "import sys\nsys.exit(1)"}, ("q4",), "error"),
        "os_exit": ({"q2_answer": "import os\nos._exit(1)"}, ("q2",), "kernel_died"),
        "memory_bomb": (
            {"q3_answer": "hog = []\nwhile True:\n    hog.append(torch.ones(2**24))"},
            ("q3",),
            "memory_limit",
        ),
        "flood": ({"q4_answer": good["q4_answer"] + "\nprint('x' * 10**8)"}, (), "graded"),
    }
    for name, (changes, lost, status) in hostile.items():
        kinds[name] = (notebook({**good, **changes}), score(*lost), status)
    kinds["tampered_tests"] = (
        notebook(
            {**good, "q2_answer": "def directional_derivative(gradient, direction):\n    return 0"},
            drop=("q1_tests",),
            edit={"q2_tests": "pass"},
        ),
        score("q2"),
        "graded",
    )
    expected = {}
    for student, (text, points, status) in kinds.items():
        (folder / student).mkdir(parents=True)
        (folder / student / "ch01.ipynb").write_text(text, encoding="utf-8")
        expected[student] = (points, status)
    (folder / "renamed").mkdir()
    (folder / "renamed" / "Copy of ch01.ipynb").write_text(notebook(good), encoding="utf-8")
    expected["renamed"] = (score(), "graded")
    (folder / "malformed").mkdir()
    (folder / "malformed" / "ch01.ipynb").write_text(json.dumps({"cells": 3})[:-3])
    expected["malformed"] = (0.0, "invalid_notebook")
    (folder / "missing").mkdir()
    expected["missing"] = (0.0, "missing")
    return expected


def run(jobs: int, timeout: float, keep: Path | None) -> int:
    with tempfile.TemporaryDirectory(prefix="grade-class-") as scratch:
        base = keep or Path(scratch)
        expected = build_class(base / "submissions")
        out = base / "report" / "grades.csv"
        start = time.perf_counter()
        arguments = ["--root", str(ROOT), "grade", "ch01", "--submissions"]
        arguments += [str(base / "submissions"), "--out", str(out), "--jobs", str(jobs)]
        arguments += ["--timeout", str(timeout)]
        main(arguments)
        seconds = time.perf_counter() - start
        with out.open() as file:
            rows = {row["student"]: row for row in csv.DictReader(file)}
    counts = Counter(row["status"] for row in rows.values())
    wrong = {
        student: (rows[student]["score"], rows[student]["status"], want)
        for student, want in expected.items()
        if (float(rows[student]["score"]), rows[student]["status"]) != want
    }
    print(f"{len(rows)} submissions graded in {seconds:.1f} s ({seconds / len(rows):.2f} s each)")
    print("per status: " + ", ".join(f"{s} {counts[s]}" for s in sorted(counts)))
    print(f"scores as expected: {len(rows) - len(wrong)}/{len(rows)}")
    for student, (got_score, got_status, want) in sorted(wrong.items()):
        print(f"  {student}: got {got_score} {got_status}, expected {want[0]:g} {want[1]}")
    return 1 if wrong or len(rows) != 30 else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--keep", type=Path, help="build and grade here instead of a temp dir")
    arguments = parser.parse_args()
    sys.exit(run(arguments.jobs, arguments.timeout, arguments.keep))
