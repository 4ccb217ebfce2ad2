"""The HTML page at `/` in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python
package; no browser is downloaded). The app runs on a loopback werkzeug server in a thread."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("chromium") is None,
    reason="/usr/bin/chromium is absent: apt-get install chromium (.ci/run does)",
)


@pytest.fixture
def base_url(output_dir, run_id):
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            context = browser.new_context()
            external = []
            context.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("http://127.0.0.1")
                    else (external.append(route.request.url), route.abort())
                ),
            )
            page = context.new_page()
            yield page
            assert external == [], f"the page fetched non-local resources: {external}"
        finally:
            browser.close()


def test_a_person_types_a_user_id_and_sees_titles_and_the_run(page, base_url, run_id, client):
    page.goto(base_url + "/")
    page.fill("#user-id", "7")
    page.fill("#n", "5")
    page.click("button[type=submit]")
    page.wait_for_selector("#results:not([hidden]) tbody tr")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 5
    expected = client.get("/v1/users/7/recommendations?n=5").json["recommendations"]
    titles = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(5)]
    assert titles == [r["title"] for r in expected]
    meta = page.inner_text("#meta")
    assert run_id in meta and "personal recommendations" in meta


def test_the_page_shows_the_fallback_and_errors(page, base_url):
    page.goto(base_url + "/")
    page.fill("#user-id", "4242")
    page.click("button[type=submit]")
    page.wait_for_selector("#results:not([hidden]) tbody tr")
    assert "popular movies" in page.inner_text("#meta")
    page.fill("#n", "999")
    page.click("button[type=submit]")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "n must be between 1 and 20" in page.inner_text("#error")
    assert page.locator("#results").is_hidden()
