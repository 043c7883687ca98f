"""Generate the student version of an exercise set from its single source.

The source ``solutions/chNN/chNN.ipynb`` holds the solutions and hidden tests between
nbgrader markers. The student version is made by nbgrader's own preprocessors, used as a
library (no course directory, no database), in the order of ``nbgrader generate_assignment``:
lock the test cells, replace solutions by stubs, clear outputs, check the metadata, store
checksums, remove the hidden tests. The result is a pure function of the source, so a re-run
writes the same bytes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

FORBIDDEN_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def exercise_sets(root: Path) -> list[str]:
    """Names of the sets that have a source, e.g. ``["ch01", "ch02"]``, sorted."""
    return sorted(
        p.parent.name for p in root.glob("solutions/ch*/ch*.ipynb") if p.stem == p.parent.name
    )


def source_path(root: Path, name: str) -> Path:
    return root / "solutions" / name / f"{name}.ipynb"


def exercise_path(root: Path, name: str) -> Path:
    return root / "exercises" / name / f"{name}.ipynb"


def student_version(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook: no solution code, no hidden tests, no outputs, tests locked."""
    notebook = copy.deepcopy(source)
    resources: dict = {}
    for preprocessor in (
        LockCells(),
        ClearSolutions(),
        ClearOutput(),
        CheckCellMetadata(),
        ComputeChecksums(),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),
        CheckCellMetadata(),
    ):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    notebook.metadata.pop("widgets", None)  # stored widget state shows the solution's results
    assert_no_leak(notebook)
    return notebook


def assert_no_leak(notebook: nbformat.NotebookNode) -> None:
    """Raise ``RuntimeError`` if a marker or an output survived into a student version."""
    for index, cell in enumerate(notebook.cells):
        for marker in FORBIDDEN_MARKERS:
            if marker in cell.source:
                raise RuntimeError(f"cell {index} of the student version still contains {marker!r}")
        if cell.get("outputs") or cell.get("execution_count") is not None:
            raise RuntimeError(f"cell {index} of the student version still has outputs")


def render(root: Path, name: str) -> str:
    """The exact text that ``release`` writes for set ``name``."""
    source = nbformat.read(source_path(root, name), as_version=4)
    return nbformat.writes(student_version(source)) + "\n"


def release(root: Path, names: list[str], check: bool = False) -> list[str]:
    """Write (or with ``check``, only compare) the student versions; return the stale names."""
    stale = []
    for name in names:
        text = render(root, name)
        target = exercise_path(root, name)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(".ipynb.tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(target)
    return stale
