"""The operator's pages in headless Chromium (Debian's, driven by Playwright): log in, upload, fix the
phone column mapping, launch, watch the campaign finish, export, accounts; and the refusals a user sees.

The app is served by uvicorn on a loopback port, with an in-process worker on the embedded default
(filesystem broker) sending to the sandbox gateways. Screenshots of every page go to test-artifacts/browser/.
"""

from __future__ import annotations

import csv
import re

import pytest

from campaigns.settings import reset_settings
from tests.support import browser as ui
from tests.support.engine import write_config
from tests.support.sandbox import SOCNET_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_PASSWORD = "browser-admin-pass-4d1e"
RATE = 2  # messages per second: the campaign runs for seconds, long enough to be seen running
PEOPLE = 10
TEMPLATE = "Hello {{ name }}, your code is {{ code }}"


@pytest.fixture
def web(database_url, sandbox, tmp_path, monkeypatch):
    """The web app with one admin and one sandbox Socnet account, served on a free port."""
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": RATE}})
    reset_settings()
    from campaigns.web.app import create_app

    with ui.WebServer(create_app()) as server:
        yield server


@pytest.fixture
def page(chromium, web):
    page = ui.new_page(chromium, web.url)
    yield page
    page.context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_upload_map_launch_watch_export(page, sandbox, tmp_path):
    from playwright.sync_api import expect

    from workers.embedded import EmbeddedWorker

    # given a list whose detected phone column is the shared office landline, one recipient the gateway
    # answers "not on WhatsApp", and a worker sending for the embedded default
    contacts = ui.write_office_list(tmp_path / "office.csv", PEOPLE)
    not_on_whatsapp = contacts.personal[-1]
    sandbox.knobs("socnet", not_on_whatsapp=[not_on_whatsapp])
    with EmbeddedWorker(concurrency=4):
        # when the operator logs in
        page.goto("/login")
        ui.screenshot(page, "login")
        ui.log_in(page, "admin", ADMIN_PASSWORD)
        # then the campaign list greets them
        expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()

        # when they upload the list
        page.get_by_role("link", name="New campaign").click()
        ui.screenshot(page, "upload")
        ui.upload_contacts(page, contacts.path)
        # then the preview took "Office Phone" as the phone column: one valid number, the rest duplicates
        expect(page.get_by_role("heading", name="office.csv")).to_be_visible()
        expect(page.get_by_label("Phone column")).to_have_value("Office Phone")
        expect(page.get_by_text(re.compile(r"Rows 11 · valid 1 · duplicates 10 · invalid 0"))).to_be_visible()
        expect(page.get_by_role("button", name="Launch", exact=True)).to_be_disabled()

        # when they map the phone column to "Personal" and write the template
        ui.preview(page, phone_column="Personal", template=TEMPLATE)
        # then the report and the first recipients' texts follow the new mapping
        expect(page.get_by_label("Phone column")).to_have_value("Personal")
        expect(page.get_by_text(re.compile(r"Rows 11 · valid 10 · duplicates 0 · invalid 1"))).to_be_visible()
        expect(page.get_by_role("columnheader", name="Personal (phone)")).to_be_visible()
        expect(page.get_by_text("Hello Person 0, your code is =cmd|' /C calc'!A0")).to_be_visible()
        expect(page.get_by_text("Hello Person 1, your code is C-001")).to_be_visible()
        ui.screenshot(page, "preview")

        # when they launch it
        ui.launch(page, "Office list")
        # then the campaign page shows it sending, live
        expect(page.get_by_role("heading", name=re.compile("Office list"))).to_be_visible()
        ui.wait_until_sending(page, timeout_ms=30_000)
        # and its progress bar moves while it sends, with a finishing time (at 2 messages/s, seconds)
        bar = page.get_by_role("progressbar")
        expect(bar).to_have_attribute("max", str(PEOPLE))
        page.wait_for_function("() => { const bar = document.getElementById('progress');"
                               " return bar.value > 0 && bar.value < bar.max; }", timeout=30_000)
        expect(page.locator("#eta")).to_have_text(re.compile(r"^done in about \d+ s$"))
        ui.screenshot(page, "campaign-running")
        # and, without a reload, finished with every row accounted for
        expect(ui.campaign_status(page)).to_have_text("finished", timeout=90_000)
        expect(bar).to_have_attribute("max", str(PEOPLE))
        page.wait_for_function(f"() => document.getElementById('progress').value === {PEOPLE}", timeout=10_000)
        funnel = {row.get_attribute("data-stage"): row.get_by_role("cell").all_inner_texts()
                  for row in page.locator("#funnel tr[data-stage]").all()}
        assert funnel == {"submitted": [str(PEOPLE - 1), "100.0%"], "sent": ["0", "0.0%"],
                          "delivered": ["0", "0.0%"], "read": ["0", "0.0%"]}
        expect(ui.state_count(page, "submitted")).to_have_text(str(PEOPLE - 1))
        expect(page.locator("#total")).to_have_text(str(contacts.rows))
        shown = {state: int(ui.state_count(page, state).inner_text())
                 for state in ("pending", "queued", "sending", "submitted", "failed", "skipped", "unknown")}
        assert shown == {"pending": 0, "queued": 0, "sending": 0, "submitted": PEOPLE - 1, "failed": 1,
                         "skipped": 1, "unknown": 0}
        # and the split per account (one account here) follows the same counts as they change
        expect(page.locator('#accounts td[data-account-state="submitted"]')).to_have_text(
            str(PEOPLE - 1))
        failures = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="code", exact=True))
        expect(failures.get_by_role("row")).to_have_count(2)  # the header and one failure group
        ui.screenshot(page, "campaign-finished")

        # when they export the results
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Export results (CSV)").click()
        download = download_info.value
        exported = ui.ARTIFACTS / download.suggested_filename
        download.save_as(exported)

    # then the CSV has one row per recipient, each in the state the page showed, and no live formula
    with exported.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == contacts.rows
    by_phone = {row["phone"]: row for row in rows}
    for number in contacts.personal[:-1]:
        assert by_phone[f"'{number}"]["state"] == "submitted"
    assert by_phone[f"'{not_on_whatsapp}"]["state"] == "failed"
    formula_row = next(row for row in rows if row["row_number"] == str(contacts.formula_row))
    assert (formula_row["state"], formula_row["phone"]) == ("skipped", "")
    assert formula_row["raw_phone"] == "'" + ui.FORMULA
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())

    # when they open the accounts page
    page.get_by_role("link", name="Accounts").click()
    # then the sandbox account is listed with its rate, and no credential
    account = page.get_by_role("row").filter(has_text="uganda")
    expect(account).to_contain_text("socnet")
    expect(account.get_by_role("cell").nth(2)).to_have_text(re.compile(rf"^{RATE}(\.0+)?$"))  # per second
    assert SOCNET_KEY not in page.content()
    ui.screenshot(page, "accounts")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wrong_password_and_non_csv_upload_are_explained(page, tmp_path):
    from playwright.sync_api import expect

    # when the operator logs in with a wrong password
    ui.log_in(page, "admin", "not-the-password")
    # then the login form says so and no page opens
    expect(page.get_by_text("Wrong user name or password.")).to_be_visible()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    ui.screenshot(page, "login-error")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))

    # given a PDF where a contact list should be
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"%PDF-1.4\n% not a contact list\n")
    # when the operator, logged in, uploads it
    ui.log_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="New campaign").click()
    ui.upload_contacts(page, notes)
    # then the upload page explains what it takes, and no preview opens
    expect(page.get_by_text("notes.pdf: unsupported type (use .csv or .xlsx)")).to_be_visible()
    expect(page.get_by_role("heading", name="New campaign: upload contacts")).to_be_visible()
    ui.screenshot(page, "upload-error")


