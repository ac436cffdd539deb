"""The compose page's newer parts over HTTP (TestClient), on SQLite and Postgres, against the real gateway
sandbox: the live preview's JSON, the extras each gateway offers, test sends, reminder schedules from the
page, and balances on the accounts page."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from campaigns import reminders
from campaigns.models import Campaign, Message, Schedule
from campaigns.settings import reset_settings
from campaigns.web import launches
from tests.support.engine import write_config
from tests.support.waiting import wait_until
from tests.support.web import ADMIN_PASSWORD, csrf_of, log_in, upload

HOOK_SECRET = "hook-secret-compose-8c1f"
XSS = '<script>alert("x")</script>'
CONTACTS = (f"Name,Mobile No\n{XSS},+256701234567\nBob,12\nCid,+256772000001\n").encode()
ACCOUNTS = {
    "uganda": {"provider": "socnet", "rate": 10},
    "india": {"provider": "httpapi", "rate": 10},
    "aussie": {"provider": "smsglobal", "rate": 10},
    "russia": {"provider": "devino", "rate": 10},
}


@pytest.fixture
def client(engine, blast_home, tmp_path, monkeypatch, sandbox):
    """A web app with one admin and one account per gateway, all on the sandbox."""
    from campaigns.web import balances
    from campaigns.web.app import create_app

    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    accounts = {name: {**spec, "webhook_secret": "${TEST_HOOK_SECRET}"} for name, spec in ACCOUNTS.items()}
    write_config(tmp_path / "blast.toml", sandbox, accounts)
    reset_settings()
    balances.forget()
    with TestClient(create_app()) as test_client:
        yield test_client
    balances.forget()


@pytest.fixture
def composing(client):
    """A logged-in operator with the contact list uploaded: (csrf token, the compose page's URL)."""
    token = log_in(client)
    return token, uploaded(client, token)


def uploaded(client, token: str) -> str:
    """The compose page's URL of a fresh upload of the contact list (a launch deletes its upload)."""
    answer = upload(client, token, "people.csv", CONTACTS)
    assert answer.status_code == 303
    return answer.headers["location"]


def preview_json(client, url: str, token: str, **fields):
    form = {"account": "uganda", "region": "UG", "phone_column": "Mobile No", "csrf_token": token, **fields}
    return client.post(url + "/preview.json", data=form)


def test_live_preview_renders_the_first_recipients_escaped(client, composing):
    token, url = composing
    # when the template is typed (the page posts it as a form)
    answer = preview_json(client, url, token, template="Hi {{ name }}")
    # then the first valid recipients come back rendered, with the gateway's length check
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["problem"] is None and (body["limit"], body["unit"]) == (4096, "characters")
    assert [(p["phone"], p["text"]) for p in body["previews"]] == [
        ("+256701234567", f"Hi {XSS}"), ("+256772000001", "Hi Cid")]
    assert body["previews"][0]["length"] == len(f"Hi {XSS}")
    # and the markup in a cell is never raw in the answer's text (the page writes it as text, too)
    assert "<script>" not in answer.text and "\\u003cscript\\u003e" in answer.text
    html = client.get(url, params={"template": "Hi {{ name }}", "account": "uganda"}).text
    assert "<script>alert" not in html and "Hi &lt;script&gt;alert" in html


def test_live_preview_names_template_errors_inline(client, composing):
    token, url = composing
    # when the template reads a column that does not exist, each recipient says which variable is missing
    missing = preview_json(client, url, token, template="Hi {{ nickname }}").json()
    assert {p["skip_reason"] for p in missing["previews"]} == {"missing variable: nickname"}
    assert all(p["text"] is None for p in missing["previews"])
    # when the template does not parse, the problem names the line
    broken = preview_json(client, url, token, template="Hi\n{% if name %}").json()
    assert broken["previews"] == [] and broken["problem"].startswith("template does not parse: line 2")


def test_live_preview_checks_each_gateways_length(client, composing):
    token, url = composing
    long_text = "é" * 1500  # 1500 characters, 3000 bytes
    # when the same long text is previewed for three gateways
    socnet = preview_json(client, url, token, template=long_text).json()
    httpapi = preview_json(client, url, token, template=long_text, account="india").json()
    buttons = preview_json(client, url, token, template=long_text, account="india", kind="buttons",
                           buttons="Yes\nNo").json()
    # then each measures it in its own unit against its own limit
    assert socnet["previews"][0]["skip_reason"] is None
    assert (httpapi["limit"], httpapi["unit"], httpapi["previews"][0]["length"]) == (2000, "bytes", 3000)
    assert httpapi["previews"][0]["skip_reason"] == "text too long for httpapi: 3000 bytes, limit 2000"
    assert (buttons["limit"], buttons["unit"]) == (1024, "characters")
    assert buttons["previews"][0]["skip_reason"] == "text too long for httpapi: 1500 characters, limit 1024"


def test_live_preview_needs_login_and_csrf(client, composing):
    token, url = composing
    assert preview_json(client, url, "forged", template="Hi").status_code == 403
    client.cookies.clear()
    assert preview_json(client, url, token, template="Hi").status_code == 401


def kinds_offered(html: str) -> list[str]:
    select_kind = re.search(r'<select name="kind".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="(\w+)"', select_kind)


def test_extras_are_offered_only_where_the_gateway_supports_them(client, composing):
    token, url = composing
    # given the compose page for a Socnet account and for an HTTP API account
    socnet = client.get(url, params={"account": "uganda"}).text
    httpapi = client.get(url, params={"account": "india"}).text
    # then Socnet offers plain text only (its media field is hidden and not submitted), the HTTP API more
    assert kinds_offered(socnet) == ["text"]
    assert re.search(r'<input name="media_url"[^>]*disabled', socnet)
    assert kinds_offered(httpapi) == ["text", "media", "buttons", "list"]
    assert not re.search(r'<input name="media_url"[^>]*disabled', httpapi)
    # and the script learns every account's kinds, for when the operator switches accounts
    features = json.loads(re.search(r"data-features='([^']*)'", httpapi).group(1).replace("&#34;", '"'))
    assert features["aussie"]["kinds"] == ["text", "media"] and features["uganda"]["kinds"] == ["text"]
    # when extras the gateway does not offer, or its document refuses, are asked for, the preview says why
    refused = preview_json(client, url, token, template="Hi", kind="buttons", buttons="Yes").json()
    assert refused["problem"] == "socnet accounts take text messages here, not buttons"
    too_many = preview_json(client, url, token, template="Hi", account="india", kind="buttons",
                            buttons="A\nB\nC\nD").json()
    assert too_many["problem"] == "httpapi: 4 buttons, at most 3 at a time"
    no_url = preview_json(client, url, token, template="Hi", account="aussie", kind="media").json()
    assert no_url["problem"] == "a media message needs its media URL"


def test_launch_with_buttons_and_with_media_stores_the_sending_options(client, composing, engine):
    token, url = composing
    common = {"csrf_token": token, "template": "Hi {{ name }}", "phone_column": "Mobile No", "region": "UG"}
    # when a buttons campaign is launched on the HTTP API account and a media one on SMSGlobal
    buttons = client.post(url + "/launch", follow_redirects=False, data={
        **common, "account": "india", "name": "with buttons", "kind": "buttons",
        "buttons": "Yes\nSee more | https://example.com/offer", "footer": "Reply any time"})
    media = client.post(uploaded(client, token) + "/launch", follow_redirects=False, data={
        **common, "account": "aussie", "name": "with media", "media_url": "https://example.com/a.jpg"})
    # and buttons on a gateway without them are asked for
    refused = client.post(uploaded(client, token) + "/launch", follow_redirects=False, data={
        **common, "account": "uganda", "name": "refused", "kind": "buttons", "buttons": "Yes"})
    # then the campaigns carry what the send path gives the gateway client
    assert buttons.status_code == 303 and media.status_code == 303
    with engine.connect() as connection:
        rows = {name: (options, media_url) for name, options, media_url in connection.execute(
            select(Campaign.name, Campaign.options, Campaign.media_url))}
    assert json.loads(rows["with buttons"][0]) == {
        "kind": "buttons", "footer": "Reply any time",
        "buttons": ["Yes", {"type": "url", "text": "See more", "value": "https://example.com/offer"}]}
    assert rows["with buttons"][1] is None
    assert json.loads(rows["with media"][0]) == {} and rows["with media"][1] == "https://example.com/a.jpg"
    assert refused.status_code == 400 and "socnet accounts take text" in refused.text
    assert "refused" not in rows


def test_send(client, token: str, url: str, **fields):
    form = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "phone_column": "Mobile No",
            "region": "UG", **fields}
    return client.post(url + "/test-send", data=form)


