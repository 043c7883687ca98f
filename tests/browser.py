"""Headless Chromium with the network shut, and a local web server: for the browser tests.

``serve(folder)`` serves a folder on 127.0.0.1; ``chromium(profile)`` opens a Playwright
browser context on the system's Chromium (no browser is downloaded).
"""

import contextlib
import functools
import http.server
import shutil
import threading

import pytest

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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    """The files of ``folder`` at the yielded ``http://127.0.0.1:PORT`` address."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()


@contextlib.contextmanager
def chromium(profile):
    """A Playwright persistent context of the system's Chromium, profile in ``profile``."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run `make test` (it installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        try:
            yield context
        finally:
            context.close()


def shown_frame(page, root: str = ".course-explorer") -> str:
    """The ``src`` of the frame an explorer on ``page`` shows now (its visible ``<img>``)."""
    return page.evaluate(
        """(root) => [...document.querySelectorAll(root + ' img')]
            .filter(img => img.offsetParent !== null).map(img => img.src).join(' ')""",
        root,
    )


def move_first_control(page, root: str = ".course-explorer") -> None:
    """Move the first control of the first explorer on ``page`` one step, as a reader would:
    a dropdown to its next option, a slider's handle by the arrow key."""
    control = page.locator(f"{root} > :first-child > :first-child").first
    control.scroll_into_view_if_needed()
    dropdown = control.locator("select")
    if dropdown.count():
        values = dropdown.evaluate("el => [...el.options].map(o => o.value)")
        current = values.index(dropdown.input_value())
        dropdown.select_option(values[(current + 1) % len(values)])
    else:
        control.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
