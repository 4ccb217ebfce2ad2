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


def table_titles(page, selector: str) -> list[str]:
    rows = page.locator(f"{selector} tbody tr")
    return [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]


def test_the_run_at_a_glance_and_a_filtered_list_beside_the_users_history(page, base_url, run_id, client):
    page.goto(base_url + "/")
    page.wait_for_function("document.getElementById('run').textContent.includes('HR@10')")
    glance = page.inner_text("#run")
    assert run_id in glance and "test HR@10 0.5000" in glance and "coverage of the top 10 62.5%" in glance
    page.wait_for_selector("#genre option[value=Drama]", state="attached")
    page.fill("#user-id", "7")
    page.fill("#n", "6")
    page.select_option("#genre", "Drama")
    page.fill("#year-from", "1990")
    page.click("#lookup button[type=submit]")
    page.wait_for_selector("#results:not([hidden]) tbody tr")
    page.wait_for_selector("#history:not([hidden]) tbody tr")
    expected = client.get("/v1/users/7/recommendations?n=6&genre=Drama&year_from=1990").json
    assert expected["recommendations"], "the filter left nothing to compare"
    assert table_titles(page, "#results") == [r["title"] for r in expected["recommendations"]]
    rows = page.locator("#results tbody tr")
    assert all("Drama" in rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count()))
    if not expected["complete"]:
        assert "passed the filters" in page.inner_text("#meta")
    history = client.get("/v1/users/7/history").json["history"]
    history_rows = page.locator("#history tbody tr")
    titles = [history_rows.nth(i).locator("td").nth(0).inner_text() for i in range(history_rows.count())]
    assert titles == [m["title"] for m in history]


def test_similar_movies_and_a_new_user_from_liked_movies(page, base_url, client):
    page.goto(base_url + "/")
    page.fill("#movie-id", "6")
    page.fill("#similar-n", "4")
    page.click("#similar-form button[type=submit]")
    page.wait_for_selector("#similar:not([hidden]) tbody tr")
    similar = client.get("/v1/movies/6/similar?n=4").json["similar"]
    assert table_titles(page, "#similar") == [m["title"] for m in similar]
    assert "Movie 6 (1986)" in page.inner_text("#similar-meta")
    # like two of the similar movies with their + buttons, then one more by id
    page.locator("#similar tbody tr").nth(0).locator("button.like").click()
    page.locator("#similar tbody tr").nth(1).locator("button.like").click()
    liked = [similar[0]["movie_id"], similar[1]["movie_id"]]
    assert page.input_value("#liked") == ", ".join(map(str, liked))
    page.fill("#liked", page.input_value("#liked") + ", 7")
    page.fill("#new-n", "5")
    page.click("#new-user-form button[type=submit]")
    page.wait_for_selector("#new-user:not([hidden]) tbody tr")
    expected = client.post("/v1/recommendations", json={"liked": [*liked, 7], "n": 5}).json
    assert table_titles(page, "#new-user") == [m["title"] for m in expected["recommendations"]]
    meta = page.inner_text("#new-meta")
    assert "similar to the ones you liked" in meta and "unknown ids ignored: 7" in meta


def test_screenshot_of_the_page_in_use(page, base_url, tmp_path):
    """A full-page screenshot with every part filled in renders (docs/lookup-page.png, of a real run, is
    made by scripts/screenshot_page.py)."""
    page.set_viewport_size({"width": 1400, "height": 1200})
    page.goto(base_url + "/")
    page.wait_for_function("document.getElementById('run').textContent.includes('HR@10')")
    page.fill("#user-id", "7")
    page.fill("#n", "5")
    page.click("#lookup button[type=submit]")
    page.wait_for_selector("#history:not([hidden]) tbody tr")
    page.fill("#movie-id", "6")
    page.fill("#similar-n", "4")
    page.click("#similar-form button[type=submit]")
    page.wait_for_selector("#similar:not([hidden]) tbody tr")
    page.fill("#liked", "6, 30")
    page.fill("#new-n", "4")
    page.click("#new-user-form button[type=submit]")
    page.wait_for_selector("#new-user:not([hidden]) tbody tr")
    png = page.screenshot(full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "lookup-page.png").write_bytes(png)
    assert len(png) > 20_000  # a blank page is a few KB
