"""Print the single-page build of the book to a PDF with the Chromium of the browser test.

    python scripts/pdf.py _build/singlehtml/index.html _build/book.pdf

The page is served from 127.0.0.1 with every other request refused, its math typeset by the
site's own MathJax before printing, so the PDF is made offline.
"""

import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def print_pdf(page_path: Path, out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("make pdf needs Chromium: scripts/setup.sh --browser installs it")
    handler = functools.partial(QuietHandler, directory=str(page_path.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{httpd.server_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page()
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith((address, "data:", "blob:"))
                else route.abort()
            ),
        )
        page.goto(f"{address}/{page_path.name}", wait_until="networkidle", timeout=300_000)
        page.wait_for_function("() => window.MathJax?.startup?.promise", timeout=60_000)
        page.evaluate("() => window.MathJax.startup.promise.then(() => true)")
        page.emulate_media(media="print")
        page.pdf(
            path=str(out),
            format="A4",
            print_background=True,
            outline=True,
            margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"},
        )
        browser.close()
    httpd.shutdown()
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    print_pdf(Path(sys.argv[1]), Path(sys.argv[2]))