test_send.__test__ = False  # a helper, not a test


def test_test_send_goes_through_the_gateway_and_not_into_tallies(client, composing, sandbox, engine):
    token, url = composing
    # when the second valid recipient's message is sent to the operator's own number (national form)
    answer = test_send(client, token, url, test_phone="0772 999 111", test_row="2")
    # then the sandbox gateway accepted exactly one message for that number, and the page says so
    assert answer.status_code == 200
    assert "Test to +256772999111: accepted by the gateway" in answer.text
    assert sandbox.account_stats("socnet")["accepted_per_recipient"] == {"+256772999111": 1}
    # and no campaign or message row was written
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(Campaign)).scalar() == 0
    # and the verdict is shown once only
    assert "Test to +256772999111" not in client.get(url).text


def test_test_send_shows_the_gateways_reason_when_refused(client, composing, sandbox):
    token, url = composing
    # given a sandbox account out of credit
    sandbox.knobs("httpapi", quota=0)
    # when a test send is made through it, then the gateway's reason is shown, and nothing was accepted
    html = test_send(client, token, url, account="india", test_phone="+256772999111").text
    assert "Test to +256772999111: failed (quota, 05-Quota expiry)" in html
    assert sandbox.account_stats("httpapi").get("accepted", 0) == 0


def test_test_send_of_buttons_is_accepted_by_the_gateway(client, composing, sandbox):
    token, url = composing
    html = test_send(client, token, url, account="india", kind="buttons", buttons="Yes\nNo",
                     footer="Reply", test_phone="+256772999111").text
    assert "accepted by the gateway" in html
    assert sandbox.account_stats("httpapi")["accepted_per_recipient"] == {"+256772999111": 1}


