"""The built website, opened page by page in headless Chromium, with the network shut.

Needs `_build/html` (built by `make site`) and Chromium (`make test` installs it). Every page
must load with no JavaScript error, no failed request and no request leaving 127.0.0.1; its
math must be typeset by the locally served MathJax (no raw TeX left); every image must
load; every stored widget must render.
"""

import json
import re
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import chromium, move_first_control, serve, shown_frame

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def is_chapter(page: str) -> bool:
    """A chapter's page (notebooks/NN_name.html): it has a precomputed explorer."""
    return re.fullmatch(r"notebooks/\d\d_\w+\.html", page) is not None


def site_pages() -> list[str]:
    skip = {"_static", "_sources", "mathjax", "widgets", "_images", "_downloads"}
    return sorted(
        str(path.relative_to(SITE))
        for path in SITE.rglob("*.html")
        if not skip & set(path.relative_to(SITE).parts)
    )


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        pytest.fail("no built site: run `make site` first")
    with serve(SITE) as address:
        yield address


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def visit(browser, url: str) -> dict:
    """Open `url`, let its scripts finish, and collect every problem the page shows: errors,
    requests, raw TeX, broken or unlabelled images, axe-core's serious and critical
    violations, and whether moving the first explorer's first control changes its figure."""
    problems = []
    page = browser.new_page()
    page.set_default_timeout(120_000)  # the API reference is long; the machine may be busy

    def on_request(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            problems.append(f"request leaves 127.0.0.1: {route.request.url}")
            route.abort()

    page.route("**/*", on_request)
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    page.on(
        "console",
        lambda msg: msg.type == "error" and problems.append(f"console error: {msg.text}"),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400 and problems.append(f"HTTP {response.status}: {response.url}")
        ),
    )
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => !document.querySelector('.math') || window.MathJax?.startup?.promise",
        timeout=20_000,
    )
    page.evaluate("() => window.MathJax?.startup?.promise?.then(() => true) ?? true")
    page.wait_for_timeout(300)
    report = page.evaluate(
        """() => ({
        math: document.querySelectorAll('.math').length,
        typeset: [...document.querySelectorAll('.math')]
            .filter(el => el.querySelector('mjx-container')).length,
        images: document.images.length,
        broken: [...document.images]
            .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src),
        no_alt: [...document.images]
            .filter(img => img.getClientRects().length > 0)
            .filter(img => !(img.getAttribute('alt') || '').trim())
            .map(img => img.src.slice(0, 80)),
        widgets: document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]').length,
        rendered: document.querySelectorAll('.jupyter-widgets').length,
        explorers: document.querySelectorAll('.course-explorer').length,
        })"""
    )
    report["axe"] = axe_violations(page)
    if report["explorers"]:
        before = shown_frame(page)
        move_first_control(page)
        report["explorer_changed"] = bool(before) and shown_frame(page) != before
    page.close()
    report["problems"] = problems
    return report


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations of WCAG 2.1 A and AA rules on ``page``."""
    if not AXE.exists():
        pytest.fail("no node_modules/axe-core: run `make setup` first")
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations'], runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                        first: v.nodes[0].target.join(' ')}))"""
    )
    return violations


@pytest.fixture(scope="module")
def reports(server, browser):
    """Each page visited once, on demand; the tests below share the report."""
    cache = {}

    def report(page: str) -> dict:
        if page not in cache:
            cache[page] = visit(browser, f"{server}/{page}")
        return cache[page]

    return report


PAGES = site_pages() if SITE.exists() else ["index.html"]


def test_site_has_the_pages_of_the_table_of_contents():
    pages = site_pages()
    for expected in ["book/preface.html", "book/setup.html", "book/references.html"]:
        assert expected in pages


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(reports, page):
    report = reports(page)
    assert report["problems"] == [], "\n".join(report["problems"])
    assert report["typeset"] == report["math"], f"raw TeX left: {report}"
    assert report["broken"] == [], f"missing figures: {report['broken']}"
    if report["widgets"]:
        assert report["rendered"] > 0, "stored widgets were not rendered"


@pytest.mark.parametrize("page", PAGES)
def test_explorer_responds_without_a_kernel(reports, page):
    report = reports(page)
    if is_chapter(page):
        assert report["explorers"] > 0, "no precomputed explorer (course_lib.explorer)"
    if report["explorers"]:
        assert report["explorer_changed"], "moving the first control left the figure as it was"


@pytest.mark.parametrize("page", PAGES)
def test_page_is_accessible(reports, page):
    report = reports(page)
    assert report["no_alt"] == [], f"images without alt text: {report['no_alt']}"
    assert report["axe"] == [], json.dumps(report["axe"], indent=1)


def luminance(rgb) -> float:
    red, green, blue = rgb[:3]
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_figures_stay_readable_in_dark_mode(server, browser):
    """Chapter 10 in the theme's light and dark modes: the page background follows the mode,
    every figure (cell outputs and the explorer's frame) keeps an opaque light background."""
    import io

    from PIL import Image

    page = browser.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{server}/notebooks/10_schedules.html", wait_until="networkidle")
    page.wait_for_selector(".course-explorer img")
    figures = page.locator(".bd-content div.cell_output img:visible, .course-explorer img")
    assert figures.count() >= 5
    for mode in ("light", "dark"):
        page.evaluate(
            "(mode) => { document.documentElement.dataset.theme = mode;"
            " document.documentElement.dataset.mode = mode; }",
            mode,
        )
        page.wait_for_timeout(300)
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        background = luminance(shot.getpixel((shot.width - 5, shot.height - 5)))
        assert (background < 80) if mode == "dark" else (background > 200), (mode, background)
        for k in range(figures.count()):
            figure = Image.open(io.BytesIO(figures.nth(k).screenshot())).convert("RGB")
            corners = [(2, 2), (figure.width - 3, 2), (2, figure.height - 3)]
            dark = [c for c in corners if luminance(figure.getpixel(c)) < 180]
            assert dark == [], f"figure {k} has a dark corner in {mode} mode"
    page.close()


CHAPTER_PAGES = [page for page in PAGES if re.match(r"notebooks/\d\d_", page)]


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_chapter_offers_its_exercise_set_from_the_site(server, page):
    href = f"../exercises/ch{Path(page).name[:2]}.ipynb"
    assert f'href="{href}" download' in (SITE / page).read_text()
    with urllib.request.urlopen(f"{server}/notebooks/{href}") as response:
        notebook = json.loads(response.read())
    assert notebook["cells"], "the served exercise set is an empty notebook"


@pytest.mark.parametrize("page", [page for page in PAGES if is_chapter(page)])
def test_chapter_links_to_the_api_reference(page):
    html = (SITE / page).read_text()
    anchors = set(re.findall(r'href="\.\./book/api\.html#(course_lib\.[\w.]+)"', html))
    api = (SITE / "book" / "api.html").read_text()
    assert anchors, "no links to the API reference"
    assert [a for a in anchors if f'id="{a}"' not in api] == [], "links to missing API entries"
