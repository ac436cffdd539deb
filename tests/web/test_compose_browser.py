"""The compose page's script in headless Chromium: the preview follows the typing, markup in a cell stays
text, the extras follow the account, and Launch takes what was typed without pressing Preview."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns.models import Campaign
from campaigns.settings import reset_settings
from tests.support import browser as ui
from tests.support.engine import write_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_PASSWORD = "compose-browser-pass-2b7a"
MARKUP = "<img src=x onerror=window.pwned=1>"


@pytest.fixture
def page(chromium, database_url, sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 5},
                                                    "india": {"provider": "httpapi", "rate": 5}})
    reset_settings()
    from campaigns.web.app import create_app

    with ui.WebServer(create_app()) as server:
        page = ui.new_page(chromium, server.url)
        yield page
        page.context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_preview_follows_typing_and_launch_takes_it(page, engine, tmp_path):
    from playwright.sync_api import expect

    # given an uploaded list whose first name is markup
    contacts = tmp_path / "people.csv"
    contacts.write_text(f"name,phone\n{MARKUP},+256701234567\nCid,+256772000001\n", encoding="utf-8")
    ui.log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/upload")
    ui.upload_contacts(page, contacts)
    area = page.locator("#preview-area")
    # when the operator types a template, without pressing Preview
    page.get_by_role("textbox", name="Template").press_sequentially("Hi {{ name }}", delay=20)
    # then the first recipients' texts appear, the markup as text that never ran
    expect(area.get_by_text(f"Hi {MARKUP}", exact=True)).to_be_visible()
    expect(area.get_by_text("Hi Cid", exact=True)).to_be_visible()
    expect(area).to_contain_text("/ 4096 characters")
    assert page.evaluate("window.pwned") is None
    # when a variable is misspelt, then each recipient says which one is missing
    page.get_by_role("textbox", name="Template").fill("Hi {{ nam }}")
    expect(area.get_by_text("missing variable: nam").first).to_be_visible()
    # when the HTTP API account is chosen, then its kinds and the media field appear; buttons on demand
    buttons = page.get_by_role("group", name="Buttons")
    expect(page.get_by_label("Media URL")).to_be_hidden()
    page.get_by_label("Account").select_option("india")
    expect(page.get_by_label("Media URL")).to_be_visible()
    expect(buttons).to_be_hidden()
    page.get_by_label("Message kind").select_option("buttons")
    expect(buttons).to_be_visible()
    page.get_by_label("Buttons, one a line").fill("Yes\nNo")
    page.get_by_role("textbox", name="Template").fill("Hello {{ name }}")
    expect(area.get_by_text("Hello Cid", exact=True)).to_be_visible()
    expect(area).to_contain_text("/ 1024 characters")
    # when they launch straight away
    ui.launch(page, "typed")
    # then the campaign has the template and buttons as typed, on the chosen account
    expect(page.get_by_role("heading", name="typed")).to_be_visible()
    with engine.connect() as connection:
        row = connection.execute(select(Campaign.template, Campaign.account_name, Campaign.options)).one()
    assert (row.template, row.account_name) == ("Hello {{ name }}", "india")
    assert '"buttons": ["Yes", "No"]' in row.options