def test_test_send_refuses_a_bad_number_or_a_skipped_recipient(client, composing, sandbox):
    token, url = composing
    bad_number = test_send(client, token, url, test_phone="12").text
    assert "Test to 12: failed (not sent): &#39;12&#39; is not a phone number" in bad_number
    missing = test_send(client, token, url, template="Hi {{ nickname }}", test_phone="+256772999111").text
    assert "recipient 1 would be skipped: missing variable: nickname" in missing
    assert sandbox.account_stats("socnet").get("accepted", 0) == 0


def test_test_send_takes_a_slot_from_the_shared_rate_limiter(client, composing, sandbox, redis_url, monkeypatch,
                                                             tmp_path):
    # given an account allowed one message every 20 seconds, limited through Redis
    token, url = composing
    name = f"slow_{uuid.uuid4().hex[:8]}"
    write_config(tmp_path / "blast.toml", sandbox, {name: {"provider": "socnet", "rate": 0.05}})
    monkeypatch.setenv("BLAST_REDIS_URL", redis_url)
    reset_settings()
    # when two test sends are made one after the other
    first = test_send(client, token, url, account=name, test_phone="+256772999111").text
    second = test_send(client, token, url, account=name, test_phone="+256772999111").text
    # then the first went out, and the second was refused by the limiter without reaching the gateway
    assert "accepted by the gateway" in first
    assert f"account {name} is sending at its full rate" in second
    assert sandbox.account_stats("socnet")["accepted_per_recipient"] == {"+256772999111": 1}


