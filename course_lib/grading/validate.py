"""Check every exercise set: the solution passes all its tests, the blank fails all of them.

Both run through the same sandboxed path that grades students (``autograde``), so this also
checks that the grader accepts the source. A test cell that an untouched exercise passes
would give points for nothing; a solution that fails a test would take points from a right
answer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from .autograde import grade_notebook
from .release import source_path, student_version


def validate_set(root: Path, name: str, timeout: float = 60.0) -> list[str]:
    """Problems found in set ``name`` (empty if none); prints a one-line summary."""
    source = nbformat.read(source_path(root, name), as_version=4)
    problems = []
    with tempfile.TemporaryDirectory(prefix="validate-") as scratch:
        versions = {"solution": source, "exercise": student_version(source)}
        grades = {}
        for role, notebook in versions.items():
            path = Path(scratch) / role / f"{name}.ipynb"
            path.parent.mkdir()
            nbformat.write(notebook, path)
            grades[role] = grade_notebook(source, role, name, path, timeout=timeout)
    solution, exercise = grades["solution"], grades["exercise"]
    if not solution.tests or solution.max_score <= 0:
        problems.append("no graded test cells with points")
    for test in solution.tests:
        if not test.passed:
            problems.append(f"the solution fails {test.grade_id}: {test.message.strip()[-300:]}")
    for test in exercise.tests:
        if test.passed:
            problems.append(f"the untouched exercise passes {test.grade_id}")
    # an untouched answer cell may raise NotImplementedError at top level: status "error"
    allowed = {"solution": ("graded",), "exercise": ("graded", "error")}
    for role, grade in grades.items():
        if grade.status not in allowed[role]:
            problems.append(f"the {role} was graded with status {grade.status}: {grade.reason}")
    passed = sum(t.passed for t in solution.tests)
    failed = sum(not t.passed for t in exercise.tests)
    count = len(solution.tests)
    verdict = "OK" if not problems else "FAILED"
    print(
        f"{name}: solution {solution.score:g}/{solution.max_score:g} points "
        f"({passed}/{count} test cells pass); untouched exercise {exercise.score:g}/"
        f"{exercise.max_score:g} ({failed}/{count} test cells fail): {verdict}",
        flush=True,
    )
    for problem in problems:
        print(f"  {name}: {problem}", flush=True)
    return problems
