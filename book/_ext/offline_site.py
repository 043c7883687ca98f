"""Keep the website self-contained: drop the Thebe (live-code) scripts Jupyter Book 1 adds.

The course runs its code in JupyterLab, not through a remote kernel, so Thebe is not used.
Jupyter Book 1 always loads sphinx-thebe, which injects its configuration script twice
("Identifier 'THEBE_JS_URL' has already been declared") and points at a CDN.
"""


def drop_thebe(app, pagename, templatename, context, doctree):
    def is_thebe(asset) -> bool:
        text = f"{asset.filename or ''} {asset.attributes.get('body', '')}"
        return "thebe" in text.lower()

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not is_thebe(asset)]


def setup(app):
    app.connect("html-page-context", drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
