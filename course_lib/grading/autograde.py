"""Grade one student's notebook against the source of its exercise set.

Only the student's answer cells are taken (matched by nbgrader ``grade_id``); they are put
into a fresh copy of the source notebook, so every other cell, the tests and hidden tests
included, comes from the source whatever the student deleted or edited. The merged cells run
in a sandboxed worker (``sandbox.run_cells``). A test cell earns its points if it ran without
raising. The submission file is only read, never written.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .isolation import confinement
from .release import student_version
from .sandbox import CellResult, run_cells

MAX_NOTEBOOK_BYTES = 20 * 2**20
HIDDEN = "### BEGIN HIDDEN TESTS"

# Submission statuses, most severe first: the first that applies names the submission.
STATUSES = (
    "missing",
    "invalid_notebook",
    "kernel_died",
    "timeout",
    "memory_limit",
    "process_limit",
    "error",
    "graded",
)


@dataclass
class TestOutcome:
    grade_id: str
    points: float
    passed: bool
    message: str = ""
    output: str = ""


@dataclass
class Grade:
    student: str
    assignment: str
    score: float
    max_score: float
    status: str
    reasons: list[str] = field(default_factory=list)
    tests: list[TestOutcome] = field(default_factory=list)
    notebook: str = ""

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def nbgrader_metadata(cell) -> dict:
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return nbgrader if isinstance(nbgrader, dict) else {}


def is_answer(cell) -> bool:
    meta = nbgrader_metadata(cell)
    return bool(meta.get("solution")) and not meta.get("grade")


def is_test(cell) -> bool:
    meta = nbgrader_metadata(cell)
    return bool(meta.get("grade")) and cell.get("cell_type") == "code"


def cell_source(cell) -> str | None:
    """The source of a cell from untrusted JSON: a string or a list of strings, else None."""
    source = cell.get("source") if isinstance(cell, dict) else None
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def read_cells_by_id(path: Path) -> dict[str, dict]:
    """The nbgrader cells of an untrusted notebook file, by grade_id; ``ValueError`` if broken."""
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not valid notebook JSON ({error})") from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a notebook: no list of cells")
    found = {}
    for cell in cells:
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if isinstance(grade_id, str) and grade_id not in found:
            found[grade_id] = cell
    return found


def find_notebook(folder: Path, name: str, answer_ids: set[str]) -> tuple[Path | None, str]:
    """The student's notebook in ``folder`` and a note if it is not under its expected name.

    A renamed notebook is accepted: among all ``.ipynb`` files (checkpoints excluded) the one
    holding the most of the set's answer cells wins, ties broken by path.
    """
    expected = folder / f"{name}.ipynb"
    if expected.is_file():
        return expected, ""
    candidates = sorted(
        p for p in folder.rglob("*.ipynb") if p.is_file() and ".ipynb_checkpoints" not in p.parts
    )
    if not candidates:
        return None, ""

    def matches(path: Path) -> int:
        try:
            return len(answer_ids & set(read_cells_by_id(path)))
        except (ValueError, OSError):
            return -1

    best = max(candidates, key=lambda p: (matches(p), [-ord(c) for c in str(p)]))
    note = f"graded {best.relative_to(folder).as_posix()} (expected {name}.ipynb)"
    return best, note


def clean(text: str, workdir: Path) -> str:
    """Remove what varies between runs: the scratch directory and memory addresses."""
    text = text.replace(str(workdir), ".")
    return re.sub(r"0x[0-9a-fA-F]{6,}", "0x...", text)


def one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def grade_notebook(
    source: nbformat.NotebookNode,
    student: str,
    assignment: str,
    submission: Path | None,
    timeout: float = 30.0,
    memory_mb: int = 2048,
    output_chars: int = 10_000,
    notes: list[str] | None = None,
    max_processes: int = 64,
    hide_hidden: bool = False,
) -> Grade:
    """Grade the notebook file ``submission`` (``None``: missing) against ``source``.

    With ``hide_hidden``, a failed test cell that holds hidden tests shows the student no
    traceback or output, only that it failed.
    """
    tests_in_source = [c for c in source.cells if is_test(c)]
    max_score = float(sum(nbgrader_metadata(c).get("points", 0) for c in tests_in_source))
    grade = Grade(student, assignment, 0.0, max_score, "graded", list(notes or []))
    grade.tests = [
        TestOutcome(
            nbgrader_metadata(c)["grade_id"], float(nbgrader_metadata(c).get("points", 0)), False
        )
        for c in tests_in_source
    ]
    if submission is None:
        grade.status = "missing"
        grade.reasons.append("no .ipynb file in the submission folder")
        return grade
    grade.notebook = submission.name
    try:
        student_cells = read_cells_by_id(submission)
    except (ValueError, OSError) as error:
        grade.status = "invalid_notebook"
        grade.reasons.append(one_line(str(error)))
        return grade

    released = {
        nbgrader_metadata(c)["grade_id"]: c.source
        for c in student_version(source).cells
        if is_test(c)
    }
    sources, roles = [], []
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        grade_id = nbgrader_metadata(cell).get("grade_id", "")
        text = cell.source
        if is_answer(cell):
            student_text = cell_source(student_cells.get(grade_id, {}))
            if student_text is None:
                grade.reasons.append(f"answer cell {grade_id} missing; graded as unanswered")
                text = _stub(source, grade_id)
            else:
                text = student_text
        elif is_test(cell):
            student_text = cell_source(student_cells.get(grade_id, {}))
            if student_text is None:
                grade.reasons.append(f"test cell {grade_id} deleted; restored from the source")
            elif student_text != released.get(grade_id):
                grade.reasons.append(f"test cell {grade_id} edited; restored from the source")
        sources.append(text)
        roles.append((grade_id, is_answer(cell), is_test(cell)))

    with tempfile.TemporaryDirectory(prefix="grade-", dir=confinement().scratch) as scratch:
        workdir = Path(scratch)
        preload = imported_modules(source)
        results = run_cells(
            sources, workdir, timeout, memory_mb, output_chars, 3, preload, max_processes
        )
        _score(grade, roles, results, timeout, workdir)
    if hide_hidden:
        hidden = {nbgrader_metadata(c)["grade_id"] for c in tests_in_source if HIDDEN in c.source}
        for test in grade.tests:
            if test.grade_id in hidden and not test.passed:
                test.message, test.output = "failed (the hidden tests' details are withheld)", ""
    return grade


def imported_modules(source: nbformat.NotebookNode) -> tuple[str, ...]:
    """Top-level modules imported by the instructor's cells (not the answers), sorted."""
    names = set()
    for cell in source.cells:
        if cell.cell_type == "code" and not is_answer(cell):
            names.update(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_][\w.]*)", cell.source, re.M))
    return tuple(sorted(names))


