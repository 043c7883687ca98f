"""`make pdf`'s book (_build/book.pdf): one PDF with every chapter's title, and math typeset
(no raw TeX left in its text)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PDF = ROOT / "_build" / "book.pdf"
# what the HTML keeps of math that MathJax did not typeset (none of them occurs in code cells)
RAW_TEX = [r"\(", r"\[", r"\begin{", r"\lVert", r"\sum"]


def chapter_titles() -> list[str]:
    titles = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = json.loads(path.read_text())["cells"][0]
        heading = re.search(r"^# (.+)$", "".join(first["source"]), re.MULTILINE)
        titles.append(heading.group(1).strip())
    return titles


@pytest.fixture(scope="module")
def text():
    if not PDF.exists():
        pytest.fail("no _build/book.pdf: run `make pdf` first")
    from pypdf import PdfReader

    reader = PdfReader(PDF)
    pages = [page.extract_text() or "" for page in reader.pages]
    assert len(pages) > 15
    return re.sub(r"\s+", " ", " ".join(pages))


def test_every_chapter_title_is_in_the_pdf(text):
    squeezed = text.replace(" ", "")
    missing = [title for title in chapter_titles() if title.replace(" ", "") not in squeezed]
    assert missing == [], f"chapters missing from the PDF: {missing}"


def test_no_raw_tex_in_the_pdf(text):
    raw = {marker: text.count(marker) for marker in RAW_TEX if marker in text}
    assert raw == {}, f"raw TeX in the PDF's text: {raw}"
