"""The operator pages over HTTP (FastAPI's TestClient), on SQLite and Postgres."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient

from campaigns.models import Attempt, Message, utcnow
from campaigns.settings import reset_settings
from tests.factories import make_campaign, make_messages

ADMIN_PASSWORD = "admin-pass-7f3c9e"
SOCNET_KEY = "socnet-secret-key-91ab"
HOOK_SECRET = "hook-secret-55de"


@pytest.fixture
def client(engine, blast_home, tmp_path, monkeypatch):
    """A web app with one admin and one account whose secrets come from the environment."""
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("TEST_SOCNET_KEY", SOCNET_KEY)
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    (tmp_path / "blast.toml").write_text(
        '[accounts.acct]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\n'
        'api_key = "${TEST_SOCNET_KEY}"\nrate = 10\nwebhook_secret = "${TEST_HOOK_SECRET}"\n')
    reset_settings()
    from campaigns.web.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client) -> str:
    token = csrf_of(client.get("/login").text)
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
    answer = client.post("/login", data=form)
    assert answer.status_code == 200 and "Campaigns" in answer.text
    return csrf_of(answer.text)


def test_pages_require_login(client, engine):
    # given a campaign and no session
    campaign = make_campaign(engine)
    # when pages and the progress JSON are asked for, then the login form or a 401 answers
    for path in ("/", f"/campaigns/{campaign.id}", f"/campaigns/{campaign.id}/export.csv"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert client.get(f"/campaigns/{campaign.id}/progress.json").status_code == 401


def test_wrong_password_is_refused(client):
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": "admin", "password": "nope", "csrf_token": token})
    assert answer.status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303


def test_csrf_is_enforced(client, engine):
    # given a logged-in operator and a running campaign
    log_in(client)
    campaign = make_campaign(engine, status="running")
    # when a pause arrives without the token, or with a wrong one, then it is refused and nothing changes
    assert client.post(f"/campaigns/{campaign.id}/pause").status_code == 403
    assert client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": "forged"}).status_code == 403
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["status"] == "running"
    # and a login form without the token is refused too
    client.cookies.clear()
    answer = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 403


def test_pause_resume_cancel_buttons(client, engine):
    # given a running campaign with pending messages
    token = log_in(client)
    campaign = make_campaign(engine, status="running")
    make_messages(engine, campaign.id, 3)
    progress = f"/campaigns/{campaign.id}/progress.json"
    # when the operator pauses, then resumes, then cancels
    client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": token})
    paused = client.get(progress).json()
    client.post(f"/campaigns/{campaign.id}/resume", data={"csrf_token": token})
    resumed = client.get(progress).json()
    answer = client.post(f"/campaigns/{campaign.id}/cancel", data={"csrf_token": token})
    cancelled = client.get(progress).json()
    # then each button changed the campaign, and cancel cancelled every unsent message
    assert (paused["status"], paused["pause_reason"]) == ("paused", "user")
    assert resumed["status"] == "running"
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
    assert "cancel: done (3 messages)" in answer.text
    assert len(cancelled["per_minute"]) == 60
    # and an action that does not apply any more is explained, not crashed
    assert client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": token}).status_code == 409


def test_retry_failed_button_and_failures_grouped(client, engine):
    # given a finished campaign with two failures of one code
    token = log_in(client)
    campaign = make_campaign(engine, status="finished")
    ids = make_messages(engine, campaign.id, 2, state="failed")
    with engine.begin() as connection:
        connection.execute(Message.__table__.update().where(Message.id.in_(ids))
                           .values(error_code="2305", error_reason="invalid recipient"))
    # when the campaign page is shown, then the failures are grouped by code and reason
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["failures"] == [
        {"code": "2305", "reason": "invalid recipient", "count": 2}]
    # when retry-failed is pressed, then both are sent again (none failed) and the campaign runs again
    client.post(f"/campaigns/{campaign.id}/retry", data={"csrf_token": token})
    report = client.get(f"/campaigns/{campaign.id}/progress.json").json()
    assert report["status"] == "running" and report["counts"]["failed"] == 0


def test_export_neutralises_formulas(client, engine):
    # given a message whose error text would run as a spreadsheet formula
    log_in(client)
    campaign = make_campaign(engine)
    ids = make_messages(engine, campaign.id, 1, state="failed")
    with engine.begin() as connection:
        connection.execute(Message.__table__.update().where(Message.id == ids[0])
                           .values(error_reason='=HYPERLINK("http://evil","x")'))
    # when the results are exported
    answer = client.get(f"/campaigns/{campaign.id}/export.csv")
    # then the cells are data, not formulas
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0]["error_reason"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert rows[0]["phone"].startswith("'+")


def test_malicious_campaign_name_is_escaped(client, engine):
    # given a campaign named with markup
    log_in(client)
    campaign = make_campaign(engine, name='<script>alert("x")</script>')
    # when the list and the campaign page are shown, then the markup is text
    for path in ("/", f"/campaigns/{campaign.id}"):
        html = client.get(path).text
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert" in html


def test_no_secret_appears_on_any_page(client, engine):
    # given an account with secrets, a campaign on it, and an uploaded list
    token = log_in(client)
    campaign = make_campaign(engine)
    make_messages(engine, campaign.id, 2)
    preview_url = upload(client, token, "people.csv", b"name,phone\nAmy,+256701234567\n").headers["location"]
    # when every page is fetched
    paths = ["/login", "/", "/accounts", "/schedules", f"/campaigns/{campaign.id}",
             f"/campaigns/{campaign.id}/progress.json", f"/campaigns/{campaign.id}/export.csv",
             preview_url + "?template=Hi+{{+name+}}"]
    bodies = [client.get(path).text for path in paths]
    bodies.append(client.post(preview_url + "/preview.json", data={"csrf_token": token, "template": "Hi"}).text)
    assert "Hi Amy" in bodies[-2] and '"text":"Hi"' in bodies[-1]
    # then no secret is in any of them
    for body in bodies:
        for secret in (ADMIN_PASSWORD, SOCNET_KEY, HOOK_SECRET):
            assert secret not in body


def test_accounts_page_shows_rates_and_paused_campaigns(client, engine):
    # given an account with one accepted and one throttled attempt, and a campaign paused for quota
    log_in(client)
    campaign = make_campaign(engine, name="paused one", status="paused", pause_reason="quota",
                             pause_detail="SMSGlobal 402")
    ids = make_messages(engine, campaign.id, 2, state="submitted")
    with engine.begin() as connection:
        accepted_now = Message.__table__.update().where(Message.id == ids[0]).values(submitted_at=utcnow())
        connection.execute(accepted_now)
        connection.execute(Attempt.__table__.insert(), [
            {"message_id": ids[0], "at": utcnow(), "outcome": "accepted"},
            {"message_id": ids[1], "at": utcnow(), "outcome": "throttled", "code": "429"}])
    # when the accounts page is shown
    html = client.get("/accounts").text
    # then it shows the rate, the throttling rate, and why the campaign is paused
    assert "acct" in html and "socnet" in html
    assert "50.0%" in html and "0.0%" in html
    assert "paused one" in html and "quota" in html and "SMSGlobal 402" in html
    # and the campaign's chart counts the message accepted this minute
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["per_minute"][-1]["count"] == 1


def upload(client, token: str, name: str, content: bytes):
    return client.post("/upload", data={"csrf_token": token}, files={"file": (name, content, "text/csv")},
                       follow_redirects=False)


def test_upload_preview_launch_creates_a_campaign(client, engine):
    # given a contact list with a valid, an invalid and a duplicate number, under a custom phone header
    token = log_in(client)
    contacts = b"Name,Mobile No,Other\nAmy,+256701234567,x\nBob,12,y\nAmy again,+256701234567,z\n"
    # when it is uploaded
    answer = upload(client, token, "people.csv", contacts)
    assert answer.status_code == 303
    preview_url = answer.headers["location"]
    # then the preview shows the first rows, the detected phone column and the ingest report
    html = client.get(preview_url, params={"template": "Hi {{ name }}", "account": "acct"}).text
    assert "Bob" in html and "Mobile No (phone)" in html
    assert "Rows 3 · valid 1 · duplicates 1 · invalid 1" in html
    assert "Hi Amy" in html and "6 / 4096 characters" in html
    rejects = client.get(preview_url + "/rejects.csv").text
    assert "duplicate" in rejects
    # when the operator launches it
    answer = client.post(preview_url + "/launch", follow_redirects=False, data={
        "csrf_token": token, "account": "acct", "template": "Hi {{ name }}", "phone_column": "Mobile No",
        "region": "UG", "name": "spring"})
    # then a running campaign exists with one message to send and two skipped
    assert answer.status_code == 303
    report = client.get(answer.headers["location"].split("?")[0] + "/progress.json").json()
    assert report["name"] == "spring" and report["status"] in ("running", "finished")
    assert report["total"] == 3 and report["counts"]["skipped"] == 2


def test_upload_without_a_phone_header_asks_for_the_mapping(client):
    # given a list whose phone header is not a known name
    token = log_in(client)
    preview_url = upload(client, token, "odd.csv", b"who,digits\nAmy,+256701234567\n").headers["location"]
    # when previewed, then the page explains and offers the mapping; choosing the column gives the report
    assert "no phone column" in client.get(preview_url).text
    assert "Rows 1 · valid 1" in client.get(preview_url, params={"phone_column": "digits"}).text


def test_upload_refuses_other_types_and_big_files(client, monkeypatch):
    token = log_in(client)
    assert upload(client, token, "evil.exe", b"MZ...").status_code == 415
    monkeypatch.setenv("BLAST_MAX_UPLOAD_BYTES", "10")
    reset_settings()
    assert upload(client, token, "big.csv", b"phone\n" + b"+256701234567\n" * 5).status_code == 413
    assert upload(client, "wrong", "ok.csv", b"phone\n+256701234567\n").status_code == 403