def test_reminder_schedule_from_the_page_listed_and_removed(client, composing, engine):
    token, url = composing
    form = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "region": "UG"}
    # when a weekly reminder at 09:00 Kampala time is scheduled from the compose page
    answer = client.post(url + "/schedule", follow_redirects=False, data={
        **form, "schedule_name": "monday nudge", "schedule_cron": "0 9 * * 1",
        "schedule_timezone": "Africa/Kampala"})
    # then it is listed with its next firing on a Monday at 09:00 in its own time zone
    assert answer.status_code == 303 and answer.headers["location"].startswith("/schedules")
    listing = client.get("/schedules").text
    assert "monday nudge" in listing and "Africa/Kampala" in listing and "people.csv" not in listing
    next_fire = re.search(r"(\d{4}-\d\d-\d\d) 09:00 EAT", listing)
    assert next_fire is not None
    with engine.connect() as connection:
        schedule = connection.execute(select(Schedule)).one()
    assert (schedule.kind, schedule.cron, schedule.template, schedule.enabled) == (
        "cron", "0 9 * * 1", "Hi {{ name }}", True)
    # when it is removed without the form's token, nothing changes; with it, it is disabled
    assert client.post(f"/schedules/{schedule.id}/remove").status_code == 403
    removed = client.post(f"/schedules/{schedule.id}/remove", data={"csrf_token": token})
    assert removed.status_code == 200 and "none (removed or done)" in removed.text
    with engine.connect() as connection:
        assert connection.execute(select(Schedule.enabled)).scalar() is False


def test_reminder_schedule_refusals_are_explained_on_the_compose_page(client, composing, engine):
    token, url = composing
    form = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "region": "UG"}
    # a one-off time in the past, a bad cron, and a phone column the file does not have
    past = client.post(url + "/schedule", data={**form, "schedule_run_at": "2020-01-01T09:00"}).text
    cron = client.post(url + "/schedule", data={**form, "schedule_cron": "every monday"}).text
    mapped = client.post(url + "/schedule", data={**form, "schedule_cron": "0 9 * * 1", "phone_column": "Nope"}).text
    assert "the one-off time is in the past" in past
    assert "&#39;every monday&#39; is not a cron expression" in cron
    assert "no column &#39;Nope&#39; (headers: Name, Mobile No)" in mapped
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Schedule)).scalar() == 0


def test_one_off_schedule_time_is_read_in_its_time_zone(client, composing, engine):
    token, url = composing
    client.post(url + "/schedule", data={"csrf_token": token, "account": "uganda", "template": "Hi",
                                         "schedule_run_at": "2099-06-01T09:00", "schedule_timezone": "Asia/Tokyo"})
    with engine.connect() as connection:
        run_at = connection.execute(select(Schedule.run_at)).scalar()
    assert (run_at.replace(tzinfo=None).isoformat()) == "2099-06-01T00:00:00"  # 09:00 JST is 00:00 UTC


def test_accounts_page_shows_the_balance_where_the_gateway_tells_it(client, sandbox):
    # given an HTTP API account with 42 messages of quota left and an SMSGlobal one with 7
    log_in(client)
    sandbox.knobs("httpapi", quota=42)
    sandbox.knobs("smsglobal", quota=7)
    # when the accounts page is shown
    html = client.get("/accounts").text
    # then each gateway's own words are shown, and gateways without a balance say so
    rows = {name: row for name, row in re.findall(r"<td>(\w+)</td><td>\w+</td>(.*?)</tr>", html, re.S)}
    assert "quota: 42" in rows["india"] and "status: active" in rows["india"]
    assert "balance: 7.0" in rows["aussie"] and "currency: AUD" in rows["aussie"]
    assert "not offered by socnet" in rows["uganda"] and "not offered by devino" in rows["russia"]
    # and the balance is kept for a while instead of asking the gateway on every view
    sandbox.knobs("httpapi", quota=41)
    assert "quota: 42" in client.get("/accounts").text


