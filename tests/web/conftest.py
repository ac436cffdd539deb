"""The web tests' headless Chromium (Debian's), one per module; skipped with the reason where it cannot
run, except under CI=true."""

from __future__ import annotations

import pytest

from tests.support import browser as ui
from tests.support.engine import write_config


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


@pytest.fixture
def api_app(engine, blast_home, tmp_path, monkeypatch, sandbox):
    """The web app with one Socnet account ("uganda") on the sandbox, and an API key per role:
    (app, {role: key})."""
    from campaigns import apikeys
    from campaigns.settings import reset_settings
    from campaigns.web import balances
    from campaigns.web.app import create_app

    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", "api-test-admin-pass-1")
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 10}})
    reset_settings()
    balances.forget()
    keys = {role: apikeys.create(engine, f"{role} system", role) for role in apikeys.ROLES}
    yield create_app(), keys
    balances.forget()
