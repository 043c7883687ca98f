"""Render course_lib's docstrings in the API reference, whatever their style.

Most docstrings are reStructuredText or Google style (napoleon converts those); some hold
their math as plain text (``|v^T H v|``, ``*`` in signatures, aligned formulas), which
reStructuredText would misread. A docstring that docutils cannot parse cleanly is shown as
written, in a literal block, instead of failing the build or rendering garbled.
"""

import io
import re

from docutils.core import publish_doctree

SPHINX_ROLE = re.compile(r":[a-z]+(:[a-z]+)?:(?=`)")


def parses_cleanly(text: str, env=None) -> bool:
    """True if docutils reads ``text`` without a warning (Sphinx roles read as plain ones)."""
    stream = io.StringIO()
    settings = {"report_level": 2, "halt_level": 5, "warning_stream": stream, "env": env}
    try:
        publish_doctree(SPHINX_ROLE.sub("", text), settings_overrides=settings)
    except Exception:  # a Sphinx directive that needs more of the build than this parse has
        return False
    return stream.getvalue() == ""


def literal_if_plain(app, what, name, obj, options, lines):
    if lines and not parses_cleanly("\n".join(lines), app.env):
        lines[:] = ["::", ""] + [f"    {line}" for line in lines] + [""]


def setup(app):
    # after napoleon (priority 500), so Google-style sections are already reStructuredText
    app.connect("autodoc-process-docstring", literal_if_plain, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