def test_no_secret_appears_on_the_new_pages(client, composing, sandbox):
    token, url = composing
    from workers.sandbox.harness import DEFAULT_CREDENTIALS

    secrets = [ADMIN_PASSWORD, HOOK_SECRET] + [value for credentials in DEFAULT_CREDENTIALS.values()
                                               for value in credentials.values() if len(str(value)) >= 8]
    client.post(url + "/schedule", data={"csrf_token": token, "account": "india", "template": "Hi",
                                         "schedule_cron": "0 9 * * *"})
    client.post(url + "/schedule", data={"csrf_token": token, "account": "aussie", "template": "Hi",
                                         "schedule_cron": "0 9 * * *", "media_url": "https://example.com/a.jpg",
                                         "phone_column": "Mobile No", "quiet_hours": "21:00-08:00"})
    bodies = [client.get(url, params={"account": account, "template": "Hi {{ name }}",
                                      "quiet_hours": "21:00-08:00"}).text for account in ACCOUNTS]
    bodies += [preview_json(client, url, token, template="Hi", account=account).text for account in ACCOUNTS]
    bodies += [test_send(client, token, url, account=account, test_phone="+256772999111").text
               for account in ACCOUNTS]
    bodies += [client.get("/schedules").text, client.get("/accounts").text]
    assert csrf_of(bodies[0])
    for body in bodies:
        for secret in secrets:
            assert str(secret) not in body


def test_big_upload_is_read_by_a_worker_and_its_page_follows_the_job(client, composing, monkeypatch, engine):
    from workers.embedded import EmbeddedWorker

    token, url = composing
    # given every upload counts as big, and no worker running yet
    monkeypatch.setattr(launches, "BACKGROUND_BYTES", 0)
    form = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "phone_column": "Mobile No",
            "region": "UG", "name": "big one"}
    # when it is launched, then the answer comes at once with the launch's own page
    answer = client.post(url + "/launch", follow_redirects=False, data=form)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/launches/")
    job_url = answer.headers["location"]
    campaign_id = int(job_url.rsplit("/", 1)[1])
    # and that page counts the rows so far and reloads itself, and the draft's page says its list is being read
    html = client.get(job_url).text
    assert "0 rows so far" in html and 'http-equiv="refresh"' in html and "waiting for one" in html
    assert "Its contact list is being read" in client.get(f"/campaigns/{campaign_id}").text

    def finished():
        progress = client.get(job_url, follow_redirects=False)
        return progress.headers["location"] if progress.status_code == 303 else None

    # when a worker runs, then the page leads to the campaign page once every row is in
    with EmbeddedWorker(pace=False, concurrency=2):
        campaign_url = wait_until(finished, timeout=30, message="the worker to read the list")
        assert campaign_url == f"/campaigns/{campaign_id}?notice=launched"
        report = client.get(f"/campaigns/{campaign_id}/progress.json").json()
        assert report["name"] == "big one" and report["total"] == 3 and report["counts"]["skipped"] == 1
        assert report["status"] == "running"
        # and a launch whose file cannot be read is explained on its page, naming the operator's file
        failing = client.post(uploaded(client, token) + "/launch", follow_redirects=False,
                              data={**form, "phone_column": "Nope"})
        failing_url = failing.headers["location"]
        wait_until(lambda: client.get(failing_url).status_code == 400, timeout=30, message="the failure")
        html = client.get(failing_url).text
        assert "Nope" in html and "people.csv" in html and "Retry" in html
        # when it is discarded, then its draft is cancelled and the page says so
        failed_id = int(failing_url.rsplit("/", 1)[1])
        client.post(failing_url + "/discard", data={"csrf_token": token})
        assert client.get(f"/campaigns/{failed_id}/progress.json").json()["status"] == "cancelled"
        assert "discarded" in client.get(failing_url).text
    assert client.get("/launches/999999").status_code == 404


