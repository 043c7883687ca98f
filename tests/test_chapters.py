"""Every chapter notebook keeps the course's promises (CONTRIBUTING.md, COURSE.md).

nbval re-executes the notebooks; this file checks what nbval cannot: that the committed
notebook is executed and error-free, measures and asserts its claims, has a live explorer
and a kernel-free counterpart for the website, cites its sources, runs on a GPU when one is
present, is in the table of contents and points to an existing exercise set.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_BYTES = 6_000_000


def cells(path: Path, kind: str) -> list[dict]:
    notebook = json.loads(path.read_text())
    return [c for c in notebook["cells"] if c["cell_type"] == kind]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc.get("parts", []):
        files |= {chapter["file"] for chapter in part["chapters"]}
    return files


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks found"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_executed_without_errors(path):
    code = [c for c in cells(path, "code") if source(c).strip()]
    assert code, "a chapter has code"
    unexecuted = [source(c)[:60] for c in code if c.get("execution_count") is None]
    assert not unexecuted, f"cells never executed: {unexecuted}"
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, "a committed cell raised an error"
    assert path.stat().st_size < MAX_BYTES, "outputs too large for a light web page"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_measures_and_asserts(path):
    code = "\n".join(source(c) for c in cells(path, "code"))
    assert re.search(r"^\s*assert\b", code, re.MULTILINE), "no measured claim is asserted"
    assert "torch.cuda.is_available()" in code, "no device line"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_live_explorer_and_website_counterpart(path):
    outputs = [o for c in cells(path, "code") for o in c.get("outputs", [])]
    assert any(WIDGET_VIEW in o.get("data", {}) for o in outputs), "no ipywidgets explorer"
    animations = any(
        'class="animation"' in "".join(o.get("data", {}).get("text/html", "")) for o in outputs
    )
    tagged = any(
        "kernel-free" in c.get("metadata", {}).get("tags", []) for c in cells(path, "code")
    )
    assert animations or tagged, "no kernel-free counterpart (to_jshtml animation or tagged cell)"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_reads_like_a_page(path):
    markdown = [source(c) for c in cells(path, "markdown")]
    assert markdown and markdown[0].lstrip().startswith("# "), "starts with a title"
    text = "\n".join(markdown)
    assert "{cite" in text, "cites no source"
    number = path.stem[:2]
    assert f"exercises/ch{number}" in text, "no pointer to the exercise set"
    assert (ROOT / f"solutions/ch{number}/ch{number}.ipynb").exists(), "no exercise set"
    assert f"notebooks/{path.stem}" in toc_files(), "not in _toc.yml"


def test_every_page_of_the_toc_exists():
    for name in toc_files():
        assert any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb")), name
