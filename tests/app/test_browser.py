"""The demo in a real browser: Debian's chromium driven by Playwright, against `python app.py`.

Loads the page, picks the example, runs, waits for the overlay video, the maps and the plot,
saves a screenshot (kept in pytest's temp folder; set SELM_SCREENSHOT to also copy it there)
and checks the browser console stayed free of errors.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium)"
)


def test_pick_an_example_run_and_see_everything(demo_server, tmp_path):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(demo_server.url, wait_until="load")  # gradio keeps a stream open
            page.locator("#run-button").wait_for(timeout=60_000)
            page.get_by_text("boxes.mp4").first.click()
            page.locator("#video-input video").wait_for(timeout=30_000)
            page.locator("#run-button").click()
            page.locator("#overlay-video video[src]").wait_for(timeout=120_000)
            page.locator("#maps img").nth(7).wait_for(timeout=30_000)
            page.locator("#area-plot .js-plotly-plot").wait_for(timeout=30_000)
            assert page.locator("#maps img").count() >= 8
            screenshot = tmp_path / "demo.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("SELM_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["SELM_SCREENSHOT"])
    assert errors == [], f"browser console errors: {errors}"