# ---------------------------------------------------------------- quiet hours, relative schedules, mapped extras


def aware(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives it back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_launch_with_quiet_hours_stores_the_window_on_the_campaign(client, composing, engine):
    token, url = composing
    common = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "phone_column": "Mobile No",
              "region": "UG"}
    # given the compose page with quiet hours typed: the field keeps them and the launch and schedule forms carry them
    html = client.get(url, params={"quiet_hours": "21:00-08:00"}).text
    assert re.search(r'<input name="quiet_hours" id="quiet-hours" value="21:00-08:00"', html)
    assert len(re.findall(r'<input type="hidden" name="quiet_hours" value="21:00-08:00" class="mirror">', html)) == 2
    # when a campaign is launched now with quiet hours, one at a time with others, and one with a bad window
    now = client.post(url + "/launch", follow_redirects=False, data={
        **common, "name": "quiet now", "quiet_hours": "21:00-08:00"})
    later = client.post(uploaded(client, token) + "/launch", follow_redirects=False, data={
        **common, "name": "quiet later", "at": "2099-01-01T09:00+03:00", "quiet_hours": " 22:30-6:00 "})
    bad = client.post(uploaded(client, token) + "/launch", follow_redirects=False, data={
        **common, "name": "bad window", "quiet_hours": "9pm-8am"})
    # then each campaign holds its window, and each recipient its zone for it
    assert now.status_code == later.status_code == 303
    with engine.connect() as connection:
        rows = {name: (window, status) for name, window, status in connection.execute(
            select(Campaign.name, Campaign.quiet_hours, Campaign.status))}
        zones = set(connection.execute(select(Message.timezone).join(Campaign, Campaign.id == Message.campaign_id)
                                       .where(Campaign.name == "quiet now", Message.state != "skipped")).scalars())
    assert rows == {"quiet now": ("21:00-08:00", "running"), "quiet later": ("22:30-06:00", "scheduled")}
    assert zones == {"Africa/Kampala"}
    # and the bad window is explained, nothing created
    assert bad.status_code == 400 and "quiet hours &#39;9pm-8am&#39;: write them as HH:MM-HH:MM" in bad.text


def test_launch_with_a_canary_holds_the_campaign_to_its_slice(client, composing, engine):
    token, url = composing
    common = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "phone_column": "Mobile No",
              "region": "UG"}
    # given the launch form, which asks for a canary
    html = client.get(url).text
    assert 'name="canary"' in html and 'name="canary_auto"' in html
    # when a canary that is no count or share, and a release by itself without a canary, are asked for
    bad = client.post(url + "/launch", follow_redirects=False, data={**common, "canary": "many"})
    alone = client.post(url + "/launch", follow_redirects=False, data={**common, "canary_auto": "1"})
    # then each is refused, saying why, and nothing is made
    assert bad.status_code == 400 and "percentage under 100" in bad.text
    assert alone.status_code == 400 and "release by itself goes with canary" in alone.text
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Campaign)).scalar_one() == 0
    # when it is launched with a canary of one recipient, released by itself
    launched = client.post(url + "/launch", follow_redirects=False,
                           data={**common, "name": "canary", "canary": " 1 ", "canary_auto": "1"})
    # then its slice ends at its first valid message, as `blast launch --canary 1 --canary-auto` sets it
    assert launched.status_code == 303
    with engine.connect() as connection:
        held = connection.execute(select(Campaign.canary_until_id, Campaign.canary_auto)).one()
        first = connection.execute(select(func.min(Message.id)).where(Message.state != "skipped")).scalar_one()
    assert tuple(held) == (first, True)


