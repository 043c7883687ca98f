"""Every term a chapter sets in bold has an entry in book/glossary.md (CONTRIBUTING.md).

Bold marks a term the chapter introduces; emphasis is written in *italics*. A bold span is
not a term when it is a run-in heading: it ends in punctuation ("**Exercises.**"), stands
alone on its line ("**In this chapter**"), or opens a list item ("1. **Clip the gradient
norm** at ..."), or when it holds code or math.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BOLD = re.compile(r"\*\*([^*]+?)\*\*")


def normalize(term: str) -> str:
    """Lower case, single spaces, no plural s or possessive: "Newton's  steps" -> "newton step"."""
    words = re.sub(r"\s+", " ", term.strip().lower()).replace("'s ", " ").split(" ")
    return " ".join(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words
    )


def glossary_terms() -> set[str]:
    """The terms of the glossary directive: the unindented lines inside it."""
    text = (ROOT / "book/glossary.md").read_text()
    block = text.split("```{glossary}", 1)[1].split("```", 1)[0]
    return {
        normalize(line) for line in block.splitlines() if line.strip() and not line[0].isspace()
    }


def bold_terms(path: Path) -> set[str]:
    terms = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line_start, span in _spans("".join(cell["source"])):
            if span.rstrip()[-1:] in ".:?!" or any(c in span for c in "`$|"):
                continue
            if re.fullmatch(r"\s*(?:[-*]|\d+\.)?\s*", line_start):
                continue  # a run-in heading or a bold list-item lead
            terms.add(span)
    return terms


def _spans(text: str):
    """(text of the line before the span, span) for every bold span."""
    for match in BOLD.finditer(text):
        line_start = text[text.rfind("\n", 0, match.start()) + 1 : match.start()]
        yield line_start, match.group(1)


def test_glossary_is_parsed():
    assert {"adam", "hessian", "learning rate"} <= glossary_terms()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_bold_term_has_a_glossary_entry(path):
    known = glossary_terms()
    missing = sorted(t for t in bold_terms(path) if normalize(t) not in known)
    assert not missing, (
        f"{path.name} sets these terms in bold but book/glossary.md has no entry for them: "
        f"{missing}. Add an entry (or an alias line) to the glossary, "
        "or write emphasis in *italics*."
    )