def _stub(source: nbformat.NotebookNode, grade_id: str) -> str:
    for cell in student_version(source).cells:
        if nbgrader_metadata(cell).get("grade_id") == grade_id:
            return cell.source
    return "raise NotImplementedError()"


def _score(grade: Grade, roles, results: list[CellResult], timeout: float, workdir: Path) -> None:
    events = set()
    outcomes = {t.grade_id: t for t in grade.tests}
    for (grade_id, answer, test), result in zip(roles, results, strict=True):
        error = clean(f"{result.ename}: {result.evalue}".strip(": "), workdir)
        if result.dropped:
            grade.reasons.append(f"{grade_id}: output cut after {len(result.output)} characters")
        if result.status == "timeout":
            events.add("timeout")
            grade.reasons.append(f"{grade_id}: stopped after the {timeout:g} s time limit")
        elif result.status == "died":
            events.add("kernel_died")
            grade.reasons.append(f"{grade_id}: {result.evalue}")
        elif result.status == "not_run":
            grade.reasons.append(f"{grade_id}: not run ({result.evalue})")
        elif result.status == "error" and _is_memory(result):
            events.add("memory_limit")
            grade.reasons.append(f"{grade_id}: memory limit ({one_line(error, 100)})")
        elif result.status == "error" and result.ename == "ProcessLimit":
            events.add("process_limit")
            grade.reasons.append(f"{grade_id}: process limit ({one_line(result.evalue, 100)})")
        elif result.status == "error" and answer:
            events.add("error")
            grade.reasons.append(f"{grade_id} raised {one_line(error, 100)}")
        if test:
            outcome = outcomes[grade_id]
            outcome.passed = result.status == "ok"
            outcome.output = clean(result.output, workdir)
            if not outcome.passed:
                outcome.message = clean(result.traceback, workdir) or error or result.status
    grade.score = sum(t.points for t in grade.tests if t.passed)
    failed = [t.grade_id for t in grade.tests if not t.passed]
    if failed:
        grade.reasons.append("failed: " + ", ".join(failed))
    grade.status = next(s for s in STATUSES if s in events or s == "graded")


def _is_memory(result: CellResult) -> bool:
    text = f"{result.ename} {result.evalue}".lower()
    return (
        result.ename == "MemoryError" or "can't allocate memory" in text or "out of memory" in text
    )


def grade_class(
    source_file: Path,
    assignment: str,
    submissions: Path,
    timeout: float = 30.0,
    memory_mb: int = 2048,
    jobs: int = 1,
    max_processes: int = 64,
    hide_hidden: bool = False,
) -> list[Grade]:
    """Grade every student folder in ``submissions`` (one folder per student), by name."""
    from concurrent.futures import ThreadPoolExecutor

    source = nbformat.read(source_file, as_version=4)
    answer_ids = {nbgrader_metadata(c)["grade_id"] for c in source.cells if is_answer(c)}
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))

    def grade_one(folder: Path) -> Grade:
        notebook, note = find_notebook(folder, assignment, answer_ids)
        notes = [note] if note else []
        return grade_notebook(
            source,
            folder.name,
            assignment,
            notebook,
            timeout,
            memory_mb,
            notes=notes,
            max_processes=max_processes,
            hide_hidden=hide_hidden,
        )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(grade_one, folders))