def action_button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_buttons_follow_the_status_live_and_a_stale_press_is_explained(page, engine):
    from playwright.sync_api import expect

    from campaigns import lifecycle
    from tests.support.factories import make_campaign, make_messages

    # given a running campaign (no worker: it stays running) and the operator on its page
    campaign = make_campaign(engine, account="uganda", name="Live buttons", status="running")
    make_messages(engine, campaign.id, 3)
    ui.log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/campaigns/{campaign.id}")
    # then it offers pause and cancel only
    expect(action_button(page, "pause")).to_be_visible()
    expect(action_button(page, "cancel")).to_be_visible()
    expect(action_button(page, "resume")).to_be_hidden()
    expect(action_button(page, "retry failed")).to_be_hidden()

    # when someone else pauses it (the command line), then without a reload the page offers resume instead
    lifecycle.pause(campaign.id)
    expect(ui.campaign_status(page)).to_have_text("paused")
    expect(action_button(page, "resume")).to_be_visible()
    expect(action_button(page, "pause")).to_be_hidden()
    # when the operator resumes it, then pause is back
    action_button(page, "resume").click()
    expect(page.get_by_text("resume: done")).to_be_visible()
    expect(action_button(page, "pause")).to_be_visible()
    expect(action_button(page, "resume")).to_be_hidden()
    ui.screenshot(page, "campaign-buttons-running")

    # given the page stops hearing from the server (its polls fail) while the campaign is cancelled elsewhere
    with page.expect_event("requestfailed", lambda request: request.url.endswith("/progress.json")):
        page.route("**/progress.json", lambda route: route.abort())  # polls are sequential: none in flight after
    lifecycle.cancel(campaign.id)
    # when the operator presses the pause the stale page still shows
    action_button(page, "pause").click()
    # then the campaign page explains the refusal, shows the true status and no action, at its own address
    expect(page.get_by_role("alert")).to_have_text(
        f"Could not pause: campaign {campaign.id} is cancelled; cannot make it paused. "
        "The buttons below are those it allows now.")
    expect(ui.campaign_status(page)).to_have_text("cancelled")
    for name in ("pause", "resume", "cancel", "retry failed"):
        expect(action_button(page, name)).to_be_hidden()
    expect(page.get_by_role("link", name="Export results (CSV)")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/campaigns/{campaign.id}$"))
    ui.screenshot(page, "campaign-refused-action")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_chart_has_a_scale_over_the_campaigns_own_minutes(page, engine):
    from datetime import timedelta

    from playwright.sync_api import expect

    from campaigns.models import Message, utcnow
    from tests.support.factories import make_campaign, make_messages

    # given a campaign that sent for eight minutes two hours ago: 3, then 10, then 5 messages a minute
    start = (utcnow() - timedelta(hours=2)).replace(second=0, microsecond=0)
    campaign = make_campaign(engine, account="uganda", name="Short one", status="finished", started_at=start,
                             finished_at=start + timedelta(minutes=7, seconds=20))
    sent = {0: 3, 3: 10, 7: 5}
    ids = iter(make_messages(engine, campaign.id, sum(sent.values()), state="submitted"))
    with engine.begin() as connection:
        for minute, count in sent.items():
            for second in range(count):
                connection.execute(Message.__table__.update().where(Message.id == next(ids))
                                   .values(submitted_at=start + timedelta(minutes=minute, seconds=second)))
    # when the operator opens its page
    ui.log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/campaigns/{campaign.id}")
    chart = page.locator("#chart")
    # then the chart has one bar per minute of the campaign, wide, not the last hour's sixty slivers
    bars = chart.locator("rect")
    expect(bars).to_have_count(8)
    first, last = clock(start), clock(start + timedelta(minutes=7))
    # and a scale: the top of the y axis, and the first and last minutes in UTC
    expect(chart.locator("text", has_text="/min")).to_have_text("10/min")
    expect(chart.locator("text.start-time")).to_have_text(first)
    expect(chart.locator("text.end-time")).to_have_text(f"{last} UTC")
    chart_box = chart.bounding_box()
    widths = [bars.nth(i).bounding_box()["width"] for i in range(8)]
    heights = [bars.nth(i).bounding_box()["height"] for i in range(8)]
    assert min(widths) > chart_box["width"] / 15
    assert heights[3] == pytest.approx(2 * heights[7], rel=0.02) and heights[1] == 0
    # and a text alternative: the summary the image is described by, and the minutes as a table
    summary = f"{first} to {last} UTC: 18 accepted, at most 10 in a minute ({clock(start + timedelta(minutes=3))})."
    expect(page.locator("#chart-summary")).to_have_text(summary)
    expect(chart).to_have_attribute("aria-label", f"Messages accepted by the gateway per minute. {summary}")
    page.get_by_text("The chart as a table").click()
    rows = page.locator("#chart-table").get_by_role("row")
    expect(rows).to_have_count(9)
    expect(rows.nth(4)).to_have_text(re.compile(rf"{clock(start + timedelta(minutes=3))}\s*10"))
    # and a finished campaign with nothing failed offers no action
    for name in ("pause", "resume", "cancel", "retry failed"):
        expect(action_button(page, name)).to_be_hidden()
    ui.screenshot(page, "campaign-chart")


def clock(moment) -> str:
    """HH:MM of a UTC time, as the chart labels it."""
    return moment.strftime("%H:%M")
