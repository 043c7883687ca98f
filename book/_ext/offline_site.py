"""Keep the website self-contained: drop the Thebe (live-code) scripts Jupyter Book 1 adds;
fix two accessibility faults of the theme's markup.

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


# Accessibility fixes of the theme's own markup (axe-core, WCAG 2.1 AA), on every page:
# the search button's aria-label ("Search") hides its visible text ("Search the course...
# Ctrl+K"); the colour-mode button's icons carry titles that differ from its label; the
# sidebar's expand toggles (<summary> holding only an icon) have no name; the widgets'
# slider handles (role=slider) are not tied to their description label; and the references'
# role=list holds entries with the deprecated role doc-biblioentry instead of listitem.
A11Y_FIXES = """
function fixLateMarkup() {
  for (const handle of document.querySelectorAll(".jupyter-widgets [role=slider]")) {
    if (handle.hasAttribute("aria-label")) continue;
    const label = handle.closest(".widget-slider")?.querySelector(".widget-label");
    handle.setAttribute("aria-label", label?.textContent.trim() || "slider");
  }
  // Font Awesome swaps each <i title> for an <svg> holding a <title>, before or after
  // DOMContentLoaded depending on load: quiet both forms.
  for (const icon of document.querySelectorAll(
      ".theme-switch-button i[title], .theme-switch-button svg[aria-labelledby]")) {
    icon.removeAttribute("title");
    icon.removeAttribute("aria-labelledby");
    icon.querySelector("title")?.remove();
    icon.setAttribute("aria-hidden", "true");
  }
}
new MutationObserver(fixLateMarkup).observe(document.documentElement,
  { childList: true, subtree: true });
document.addEventListener("DOMContentLoaded", () => {
  fixLateMarkup();
  for (const button of document.querySelectorAll(".search-button__button[aria-label]")) {
    button.removeAttribute("aria-label");
  }
  for (const summary of document.querySelectorAll("summary")) {
    if (summary.textContent.trim()) continue;
    const link = summary.parentElement.parentElement.querySelector(":scope > a");
    const label = link ? link.textContent.trim() : "this part";
    summary.setAttribute("aria-label", `Show the sections of ${label}`);
  }
  for (const entry of document.querySelectorAll(".citation-list > [role=doc-biblioentry]")) {
    entry.setAttribute("role", "listitem");
  }
});
"""


def setup(app):
    app.connect("html-page-context", drop_thebe)
    app.add_js_file(None, body=A11Y_FIXES)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
