"""The audit log on SQLite and Postgres: every change made from the pages, the API and the command line is
recorded with its actor (the user, `key:<name>`, `cli:<os user>`) and address, in the change's transaction;
the database refuses to update or delete an entry; `blast audit --json --limit N`; and no password, key or
hash shows in the audit rows, the pages or the logs."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from campaigns import apikeys, audit, lifecycle, users
from campaigns.cli import app as cli
from campaigns.models import ApiKey, AuditEntry, Message, WebUser, utcnow
from campaigns.settings import reset_settings
from tests.support.factories import make_campaign, make_messages
from tests.support.web import clients_at_addresses, csrf_of
from tests.support.webhooks import CONFIG as HOOK_ACCOUNTS
from tests.support.webhooks import SECRET as HOOK_SECRET

ENV_ADMIN_PASSWORD = "env-admin-pass-8e2a"
OPERATOR_PASSWORD = "operator-pass-6b1d4"
ADMIN_PASSWORD = "admin-pass-0c9f3"
NEW_USER_PASSWORD = "new-user-pass-5a7e"
OPERATOR_AT = ("198.51.100.7", 40000)
ADMIN_AT = ("198.51.100.9", 40000)
SYSTEM_AT = ("203.0.113.20", 40000)
CONTACTS = b"phone,name\n+256772000001,Amina\n+256772000002,Brian\n"
CLI = audit.cli_actor()


@pytest.fixture
def app_factory(engine, blast_home, tmp_path, monkeypatch):
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ENV_ADMIN_PASSWORD)
    (tmp_path / "blast.toml").write_text(
        '[accounts.acct]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\nrate = 10\n'
        + HOOK_ACCOUNTS)
    (tmp_path / "contacts.csv").write_bytes(CONTACTS)
    reset_settings()
    from campaigns.web.app import create_app

    return create_app


@pytest.fixture
def browser(app_factory):
    """`browser(address)`: a TestClient at that client address."""
    with clients_at_addresses(app_factory) as open_browser:
        yield open_browser



def logged_in(client: TestClient, user: str, password: str) -> TestClient:
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": user, "password": password, "csrf_token": token},
                         follow_redirects=False)
    assert answer.status_code == 303
    return client


def post(client: TestClient, path: str, **fields):
    answer = client.post(path, data={"csrf_token": csrf_of(client.get("/").text), **fields}, follow_redirects=False)
    assert answer.status_code in (201, 303), (path, answer.status_code, answer.text[:300])
    return answer


def entries(engine) -> list[tuple]:
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEntry).order_by(AuditEntry.id)).all()
    return [(row.actor, row.action, row.object_type, row.object_id, row.address) for row in rows]


def run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


def failed_campaign(engine) -> int:
    """A running campaign with a failed message, and one due tomorrow (so a pacing round leaves it running)."""
    campaign = make_campaign(engine, status="running")
    make_messages(engine, campaign.id, 1, state="failed")
    later = make_messages(engine, campaign.id, 1, start=1)
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id.in_(later))
                           .values(next_attempt_at=utcnow() + timedelta(days=1)))
    return campaign.id


def test_page_actions_are_recorded_with_the_user_and_their_address(browser, engine, tmp_path):
    operator = logged_in(browser(OPERATOR_AT), *_user(engine, "otto", "operator", OPERATOR_PASSWORD))
    admin = logged_in(browser(ADMIN_AT), *_user(engine, "ada", "admin", ADMIN_PASSWORD))
    before = len(entries(engine))
    # when the operator launches an upload, pauses, resumes, retries and cancels, and removes a schedule
    uploaded = operator.post("/upload", data={"csrf_token": csrf_of(operator.get("/").text)},
                             files={"file": ("people.csv", CONTACTS, "text/csv")}, follow_redirects=False)
    launched = post(operator, uploaded.headers["location"] + "/launch", account="acct", template="Hi {{ name }}",
                    name="from the page")
    launched_id = re.search(r"/campaigns/(\d+)", launched.headers["location"]).group(1)
    campaign_id = failed_campaign(engine)
    for action in ("pause", "resume", "retry", "cancel"):
        post(operator, f"/campaigns/{campaign_id}/{action}")
    from campaigns import reminders

    schedule_id = reminders.add(engine, name="weekly", account_name="acct", source_file=tmp_path / "contacts.csv",
                                template="Hi", cron="0 9 * * MON")
    post(operator, f"/schedules/{schedule_id}/remove")
    # and the admin adds and removes a user, and makes and revokes a key
    post(admin, "/users", name="nadia", role="viewer", password=NEW_USER_PASSWORD)
    post(admin, "/users/nadia/remove")
    post(admin, "/keys", name="booking", role="operator")
    post(admin, "/keys/booking/revoke")
    # then each is one entry, with who did it and from where, in order
    otto, ada = ("otto", OPERATOR_AT[0]), ("ada", ADMIN_AT[0])
    made = entries(engine)[before:]
    assert made == [
        (*otto[:1], "campaign.launch", "campaign", launched_id, otto[1]),
        (*otto[:1], "campaign.pause", "campaign", str(campaign_id), otto[1]),
        (*otto[:1], "campaign.resume", "campaign", str(campaign_id), otto[1]),
        (*otto[:1], "campaign.retry", "campaign", str(campaign_id), otto[1]),
        (*otto[:1], "campaign.cancel", "campaign", str(campaign_id), otto[1]),
        ("system", "schedule.add", "schedule", str(schedule_id), "-"),  # called here, by no interface
        (*otto[:1], "schedule.remove", "schedule", str(schedule_id), otto[1]),
        (*ada[:1], "user.add", "user", "nadia", ada[1]),
        (*ada[:1], "user.remove", "user", "nadia", ada[1]),
        (*ada[:1], "apikey.create", "apikey", "booking", ada[1]),
        (*ada[:1], "apikey.revoke", "apikey", "booking", ada[1]),
    ]
    # and each carries its public facts
    details = {(entry["action"], entry["object_id"]): entry["detail"] for entry in audit.listing(engine, None)}
    assert details[("campaign.pause", str(campaign_id))] == {"from": "running", "reason": "user"}
    assert details[("campaign.retry", str(campaign_id))] == {"messages": 1}
    assert details[("campaign.launch", launched_id)] == {"name": "from the page", "account": "acct"}
    assert details[("user.add", "nadia")] == {"role": "viewer"} and details[("apikey.revoke", "booking")] is None
    # and the audit page shows them to the admin
    page = admin.get("/audit").text
    assert "campaign.pause" in page and "apikey.revoke" in page and OPERATOR_AT[0] in page


def test_api_actions_are_recorded_as_the_key_and_the_client_address(app_factory, engine):
    keys = {role: apikeys.create(engine, f"{role} system", role) for role in ("operator", "viewer")}
    before = len(entries(engine))
    draft = make_campaign(engine)
    campaign_id = failed_campaign(engine)
    with TestClient(app_factory(), client=SYSTEM_AT) as client:
        headers = {"Authorization": f"Bearer {keys['operator']}"}
        created = client.post("/api/v1/campaigns", headers=headers, json={
            "name": "from the API", "account": "acct", "template": "Hi {{ name }}", "launch": True,
            "recipients": [{"phone": "+256772000001", "variables": {"name": "Amina"}}]})
        assert created.status_code == 201, created.text
        for path in (f"{draft.id}/launch", f"{campaign_id}/pause", f"{campaign_id}/resume",
                     f"{campaign_id}/retry", f"{campaign_id}/cancel"):
            answer = client.post(f"/api/v1/campaigns/{path}", headers=headers)
            assert answer.status_code == 200, (path, answer.text)
        assert client.post("/api/v1/optouts", headers=headers, json={"phone": "+256772000009"}).status_code == 201
        assert client.delete("/api/v1/optouts/+256772000009", headers=headers).status_code == 204
        # a refused request (a viewer's launch) records nothing
        viewer = {"Authorization": f"Bearer {keys['viewer']}"}
        assert client.post(f"/api/v1/campaigns/{campaign_id}/pause", headers=viewer).status_code == 403
    key, address = "key:operator system", SYSTEM_AT[0]
    assert entries(engine)[before:] == [
        (key, "campaign.launch", "campaign", str(created.json()["id"]), address),
        (key, "campaign.launch", "campaign", str(draft.id), address),
        (key, "campaign.pause", "campaign", str(campaign_id), address),
        (key, "campaign.resume", "campaign", str(campaign_id), address),
        (key, "campaign.retry", "campaign", str(campaign_id), address),
        (key, "campaign.cancel", "campaign", str(campaign_id), address),
        (key, "optout.add", "optout", "+256772000009", address),
        (key, "optout.remove", "optout", "+256772000009", address),
    ]


def test_command_line_actions_are_recorded_as_the_os_user(app_factory, engine, tmp_path):
    contacts = str(tmp_path / "contacts.csv")
    # when the command line launches, acts on a campaign, changes schedules, opt-outs, keys and users
    launched = run("launch", contacts, "--account", "acct", "--template", "Hi {{ name }}").strip().splitlines()[-1]
    campaign_id = failed_campaign(engine)
    for action in ("pause", "resume", "retry", "cancel"):
        run(action, str(campaign_id))
    run("schedule", "add", contacts, "--account", "acct", "--template", "Hi", "--cron", "0 9 * * MON")
    schedule_id = str(json.loads(run("schedule", "list", "--json"))[0]["id"])
    run("schedule", "change", schedule_id, "--cron", "0 10 * * MON")
    run("schedule", "remove", schedule_id)
    run("optout", "add", "+256772000009")
    run("optout", "remove", "+256772000009")
    run("apikey", "create", "--name", "nightly", "--role", "viewer")
    run("apikey", "revoke", "nightly")
    run("user", "add", "nadia", "--role", "operator", "--password-stdin", input=NEW_USER_PASSWORD + "\n")
    run("user", "add", "sam", "--role", "viewer", input=f"{NEW_USER_PASSWORD}\n{NEW_USER_PASSWORD}\n")
    run("user", "remove", "nadia")
    # then each is recorded as cli:<os user> from the address cli
    assert CLI.name.startswith("cli:") and CLI.address == "cli"
    assert [entry[1:4] for entry in entries(engine)] == [
        ("campaign.launch", "campaign", launched),
        *[(f"campaign.{action}", "campaign", str(campaign_id)) for action in ("pause", "resume", "retry", "cancel")],
        ("schedule.add", "schedule", schedule_id), ("schedule.change", "schedule", schedule_id),
        ("schedule.remove", "schedule", schedule_id),
        ("optout.add", "optout", "+256772000009"), ("optout.remove", "optout", "+256772000009"),
        ("apikey.create", "apikey", "nightly"), ("apikey.revoke", "apikey", "nightly"),
        ("user.add", "user", "nadia"), ("user.add", "user", "sam"), ("user.remove", "user", "nadia"),
    ]
    assert {(entry[0], entry[4]) for entry in entries(engine)} == {(CLI.name, "cli")}
    # and the actor does not outlive the command: a change made after it by no interface is the system's
    lifecycle.pause(failed_campaign(engine))
    assert entries(engine)[-1][0] == "system"


def test_what_no_one_asked_for_is_the_systems(app_factory, engine, tmp_path):
    from campaigns import reminders

    # given an operator logged in, and a recipient who replies STOP, which arrives by webhook
    with TestClient(app_factory(), client=SYSTEM_AT) as client:
        logged_in(client, *_user(engine, "otto", "operator", OPERATOR_PASSWORD))
        inbox = {"reportType": "inbox", "phone": "256772000042", "type": "text", "value": "STOP"}
        assert client.post(f"/hooks/httpapi/wa?token={HOOK_SECRET}", json=inbox).json()["opted_out"] == 1
    # and a one-off reminder schedule that beat fires when due
    schedule_id = reminders.add(engine, name="once", account_name="acct", source_file=tmp_path / "contacts.csv",
                                template="Hi", run_at=utcnow() + timedelta(minutes=1))
    [fired] = reminders.fire_due(engine, now=utcnow() + timedelta(minutes=2))
    # then the opt-out and the firing's launch are the system's, from no address
    made = entries(engine)
    assert ("system", "optout.add", "optout", "+256772000042", "-") in made
    assert made[-1] == ("system", "campaign.launch", "campaign", str(fired), "-")
    assert ("system", "schedule.add", "schedule", str(schedule_id), "-") in made
    assert not any(entry[0] == "otto" for entry in made)


def test_a_failed_launch_retried_or_discarded_is_recorded(app_factory, engine, tmp_path):
    from campaigns.errors import BlastError
    from campaigns.ingest import jobs
    from campaigns.settings import get_account

    # given a launch (by an operator on the pages) whose list a worker could not read
    with audit.acting_as(audit.Actor("otto", OPERATOR_AT[0])):
        campaign_id, job_id = lifecycle.create_campaign(
            account=get_account("acct"), template="Hi", name="big one", media_url=None, region="UG",
            source_file=str(tmp_path / "gone.csv"), options=None, ingest={})
    with pytest.raises(BlastError):
        jobs.run(engine, job_id)
    # when the operator retries it, and, failed again, discards it
    with audit.acting_as(audit.Actor("otto", OPERATOR_AT[0])):
        assert jobs.retry(engine, job_id)
        with pytest.raises(BlastError):
            jobs.run(engine, job_id)
        assert jobs.discard(engine, job_id)
    # then the log has the launch, its retry and its end, each the operator's
    assert [entry[:4] for entry in entries(engine)] == [
        ("otto", "campaign.launch", "campaign", str(campaign_id)),
        ("otto", "campaign.launch", "campaign", str(campaign_id)),
        ("otto", "campaign.cancel", "campaign", str(campaign_id)),
    ]
    assert [entry["detail"] for entry in audit.listing(engine, 2)] == [{"ingest": "discarded"}, {"ingest": "retried"}]
    # and a launch read in the foreground whose list turns out unreadable leaves its launch and its removal
    (tmp_path / "no-phones.csv").write_text("name\nAmina\n")
    with audit.acting_as(CLI), pytest.raises(BlastError):
        lifecycle.launch(tmp_path / "no-phones.csv", account_name="acct", template="Hi")
    launch, removal = entries(engine)[-2:]
    assert launch[:3] == (CLI.name, "campaign.launch", "campaign") and launch[4] == "cli"
    assert removal == (CLI.name, "campaign.discard", "campaign", launch[3], "cli")


def test_user_add_asks_twice_and_refuses_a_mismatch(app_factory, engine):
    refused = CliRunner().invoke(cli, ["user", "add", "sam", "--role", "viewer"],
                                 input="first-password\nsecond-password\n")
    assert refused.exit_code != 0 and "differ" in str(refused.exception)
    assert users.find(engine, "sam") is None
    unknown = CliRunner().invoke(cli, ["user", "add", "sam", "--role", "owner", "--password-stdin"],
                                 input=NEW_USER_PASSWORD + "\n")
    assert unknown.exit_code != 0 and "unknown role" in str(unknown.exception)
    assert entries(engine) == []


def test_blast_audit_json_newest_first_with_a_limit(app_factory, engine):
    # given three changes
    for name in ("one", "two", "three"):
        apikeys.create(engine, name, "viewer")
    # when the last two are asked for as JSON
    listed = json.loads(run("audit", "--json", "--limit", "2"))
    # then they come newest first, with the contract's keys
    assert [entry["object_id"] for entry in listed] == ["three", "two"]
    assert all(list(entry) == ["at", "actor", "action", "object_type", "object_id", "address", "detail"]
               for entry in listed)
    assert listed[0]["actor"] == "system" and listed[0]["detail"] == {"role": "viewer"}
    assert listed[0]["at"].endswith("+00:00")
    assert "apikey.create" in run("audit")


def test_the_database_refuses_to_update_or_delete_audit_entries(engine):
    # given one entry
    with engine.begin() as connection:
        audit.record(connection, "campaign.pause", "campaign", 7)
    # when it is updated or deleted, with SQL of any shape, then the database refuses and the entry stays
    for statement in (update(AuditEntry).values(actor="someone else"), delete(AuditEntry),
                      text("UPDATE auditlog SET action = 'x' WHERE id > 0"), text("DELETE FROM auditlog")):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(statement)
    assert entries(engine) == [("system", "campaign.pause", "campaign", "7", "-")]


def test_no_password_key_or_hash_in_audit_rows_pages_or_logs(browser, engine, caplog):
    caplog.set_level(logging.DEBUG)
    admin = logged_in(browser(ADMIN_AT), *_user(engine, "ada", "admin", ADMIN_PASSWORD))
    logged_in(browser(OPERATOR_AT), "admin", ENV_ADMIN_PASSWORD)
    # when users, passwords and keys are made, used, changed and removed from the pages, the API and the CLI
    post(admin, "/users", name="nadia", role="operator", password=NEW_USER_PASSWORD)
    post(admin, "/users/nadia/password", password=NEW_USER_PASSWORD + "-2")
    made = post(admin, "/keys", name="booking", role="operator")
    page_key = re.search(r"<code>(blast_[^<]+)</code>", made.text).group(1)
    cli_key = run("apikey", "create", "--name", "nightly", "--role", "admin").strip().splitlines()[-1]
    assert admin.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {page_key}"}).status_code == 200
    assert admin.post("/api/v1/optouts", headers={"Authorization": f"Bearer {cli_key}"},
                      json={"phone": "+256772000009"}).status_code == 201
    outputs = [run("user", "add", "sam", "--role", "viewer", "--password-stdin", input="sam-password-1\n"),
               run("user", "list"), run("user", "list", "--json"), run("apikey", "list", "--json"),
               run("audit", "--json"), run("audit")]
    post(admin, "/keys/booking/revoke")
    post(admin, "/users/nadia/remove")
    # then no secret, nor any hash of one, is in the audit rows, the pages, the CLI's outputs or the logs
    with engine.connect() as connection:
        hashes = list(connection.execute(select(WebUser.password_hash)).scalars())
        hashes += list(connection.execute(select(ApiKey.key_hash)).scalars())
        stored = [" ".join(str(value) for value in row) for row in connection.execute(select(AuditEntry)).all()]
    secrets = [ENV_ADMIN_PASSWORD, ADMIN_PASSWORD, NEW_USER_PASSWORD, "sam-password-1", page_key, cli_key,
               apikeys.digest(page_key), apikeys.digest(cli_key), *hashes]
    assert len(hashes) == 5 and len(stored) >= 8
    pages = [admin.get(path).text for path in ("/", "/users", "/keys", "/audit", "/audit?limit=1000")]
    logs = [record.getMessage() for record in caplog.records]
    for secret in secrets:
        for place, texts in (("audit", stored), ("pages", pages), ("cli", outputs), ("logs", logs)):
            assert not any(secret in shown for shown in texts), (place, secret[:12])
    # (the hashes' own salts and digests: no fragment of a stored hash shows either)
    fragments = [part for value in hashes for part in value.split("$") if len(part) >= 16]
    assert fragments and not any(part in shown for part in fragments for shown in stored + pages + outputs + logs)


def test_a_url_is_recorded_without_the_secrets_it_may_carry():
    shown = audit.shown_url("https://hook-user:hook-pass@receiver.example:8443/blast/events?token=abc#frag")
    assert shown == "https://receiver.example:8443/blast/events"
    assert audit.shown_url("http://[::1]:9000/in?sig=x") == "http://[::1]:9000/in"


def _user(engine, name: str, role: str, password: str) -> tuple[str, str]:
    users.add(engine, name, role, password)
    return name, password
