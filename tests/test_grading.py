"""Release, validate and grade: the instructor command line, against crafted submissions.

The class below holds one folder per student, each a different way a submission goes wrong.
They are graded once (module fixture) with a short per-cell timeout and a 512 MB memory limit;
each test then checks one student's score, status and reason against what the crafted
notebook must earn (points per test cell come from the source: q1 2, q2 2, q3 2, q4 1).
"""

import csv
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import sandbox
from course_lib.grading.__main__ import main
from course_lib.grading.autograde import grade_class, grade_notebook
from course_lib.grading.isolation import confinement
from course_lib.grading.release import FORBIDDEN_MARKERS, render, student_version

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "ch01" / "ch01.ipynb"
TIMEOUT_S = 5.0  # generous: the machine running the tests may be busy

# A small set shaped like ch01 (four answers, tests with hidden parts, points 2, 2, 2, 1) but
# importing nothing slow, so each worker starts in about a second and the class below grades
# quickly; ch01 itself goes through the same path in test_validate_ch01.
QUESTIONS = {
    "q1": ("def double(x):", "return 2 * x", "assert double(2) == 4", "assert double(-1) == -2", 2),
    "q2": ("def square(x):", "return x * x", "assert square(3) == 9", "assert square(-2) == 4", 2),
    "q3": (
        "def total(xs):",
        "return sum(xs)",
        "assert total([1, 2]) == 3",
        "assert total([]) == 0",
        2,
    ),
    "q4": (
        "def shout(s):",
        "return s.upper()",
        "assert shout('a') == 'A'",
        "assert shout('') == ''",
        1,
    ),
}
POINTS = {f"{q}_tests": spec[4] for q, spec in QUESTIONS.items()}
SECRET = "instructor-token-4f1c"  # in the grader's environment; must not reach student code
# A clever student: look for the solution everywhere a path could lead (up from the working
# directory and from course_lib, through /proc to other processes' folders and command lines,
# and the real paths, which it may have guessed) and exec any definition it finds.
THIEF = r"""
import glob, os, pathlib, re, course_lib
places = {os.getcwd(), os.path.dirname(course_lib.__file__), *GUESSED}
for proc in glob.glob("/proc/[0-9]*"):
    for link in ("cwd", "root", "exe"):
        try:
            places.add(os.readlink(f"{proc}/{link}"))
        except OSError:
            pass
    for name in ("cmdline", "environ"):
        try:
            places.update(re.findall(r"/[^\x00 =:]+", open(f"{proc}/{name}", "rb").read().decode()))
        except OSError:
            pass
for place in list(places):
    places.update(str(p) for p in pathlib.Path(place).parents)
system = ("/proc", "/sys", "/dev", "/usr", "/lib", "/etc", "/bin", "/sbin")
skip = ("site-packages", ".git", "node_modules", "share", "include", "python3.11")
found = False  # the solution, or a classmate's answer
for place in sorted(p for p in places if p != "/" and not p.startswith(system)):
    files = [place] if os.path.isfile(place) else []
    for root, folders, names in os.walk(place):
        folders[:] = [f for f in folders if f not in skip]
        files += [os.path.join(root, name) for name in names]
    for file in files:
        try:
            if os.path.getsize(file) < 2**20:
                found = found or "return 2 " + "* x" in open(file, errors="ignore").read()
        except OSError:
            pass


def double(x):
    return 2 * x if found else 0
"""
PEEKER = """import glob, os
seen = "\\n".join(os.environ.values())
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        seen += open(path, "rb").read().decode(errors="ignore")
    except OSError:
        pass


def square(x):
    return x * x if "instructor-token" in seen else 0
"""


def meta(grade_id, **flags):
    base = dict(grade=False, solution=False, locked=False, schema_version=3, task=False)
    return {"nbgrader": {**base, "grade_id": grade_id, **flags}}


def write_set(root: Path, name: str, cells: list) -> Path:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    path = root / "solutions" / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


def small_set(root: Path) -> Path:
    cells = [nbformat.v4.new_code_cell("import math", metadata=meta("setup", locked=True))]
    for question, (signature, body, visible, hidden, points) in QUESTIONS.items():
        answer = f"{signature}\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION"
        test = f"{visible}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS"
        cells.append(
            nbformat.v4.new_code_cell(answer, metadata=meta(f"{question}_answer", solution=True))
        )
        cells.append(
            nbformat.v4.new_code_cell(
                test, metadata=meta(f"{question}_tests", grade=True, locked=True, points=points)
            )
        )
    return write_set(root, "ch99", cells)


