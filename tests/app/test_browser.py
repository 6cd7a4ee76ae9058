"""The demo in a real browser: Debian's chromium driven by Playwright, against `python app.py`.

Loads the page, picks the example, runs, waits for the overlay video, the maps and the plot,
saves a screenshot (kept in pytest's temp folder; set SELM_SCREENSHOT to also copy it there)
and checks the browser console stayed free of errors.
"""

from __future__ import annotations

import os
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


def _open(browser, url, errors):
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="load")  # gradio keeps a stream open
    page.locator("#run-button").wait_for(timeout=60_000)
    return page


def _pick_example(page, name="boxes.mp4"):
    page.get_by_text(name).first.click()
    page.locator("#video-input video").wait_for(timeout=30_000)


def screenshots_dir(tmp_path) -> Path:
    """Where the screenshots go: SELM_SCREENSHOTS when set (to look at them), else tmp_path."""
    folder = Path(os.environ.get("SELM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_pick_an_example_run_probe_and_compare(demo_server, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = screenshots_dir(tmp_path)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = _open(browser, demo_server.url, errors)
            assert "no evaluation recorded" in page.locator("#model-info").inner_text()
            _pick_example(page)
            page.locator("#run-button").click()
            page.locator("#overlay-video video[src]").wait_for(timeout=120_000)
            page.locator("#maps img").nth(7).wait_for(timeout=30_000)
            page.locator("#map-legend img").wait_for(timeout=30_000)  # the colour bars
            page.locator("#area-plot .js-plotly-plot").wait_for(timeout=30_000)
            assert page.locator("#maps img").count() >= 8
            page.screenshot(path=str(shots / "run.png"), full_page=True)

            page.locator("#illusion-button").click()  # silent, noise, another clip by default
            page.locator("#illusion-video-3 video[src]").wait_for(timeout=180_000)
            page.locator("#illusion-maps img").nth(27).wait_for(timeout=30_000)
            page.locator("#illusion-legend img").wait_for(timeout=30_000)
            table = page.locator("#illusion-table")
            table.get_by_text("white noise (% segmented)").first.wait_for(timeout=30_000)
            for condition in ("original", "silent", "white noise", "another clip"):
                assert page.locator("#illusion-summary").get_by_text(condition).count() or (
                    condition == "original"
                )
            assert page.locator("#illusion-maps img").count() == 28  # 7 maps x 4 conditions
            assert not page.locator("#illusion-video-4").is_visible()  # no upload: no video
            page.screenshot(path=str(shots / "illusion.png"), full_page=True)

            page.get_by_role("tab", name="Compare checkpoints").click()
            page.get_by_role("button", name="Compare on this clip and audio").click()
            page.locator("#compare-video-b video[src]").wait_for(timeout=180_000)
            page.locator("#compare-maps img").nth(13).wait_for(timeout=30_000)
            page.locator("#compare-legend img").wait_for(timeout=30_000)
            for elem, name in (
                ("#compare-video-a", "selm-tiny-0"),
                ("#compare-video-b", "selm-tiny-1"),
            ):
                assert name in page.locator(elem).inner_text()  # videos named by checkpoint
            assert "no evaluation recorded" in page.locator("#compare-eval-a").inner_text()
            page.screenshot(path=str(shots / "compare.png"), full_page=True)
        finally:
            browser.close()
    for name in ("run.png", "illusion.png", "compare.png"):
        assert (shots / name).stat().st_size > 10_000
    assert errors == [], f"browser console errors: {errors}"
