"""Write the class report: grades.csv (atomically) and one feedback HTML page per student."""

from __future__ import annotations

import csv
import html
import io
import os
import tempfile
from pathlib import Path

from .autograde import Grade

COLUMNS = ("student", "assignment", "score", "max_score", "status", "reason", "notebook")


def number(value: float) -> str:
    return f"{value:g}"


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def csv_text(grades: list[Grade]) -> str:
    """One row per student; after the fixed columns, the points of each test cell."""
    test_ids = [t.grade_id for t in grades[0].tests] if grades else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, *test_ids])
    for grade in sorted(grades, key=lambda g: g.student):
        points = {t.grade_id: number(t.points if t.passed else 0) for t in grade.tests}
        writer.writerow(
            [
                grade.student,
                grade.assignment,
                number(grade.score),
                number(grade.max_score),
                grade.status,
                grade.reason,
                grade.notebook,
                *(points.get(i, "0") for i in test_ids),
            ]
        )
    return buffer.getvalue()


def feedback_html(grade: Grade) -> str:
    """A self-contained page: the score, the status, and per test cell its result."""
    e = html.escape
    rows = []
    for test in grade.tests:
        verdict = "passed" if test.passed else "failed"
        detail = ""
        if test.message:
            detail += f"<pre>{e(test.message)}</pre>"
        if test.output:
            detail += (
                f"<details><summary>printed output</summary><pre>{e(test.output)}</pre></details>"
            )
        rows.append(
            f"<tr class='{verdict}'><td>{e(test.grade_id)}</td><td>{verdict}</td>"
            f"<td>{number(test.points if test.passed else 0)} / {number(test.points)}</td>"
            f"<td>{detail}</td></tr>"
        )
    notes = "".join(f"<li>{e(reason)}</li>" for reason in grade.reasons)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(grade.assignment)}: feedback for {e(grade.student)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }}
td, th {{ border-bottom: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
.passed td:nth-child(2) {{ color: #106010; }} .failed td:nth-child(2) {{ color: #a01010; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 0.5em; }}
</style></head><body>
<h1>{e(grade.assignment)}: feedback for {e(grade.student)}</h1>
<p><strong>Score: {number(grade.score)} / {number(grade.max_score)}</strong>
 (status: {e(grade.status)})</p>
<ul>{notes}</ul>
<table><tr><th>test cell</th><th>result</th><th>points</th><th>details</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def write_report(grades: list[Grade], out: Path, feedback_dir: Path) -> None:
    for grade in grades:
        write_atomically(feedback_dir / f"{grade.student}.html", feedback_html(grade))
    write_atomically(out, csv_text(grades))
