"""The built website, opened page by page in headless Chromium, with the network shut.

Needs `_build/html` (built by `make site`) and Chromium (`make test` installs it). Every page
must load with no JavaScript error, no failed request and no request leaving 127.0.0.1; its
math must be typeset by the locally served MathJax (no raw TeX left); every image must
load; every stored widget must render.
"""

import functools
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

SITE = Path(__file__).resolve().parents[1] / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def site_pages() -> list[str]:
    skip = {"_static", "_sources", "mathjax", "widgets", "_images"}
    return sorted(
        str(path.relative_to(SITE))
        for path in SITE.rglob("*.html")
        if not skip & set(path.relative_to(SITE).parts)
    )


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        pytest.fail("no built site: run `make site` first")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run `make test` (it installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
        )
        yield context
        context.close()


def visit(browser, url: str) -> dict:
    """Open `url`, let its scripts finish, and collect every problem the page shows."""
    problems = []
    page = browser.new_page()

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
        widgets: document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]').length,
        rendered: document.querySelectorAll('.jupyter-widgets').length,
        })"""
    )
    page.close()
    report["problems"] = problems
    return report


def test_site_has_the_pages_of_the_table_of_contents():
    pages = site_pages()
    for expected in ["book/preface.html", "book/setup.html", "book/references.html"]:
        assert expected in pages


@pytest.mark.parametrize("page", site_pages() if SITE.exists() else ["index.html"])
def test_page_renders_offline(server, browser, page):
    report = visit(browser, f"{server}/{page}")
    assert report["problems"] == [], "\n".join(report["problems"])
    assert report["typeset"] == report["math"], f"raw TeX left: {report}"
    assert report["broken"] == [], f"missing figures: {report['broken']}"
    if report["widgets"]:
        assert report["rendered"] > 0, "stored widgets were not rendered"
