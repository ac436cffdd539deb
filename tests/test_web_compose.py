"""The compose page's newer parts over HTTP (TestClient), on SQLite and Postgres, against the real gateway
sandbox: the live preview's JSON, the extras each gateway offers, test sends, reminder schedules from the
page, and balances on the accounts page."""

from __future__ import annotations

import json
import re
import threading
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from campaigns.models import Campaign, Message, Schedule
from campaigns.settings import reset_settings
from campaigns.web import launches
from tests.engine import wait_until, write_config
from tests.test_web_pages import ADMIN_PASSWORD, csrf_of, log_in, upload

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
    answer = upload(client, token, "people.csv", CONTACTS)
    assert answer.status_code == 303
    return token, answer.headers["location"]


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
    media = client.post(url + "/launch", follow_redirects=False, data={
        **common, "account": "aussie", "name": "with media", "media_url": "https://example.com/a.jpg"})
    # and buttons on a gateway without them are asked for
    refused = client.post(url + "/launch", follow_redirects=False, data={
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
    assert sandbox.stats("socnet")["accepted_per_recipient"] == {"+256772999111": 1}
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
    assert sandbox.stats("httpapi").get("accepted", 0) == 0


def test_test_send_of_buttons_is_accepted_by_the_gateway(client, composing, sandbox):
    token, url = composing
    html = test_send(client, token, url, account="india", kind="buttons", buttons="Yes\nNo",
                     footer="Reply", test_phone="+256772999111").text
    assert "accepted by the gateway" in html
    assert sandbox.stats("httpapi")["accepted_per_recipient"] == {"+256772999111": 1}


def test_test_send_refuses_a_bad_number_or_a_skipped_recipient(client, composing, sandbox):
    token, url = composing
    bad_number = test_send(client, token, url, test_phone="12").text
    assert "Test to 12: failed (not sent): &#39;12&#39; is not a phone number" in bad_number
    missing = test_send(client, token, url, template="Hi {{ nickname }}", test_phone="+256772999111").text
    assert "recipient 1 would be skipped: missing variable: nickname" in missing
    assert sandbox.stats("socnet").get("accepted", 0) == 0


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
    assert sandbox.stats("socnet")["accepted_per_recipient"] == {"+256772999111": 1}


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
    # a one-off time in the past, a bad cron, and a phone column the scheduled launch would not find
    past = client.post(url + "/schedule", data={**form, "schedule_run_at": "2020-01-01T09:00"}).text
    cron = client.post(url + "/schedule", data={**form, "schedule_cron": "every monday"}).text
    mapped = client.post(url + "/schedule", data={**form, "schedule_cron": "0 9 * * 1", "phone_column": "Name"}).text
    assert "the one-off time is in the past" in past
    assert "&#39;every monday&#39; is not a cron expression" in cron
    assert "reminder schedules read the detected phone column (Mobile No)" in mapped
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
    bodies = [client.get(url, params={"account": account, "template": "Hi {{ name }}"}).text
              for account in ACCOUNTS]
    bodies += [preview_json(client, url, token, template="Hi", account=account).text for account in ACCOUNTS]
    bodies += [test_send(client, token, url, account=account, test_phone="+256772999111").text
               for account in ACCOUNTS]
    bodies += [client.get("/schedules").text, client.get("/accounts").text]
    assert csrf_of(bodies[0])
    for body in bodies:
        for secret in secrets:
            assert str(secret) not in body


def test_big_upload_is_ingested_in_the_background(client, composing, monkeypatch):
    token, url = composing
    # given every upload counts as big
    monkeypatch.setattr(launches, "BACKGROUND_BYTES", 0)
    form = {"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}", "phone_column": "Mobile No",
            "region": "UG", "name": "big one"}
    # when it is launched, then the answer comes at once with the ingest's own page
    answer = client.post(url + "/launch", follow_redirects=False, data=form)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/launches/")
    job_url = answer.headers["location"]

    def finished():
        progress = client.get(job_url, follow_redirects=False)
        return progress.headers["location"] if progress.status_code == 303 else None

    # and that page leads to the campaign page once every row is in
    campaign_url = wait_until(finished, timeout=30, message="the background ingest to finish")
    assert campaign_url.startswith("/campaigns/")
    report = client.get(campaign_url.split("?")[0] + "/progress.json").json()
    assert report["name"] == "big one" and report["total"] == 3 and report["counts"]["skipped"] == 1
    # and a launch that fails in the background is explained on that page
    failing = client.post(url + "/launch", follow_redirects=False, data={**form, "phone_column": "Nope"})
    failing_url = failing.headers["location"]
    wait_until(lambda: client.get(failing_url).status_code == 400, timeout=30, message="the failure")
    assert "Nope" in client.get(failing_url).text


def test_background_launch_page_counts_rows_until_done(client, composing, tmp_path):
    log_in(client)
    # given a launch still running
    release = threading.Event()
    job = launches.start(tmp_path / "contacts.csv", lambda: release.wait(30) and 1234)
    # when its page is opened, then it says how far it got and reloads itself
    html = client.get(f"/launches/{job.id}").text
    assert "0 rows so far" in html and 'http-equiv="refresh"' in html
    # when it finishes, then the page moves on to the campaign
    release.set()
    wait_until(lambda: job.done, timeout=10, message="the job to end")
    answer = client.get(f"/launches/{job.id}", follow_redirects=False)
    assert answer.headers["location"] == "/campaigns/1234?notice=launched"
    assert client.get("/launches/unknown").status_code == 404