@pytest.fixture
def visits(client):
    """A logged-in operator with a list of two appointments 24h 5 min and 24h 10 min ahead uploaded:
    (csrf token, compose page URL, {phone: appointment time})."""
    token = log_in(client)
    start = datetime.now(UTC).replace(microsecond=0)
    # reminders due within the first reading's horizon whatever the time (the re-read cron's next quarter
    # hour plus reminders.HORIZON_MARGIN, 5 minutes, is always more than 3 minutes away)
    appointments = {"+256772000011": start + timedelta(days=1, minutes=1),
                    "+256772000012": start + timedelta(days=1, minutes=3)}
    content = "name,Mobile No,appointment_at\n" + "".join(
        f"P{i},{phone},{when.isoformat()}\n" for i, (phone, when) in enumerate(appointments.items()))
    answer = upload(client, token, "visits.csv", content.encode())
    assert answer.status_code == 303
    return token, answer.headers["location"], appointments


def schedule_form(token: str, **fields) -> dict:
    return {"csrf_token": token, "account": "uganda", "template": "See you {{ name }}", "region": "UG",
            "phone_column": "Mobile No", "schedule_name": "visits", **fields}


def test_relative_schedule_from_the_page_is_stored_with_its_rule_and_fires(client, visits, engine):
    token, url, appointments = visits
    # given quiet hours that cover none of the reminders (two hours from now, Kampala time)
    quiet_start = (datetime.now(UTC) + timedelta(hours=2)).astimezone(ZoneInfo("Africa/Kampala"))
    window = f"{quiet_start:%H:%M}-{quiet_start + timedelta(hours=1):%H:%M}"
    # and the page offers the list's other columns as the date column
    html = client.get(url).text
    date_select = re.search(r'<select name="schedule_date_column".*?</select>', html, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', date_select) == ["", "name", "appointment_at"]
    # when a reminder 24h before each appointment is scheduled, the rule's column picked from the select
    added = client.post(url + "/schedule", follow_redirects=False, data=schedule_form(
        token, schedule_relative="24h before", schedule_date_column="appointment_at", quiet_hours=window))
    # then it is stored with its rule and window, and listed with them
    assert added.status_code == 303 and added.headers["location"] == "/schedules?notice=scheduled"
    with engine.connect() as connection:
        schedule = connection.execute(select(Schedule)).one()
    assert (schedule.kind, schedule.date_column, schedule.offset_seconds, schedule.quiet_hours, schedule.cron) == (
        "relative", "appointment_at", -86400, window, reminders.RELATIVE_REREAD_CRON)
    listing = client.get("/schedules").text
    row = re.search(r"<tr>\s*<td>\d+</td><td>visits</td>.*?</tr>", listing, re.S).group(0)
    assert '<td class="rule">1d before appointment_at</td>' in row
    assert f'<td class="quiet-hours">{window}</td>' in row and "none (removed or done)" not in row
    # when beat's round comes (its clock injected: the schedule's first firing)
    [campaign_id] = reminders.fire_due(engine, now=aware(schedule.next_fire_at))
    # then each recipient's message waits for its own time, 24 hours before its appointment
    with engine.connect() as connection:
        campaign = connection.execute(select(Campaign).where(Campaign.id == campaign_id)).one()
        sends = {phone: aware(send_at) for phone, send_at in connection.execute(
            select(Message.phone, Message.send_at).where(Message.campaign_id == campaign_id))}
    assert campaign.quiet_hours == window and campaign.schedule_id == schedule.id
    assert sends == {phone: when - timedelta(days=1) for phone, when in appointments.items()}


def test_schedule_from_the_page_keeps_the_mapped_phone_column_and_extras_through_a_firing(client, engine):
    token = log_in(client)
    # given a list whose detected phone column ("phone") is not the one to send to
    content = b"name,phone,Office Phone\nAmy,+256770000101,+256780000201\nBob,+256770000102,+256780000202\n"
    url = upload(client, token, "offices.csv", content).headers["location"]
    assert '<option value="phone" selected>' in client.get(url).text
    # when a media schedule (SMSGlobal) and a buttons one (HTTP API) are added with the office numbers mapped
    common = {"csrf_token": token, "template": "Hi {{ name }}", "region": "UG", "phone_column": "Office Phone",
              "schedule_cron": "0 9 * * *"}
    media = client.post(url + "/schedule", follow_redirects=False, data={
        **common, "account": "aussie", "schedule_name": "flyer", "kind": "media",
        "media_url": "https://example.com/flyer.jpg"})
    buttons = client.post(url + "/schedule", follow_redirects=False, data={
        **common, "account": "india", "schedule_name": "ask", "kind": "buttons", "buttons": "Yes\nNo",
        "footer": "Reply"})
    assert media.status_code == buttons.status_code == 303
    # and both fire (the injected clock: their next firing)
    with engine.connect() as connection:
        due = max(aware(moment) for moment in connection.execute(select(Schedule.next_fire_at)).scalars())
    assert len(reminders.fire_due(engine, now=due)) == 2
    # then each campaign carries the media or the buttons, and its messages went to the office numbers
    with engine.connect() as connection:
        fired = {}
        for campaign_id, name, media_url, options in connection.execute(
                select(Campaign.id, Campaign.name, Campaign.media_url, Campaign.options)):
            phones = sorted(connection.execute(select(Message.phone).where(
                Message.campaign_id == campaign_id, Message.state != "skipped")).scalars())
            fired[name.split()[0]] = (media_url, json.loads(options), phones)
    office = ["+256780000201", "+256780000202"]
    assert fired == {"flyer": ("https://example.com/flyer.jpg", {}, office),
                     "ask": (None, {"kind": "buttons", "buttons": ["Yes", "No"], "footer": "Reply"}, office)}


def test_bad_schedule_inputs_are_explained_on_the_compose_page(client, visits, engine):
    token, url, _appointments = visits

    def refusal(**fields) -> str:
        html = client.post(url + "/schedule", data=schedule_form(token, **fields)).text
        found = re.search(r'<p class="error" id="schedule-error">(.*?)</p>', html, re.S)
        return found.group(1) if found else ""

    # when each bad input is sent, then the compose page says what is wrong with it, by name
    cron = {"schedule_cron": "0 9 * * *"}
    assert refusal(**cron, quiet_hours="9pm-8am").startswith("quiet hours &#39;9pm-8am&#39;: write them as HH:MM")
    assert "unknown unit &#39;parsecs&#39;" in refusal(schedule_relative="24 parsecs before appointment_at")
    assert "write it as AMOUNT UNIT before|after COLUMN" in refusal(schedule_relative="tomorrow")
    assert "no column &#39;visit_at&#39; (headers: name, Mobile No, appointment_at)" in refusal(
        schedule_relative="24h before visit_at")
    assert "the rule names the date column &#39;name&#39; but &#39;appointment_at&#39; is picked" in refusal(
        schedule_relative="24h before name", schedule_date_column="appointment_at")
    assert "needs its rule, e.g. 24h before appointment_at" in refusal(schedule_date_column="appointment_at")
    assert "a relative schedule takes no one-off time" in refusal(
        schedule_relative="24h before appointment_at", schedule_run_at="2099-01-01T09:00")
    assert "no column &#39;Office&#39;" in refusal(**cron, phone_column="Office")
    assert "socnet accounts take text messages here, not media" in refusal(
        **cron, media_url="https://example.com/a.jpg")
    # and the quiet hours typed are still in their field after a refusal; nothing was stored
    kept = client.post(url + "/schedule", data=schedule_form(token, schedule_cron="bad", quiet_hours="21:00-08:00"))
    assert re.search(r'<input name="quiet_hours" id="quiet-hours" value="21:00-08:00"', kept.text)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Schedule)).scalar() == 0
