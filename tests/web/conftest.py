"""The web tests' headless Chromium (Debian's), one per module; skipped with the reason where it cannot
run, except under CI=true."""

from __future__ import annotations

import pytest

from tests.support import browser as ui


@pytest.fixture(scope="module")
def chromium():
    missing = ui.chromium_missing()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "the playwright package is not installed (pip install -e .[dev])"
    if missing:
        if ui.must_run_browser_tests():
            pytest.fail(f"CI=true and the browser tests cannot run: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")

    with sync_playwright() as playwright:
        browser = ui.launch_chromium(playwright)
        yield browser
        browser.close()
