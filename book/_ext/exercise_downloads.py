"""Offer each chapter's exercise set on its page, served by the site itself.

For a chapter page ``notebooks/NN_name``, the student notebook ``exercises/chNN/chNN.ipynb``
is copied to ``exercises/chNN.ipynb`` in the built site and a download box is added at the
end of the page, with a line on how to open the notebook in JupyterLab.
"""

import re
import shutil
from pathlib import Path

CHAPTER = re.compile(r"^notebooks/(\d\d)_")


def exercise_set(app, pagename: str) -> Path | None:
    match = CHAPTER.match(pagename)
    if not match:
        return None
    number = match.group(1)
    path = Path(app.srcdir) / "exercises" / f"ch{number}" / f"ch{number}.ipynb"
    return path if path.exists() else None


def add_download(app, pagename, templatename, context, doctree):
    source = exercise_set(app, pagename)
    if source is None or "body" not in context:
        return
    target = Path(app.outdir) / "exercises" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    context["body"] += (
        '<div class="admonition exercise-download">'
        '<p class="admonition-title">Exercise set</p>'
        f'<p><a href="../exercises/{source.name}" download>Download the exercise set '
        f"<code>{source.name}</code></a> (a Jupyter notebook). To open it in JupyterLab, "
        "save it in the course's <code>notebooks/</code> folder, run <code>make lab</code> "
        "from the course folder, and double-click it in JupyterLab's file browser; its "
        "checks give feedback as you answer.</p></div>"
    )


def setup(app):
    app.connect("html-page-context", add_download)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
