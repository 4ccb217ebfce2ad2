"""docs/lookup-page.png: the lookup service's HTML page in use, in headless Chromium (Debian's `chromium`,
driven by Playwright's Python package), served from a published output directory.

    python scripts/screenshot_page.py --output-dir output [--user 1 --movie 1 --liked 1,2571,260]

The page is filled in as a person would: a user's list (drama only, from 1990) beside their history, a
movie's similar movies, and a new user's list from a few liked movies.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--user", default="1")
    parser.add_argument("--movie", default="1")
    parser.add_argument("--liked", default="1, 2571, 260")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "lookup-page.png")
    args = parser.parse_args()
    app = create_app(ServiceSettings(output_dir=args.output_dir, reload_interval_seconds=0))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=FLAGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(url)
            page.wait_for_function("document.getElementById('run').textContent.includes('HR@10')")
            page.fill("#user-id", args.user)
            page.fill("#n", "8")
            page.select_option("#genre", "Drama")
            page.fill("#year-from", "1990")
            page.click("#lookup button[type=submit]")
            page.wait_for_selector("#history:not([hidden]) tbody tr")
            page.fill("#movie-id", args.movie)
            page.fill("#similar-n", "6")
            page.click("#similar-form button[type=submit]")
            page.wait_for_selector("#similar:not([hidden]) tbody tr")
            page.fill("#liked", args.liked)
            page.fill("#new-n", "6")
            page.click("#new-user-form button[type=submit]")
            page.wait_for_selector("#new-user:not([hidden]) tbody tr")
            args.png.write_bytes(page.screenshot(full_page=True))
            browser.close()
    finally:
        server.shutdown()
        thread.join()
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