def solution_answers(source_path: Path) -> dict[str, str]:
    source = nbformat.read(source_path, as_version=4)
    return {
        c.metadata.nbgrader["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }


def student_notebook(source_path: Path, answers: dict[str, str], drop=(), edit=None) -> dict:
    """The released notebook with these answer cells filled in, as a student would save it."""
    notebook = student_version(nbformat.read(source_path, as_version=4))
    cells = []
    for cell in notebook.cells:
        grade_id = cell.metadata.nbgrader["grade_id"]
        if grade_id in drop:
            continue
        if grade_id in answers:
            cell.source = answers[grade_id]
        if edit and grade_id in edit:
            cell.source = edit[grade_id]
        cells.append(cell)
    notebook.cells = cells
    return json.loads(nbformat.writes(notebook))


def write(folder: Path, name: str, content) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, indent=1)
    (folder / name).write_text(text, encoding="utf-8")


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Build the crafted class, grade it through the command line, return rows by student."""
    base = tmp_path_factory.mktemp("class")
    root = base / "course"
    source = small_set(root)
    submissions = base / "submissions"
    good = solution_answers(source)

    def answers(**changes):
        return {**good, **changes}

    def notebook(answers, **kwargs):
        return student_notebook(source, answers, **kwargs)

    crafted = {
        "good": notebook(good),
        "blank": notebook({}),
        "partial": notebook({k: good[k] for k in ("q1_answer", "q2_answer")}),
        "loop": notebook(answers(q2_answer="while True:\n    pass")),
        "stubborn_loop": notebook(
            answers(
                q1_answer="import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "while True:\n    pass"
            )
        ),
        "exception": notebook(
            answers(
                # in the grader's own process this would raise AssertionError instead
                q3_answer=f"import os\nassert os.getpid() != {os.getpid()}\n1 / 0"
            )
        ),
        "sys_exit": notebook(answers(q4_answer="import sys\nsys.exit('bye')")),
        "os_exit": notebook(answers(q2_answer=good["q2_answer"] + "\nimport os\nos._exit(0)")),
        "memory_bomb": notebook(
            answers(q3_answer="blocks = []\nwhile True:\n    blocks.append(bytearray(2**27))")
        ),
        "flood": notebook(
            answers(
                q1_answer=good["q1_answer"]
                + "\nprint('spam ' * 10**7)\nfor i in range(10**4):\n    print(i)"
            )
        ),
        # fake "ok" replies written ahead into the reply pipe must not pass the tests
        "forger": notebook(
            answers(
                q3_answer="import os\nfor fd in range(3, 64):\n    try:\n"
                '        os.write(fd, b\'{"status": "ok"}\\n\' * 50)\n'
                "    except OSError:\n        pass"
            )
        ),
        "tampered": notebook(
            answers(q2_answer="def square(x):\n    return 4"),
            drop=("q1_tests",),
            edit={"q2_tests": "print('Visible tests passed.')", "q4_tests": "pass"},
        ),
    }
    if confinement().sandboxed:  # unsandboxed, these would succeed (and fork for real)
        guessed = [str(source), str(submissions / "good" / "ch99.ipynb"), str(ROOT / "solutions")]
        thief = f"GUESSED = {guessed!r}\n{THIEF}"
        crafted["thief"] = notebook(answers(q1_answer=thief, q2_answer=PEEKER))
        crafted["fork_bomb"] = notebook(answers(q4_answer="import os\nwhile True:\n    os.fork()"))
    for student, content in crafted.items():
        write(submissions / student, "ch99.ipynb", content)
    write(submissions / "renamed", "ch99 (1) final.ipynb", crafted["good"])
    write(submissions / "renamed", "notes.txt", "my notes")
    write(submissions / "malformed", "ch99.ipynb", '{"cells": [ {"cell_type": "code", ')
    write(submissions / "missing", "ch99.pdf", "not a notebook")

    before = digest(submissions)
    out = base / "report" / "grades.csv"
    arguments = ["--root", str(root), "grade", "ch99", "--submissions", str(submissions)]
    arguments += ["--out", str(out), "--timeout", str(TIMEOUT_S), "--memory-mb", "512"]
    os.environ["COURSE_TEST_TOKEN"] = SECRET
    sandbox._close_servers()  # the fork server starts afresh, with the secret in sight
    try:
        assert main(arguments) == 0
    finally:
        del os.environ["COURSE_TEST_TOKEN"]
    first = out.read_bytes()
    feedback = digest(out.parent / "feedback")
    with out.open() as file:
        rows = {row["student"]: row for row in csv.DictReader(file)}
    return {
        "rows": rows,
        "csv": first,
        "submissions": submissions,
        "before": before,
        "out": out,
        "arguments": arguments,
        "feedback": feedback,
    }


def expect(graded, student, status, lost=(), reason=()):
    row = graded["rows"][student]
    score = sum(POINTS.values()) - sum(POINTS[t] for t in lost)
    assert (row["status"], float(row["score"]), float(row["max_score"])) == (status, score, 7.0), (
        row
    )
    for test_id, points in POINTS.items():
        assert float(row[test_id]) == (0 if test_id in lost else points), test_id
    for pattern in reason:
        assert re.search(pattern, row["reason"]), (pattern, row["reason"])
    return row


def test_good_blank_and_partial_submissions(graded):
    expect(graded, "good", "graded")
    expect(graded, "blank", "graded", lost=POINTS, reason=["failed: q1_tests, q2_tests"])
    expect(graded, "partial", "graded", lost=("q3_tests", "q4_tests"))


def test_infinite_loop_is_stopped_and_the_rest_graded(graded):
    expect(graded, "loop", "timeout", lost=("q2_tests",), reason=[r"q2_answer: stopped after"])
    # a loop that ignores SIGINT: the worker is killed, a new one replays the earlier cells
    expect(graded, "stubborn_loop", "timeout", lost=("q1_tests",), reason=["q1_answer: stopped"])


def test_exception_runs_in_another_process(graded):
    expect(graded, "exception", "error", lost=("q3_tests",), reason=["q3_answer raised ZeroDiv"])


def test_sys_exit_and_os_exit(graded):
    expect(graded, "sys_exit", "error", lost=("q4_tests",), reason=["q4_answer raised SystemExit"])
    expect(graded, "os_exit", "kernel_died", lost=("q2_tests",), reason=["worker process ended"])


def test_memory_bomb_hits_the_limit(graded):
    expect(graded, "memory_bomb", "memory_limit", lost=("q3_tests",), reason=["q3_answer: memory"])


def test_output_flood_is_cut(graded):
    expect(graded, "flood", "graded", reason=["q1_answer: output cut after 10000 characters"])


def test_malformed_missing_and_renamed_notebooks(graded):
    expect(graded, "malformed", "invalid_notebook", lost=POINTS, reason=["not valid notebook JSON"])
    expect(graded, "missing", "missing", lost=POINTS, reason=["no .ipynb file"])
    expect(graded, "renamed", "graded", reason=[r"graded ch99 \(1\) final.ipynb"])


def test_forged_replies_are_ignored(graded):
    expect(graded, "forger", "graded", lost=("q3_tests",))


def test_deleted_and_edited_tests_are_restored(graded):
    expect(
        graded,
        "tampered",
        "graded",
        lost=("q2_tests",),
        reason=["q1_tests deleted; restored", "q2_tests edited; restored", "q4_tests edited"],
    )


def test_submissions_untouched_report_complete_and_rerun_identical(graded):
    assert digest(graded["submissions"]) == graded["before"]
    out = graded["out"]
    assert sorted(graded["rows"]) == sorted(p.name for p in graded["submissions"].iterdir())
    assert sorted(graded["feedback"]) == sorted(f"{s}.html" for s in graded["rows"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["feedback", "grades.csv"]
    page = (out.parent / "feedback" / "tampered.html").read_text()
    assert "Score: 5 / 7" in page and "q2_tests" in page
    # re-run on a few students, including the deterministic failures: the same bytes
    subset = out.parent.parent / "subset"
    for student in ("blank", "exception", "malformed", "missing", "renamed", "good"):
        shutil.copytree(graded["submissions"] / student, subset / student)
    again = out.parent.parent / "again" / "grades.csv"
    arguments = [a if a != str(graded["submissions"]) else str(subset) for a in graded["arguments"]]
    arguments[arguments.index(str(out))] = str(again)
    assert main(arguments) == 0
    first_rows = {line.split(",")[0]: line for line in graded["csv"].decode().splitlines()}
    for line in again.read_text().splitlines()[1:]:
        assert line == first_rows[line.split(",")[0]]
    for student in ("blank", "exception", "malformed", "good"):
        name = f"{student}.html"
        assert digest(again.parent / "feedback")[name] == graded["feedback"][name]


def sandboxed():
    """Skip the isolation checks where grading runs unsandboxed, saying why."""
    if not confinement().sandboxed:
        pytest.skip(confinement().warning)


def test_student_code_reaches_no_secret_solution_or_classmate(graded):
    sandboxed()
    # the batch completed, and neither the files nor the environment gave the thief points
    expect(graded, "thief", "graded", lost=("q1_tests", "q2_tests"))


def test_fork_bomb_is_stopped_by_the_process_limit(graded):
    sandboxed()
    expect(graded, "fork_bomb", "process_limit", lost=("q4_tests",), reason=["process limit"])


def test_hidden_tracebacks_can_be_left_out_of_the_feedback(tmp_path):
    source = small_set(tmp_path)
    path = tmp_path / "blank.ipynb"
    path.write_text(json.dumps(student_notebook(source, {})), encoding="utf-8")
    notebook = nbformat.read(source, as_version=4)
    shown, hidden = (
        grade_notebook(notebook, "blank", "ch99", path, TIMEOUT_S, 512, hide_hidden=flag)
        for flag in (False, True)
    )
    assert shown.score == hidden.score == 0
    for seen, withheld in zip(shown.tests, hidden.tests, strict=True):
        assert "NotImplementedError" in seen.message or "NameError" in seen.message
        assert withheld.message == "failed (the hidden tests' details are withheld)"
        assert withheld.output == ""


def test_release_is_byte_identical_and_committed(tmp_path):
    committed = (ROOT / "exercises" / "ch01" / "ch01.ipynb").read_text(encoding="utf-8")
    assert render(ROOT, "ch01") == committed
    assert render(ROOT, "ch01") == render(ROOT, "ch01")
    assert main(["--root", str(ROOT), "release", "--check", "ch01"]) == 0
    # a stale copy is reported by --check without being written, then fixed by release
    (tmp_path / "solutions").mkdir()
    shutil.copytree(ROOT / "solutions" / "ch01", tmp_path / "solutions" / "ch01")
    stale = tmp_path / "exercises" / "ch01" / "ch01.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text(committed.replace("Question 1", "Question one"), encoding="utf-8")
    assert main(["--root", str(tmp_path), "release", "--check"]) == 1
    assert "Question one" in stale.read_text(encoding="utf-8")
    assert main(["--root", str(tmp_path), "release", "ch01"]) == 0
    assert stale.read_text(encoding="utf-8") == committed


def test_release_leaks_no_solution_hidden_test_or_output():
    source = nbformat.read(SOURCE, as_version=4)
    exercise = nbformat.reads(render(ROOT, "ch01"), as_version=4)
    secret_lines = []
    for cell in source.cells:
        inside = False
        for line in cell.source.splitlines():
            if "### BEGIN" in line:
                inside = True
            elif "### END" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                secret_lines.append(line.strip())
    assert len(secret_lines) > 20  # the check below has something to find
    text = "\n".join(c.source for c in exercise.cells)
    assert [line for line in secret_lines if line in text] == []
    assert not any(marker in text for marker in FORBIDDEN_MARKERS)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in exercise.cells)
    assert "widgets" not in exercise.metadata
    assert any(c.get("outputs") for c in source.cells)  # the source is committed executed
    grade_ids = [c.metadata.nbgrader["grade_id"] for c in source.cells]
    assert grade_ids == [c.metadata.nbgrader["grade_id"] for c in exercise.cells]
    assert sum(c.metadata.nbgrader.get("points", 0) for c in exercise.cells) == 9
    for cell in exercise.cells:
        if cell.metadata.nbgrader["grade"]:
            assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False


def tiny_set(root: Path, solution: str, tests: list[str]) -> None:
    """A one-question set with no slow import, so validate's checks run in seconds."""
    cells = [
        nbformat.v4.new_code_cell(
            f"def f(x):\n    ### BEGIN SOLUTION\n    {solution}\n    ### END SOLUTION",
            metadata=meta("answer", solution=True),
        )
    ]
    for index, test in enumerate(tests):
        cells.append(
            nbformat.v4.new_code_cell(
                test, metadata=meta(f"test{index}", grade=True, locked=True, points=1)
            )
        )
    write_set(root, "ch99", cells)


def test_validate_passes_on_a_good_set_and_fails_on_broken_ones(tmp_path, capsys):
    tests = ["assert f(2) == 4", "### BEGIN HIDDEN TESTS\nassert f(-1) == -2\n### END HIDDEN TESTS"]
    tiny_set(tmp_path / "good", "return 2 * x", tests)
    assert main(["--root", str(tmp_path / "good"), "validate"]) == 0
    assert "ch99: solution 2/2 points" in capsys.readouterr().out

    tiny_set(tmp_path / "wrong", "return x + 2", tests)  # right at x=2, wrong at x=-1
    assert main(["--root", str(tmp_path / "wrong"), "validate"]) == 1
    assert "the solution fails test1" in capsys.readouterr().out

    top_level = [
        nbformat.v4.new_code_cell(
            "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION", metadata=meta("a", solution=True)
        ),
        nbformat.v4.new_code_cell(
            "assert answer == 42", metadata=meta("t", grade=True, locked=True, points=1)
        ),
    ]
    write_set(tmp_path / "top_level", "ch99", top_level)  # the blank raises at top level: fine
    assert main(["--root", str(tmp_path / "top_level"), "validate"]) == 0
    capsys.readouterr()

    tiny_set(tmp_path / "free", "return 2 * x", [*tests, "assert 1 + 1 == 2"])
    assert main(["--root", str(tmp_path / "free"), "validate"]) == 1
    assert "the untouched exercise passes test2" in capsys.readouterr().out


def test_validate_ch01(capsys):
    assert main(["--root", str(ROOT), "validate", "ch01"]) == 0
    assert "ch01: solution 9/9 points (5/5 test cells pass)" in capsys.readouterr().out


def test_grade_class_never_imports_student_code_here(tmp_path):
    """grade_class on an empty folder returns no rows; nothing is created in the folder."""
    (tmp_path / "empty").mkdir()
    assert grade_class(SOURCE, "ch01", tmp_path / "empty") == []
    assert list((tmp_path / "empty").iterdir()) == []


# Answers that only call the course's own implementation: each computes the right numbers
# (checked below, outside the grader) but must score 0, because the hidden tests withhold the
# course_lib function it re-implements (course_lib.checks.withheld).
CALLS_THE_REFERENCE = {
    "q1_answer": """
from course_lib.schedules import warmup_cosine as course_warmup_cosine


def warmup_cosine(step, warmup_steps, total_steps, peak_lr, min_lr=0.0):
    return course_warmup_cosine(
        step, warmup_steps=warmup_steps, total_steps=total_steps, peak_lr=peak_lr, min_lr=min_lr
    )
""",
    "q3_answer": """
import torch
from course_lib.optim import Adam


def adam_first_step(grad, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    param = torch.zeros_like(grad, requires_grad=True)
    param.grad = grad.clone()
    Adam([param], lr=lr, betas=betas, eps=eps).step()
    return param.detach()
""",
}


def test_an_answer_that_calls_the_reference_scores_zero(tmp_path):
    import torch

    from course_lib.schedules import warmup_cosine

    namespace = {}
    for source in CALLS_THE_REFERENCE.values():
        exec(source, namespace)
    expected = warmup_cosine(7, warmup_steps=5, total_steps=20, peak_lr=1.0, min_lr=0.1)
    assert namespace["warmup_cosine"](7, 5, 20, 1.0, 0.1) == expected
    step = namespace["adam_first_step"](torch.tensor([1e-3, -1e3]), lr=0.01)
    assert torch.allclose(step, torch.tensor([-0.01, 0.01]), rtol=1e-4)

    source = ROOT / "solutions" / "ch10" / "ch10.ipynb"
    good = solution_answers(source)
    submissions = tmp_path / "submissions"
    write(submissions / "honest", "ch10.ipynb", student_notebook(source, good))
    write(
        submissions / "caller",
        "ch10.ipynb",
        student_notebook(source, {**good, **CALLS_THE_REFERENCE}),
    )
    out = tmp_path / "grades.csv"
    arguments = ["--root", str(ROOT), "grade", "ch10", "--submissions", str(submissions)]
    assert main([*arguments, "--out", str(out), "--timeout", "60"]) == 0
    with out.open() as file:
        rows = {row["student"]: row for row in csv.DictReader(file)}
    points = {"q1_tests": 3, "q2_tests": 2, "q3_tests": 2, "q4_tests": 2}
    assert {test: float(rows["honest"][test]) for test in points} == points
    assert {test: float(rows["caller"][test]) for test in points} == {
        **points,
        "q1_tests": 0,
        "q3_tests": 0,
    }
    assert (
        "withheld while this answer is graded"
        in (tmp_path / "feedback" / "caller.html").read_text()
    )
