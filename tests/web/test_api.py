"""/api/v1 (DESIGN.md "The HTTP API") under a test client: keys and roles, campaigns from JSON with an
Idempotency-Key, their messages page by page, the operator's actions, opt-outs, accounts, problem+json."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from campaigns import apikeys
from campaigns.models import Campaign, IdempotentRequest, Message
from tests.support.sandbox import SOCNET_KEY

PROBLEM = "application/problem+json"


@pytest.fixture
def api(api_app):
    """The web app under a test client, and a key per role: (client, {role: key})."""
    app, keys = api_app
    with TestClient(app) as client:
        yield client, keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_campaign(**fields) -> dict:
    return {"name": "reminders", "account": "uganda", "template": "Hi {{ name }}, see you on {{ day }}",
            "recipients": [{"phone": "+256772000001", "variables": {"name": "Amina", "day": "Monday"}},
                           {"phone": "0772000002", "variables": {"name": "Brian", "day": 3}},
                           {"phone": "not a number", "variables": {"name": "Cid"}}],
            "launch": False, **fields}


def campaigns_in(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Campaign)).scalar_one()


def test_keys_and_roles_are_enforced(api, engine):
    client, keys = api
    # given no key, a wrong key, and a revoked one, then each is 401, as problem+json
    for headers in ({}, bearer("blast_wrong"), {"Authorization": "Basic x"}):
        answer = client.get("/api/v1/campaigns", headers=headers)
        assert answer.status_code == 401 and answer.headers["content-type"] == PROBLEM
        assert answer.headers["www-authenticate"].startswith("Bearer")
    revoked = apikeys.create(engine, "old system", "admin")
    assert client.get("/api/v1/campaigns", headers=bearer(revoked)).status_code == 200
    apikeys.revoke(engine, "old system")
    assert client.get("/api/v1/campaigns", headers=bearer(revoked)).status_code == 401
    # and a viewer reads but may not create or act (403), an operator may
    assert client.get("/api/v1/campaigns", headers=bearer(keys["viewer"])).status_code == 200
    refused = client.post("/api/v1/campaigns", json=new_campaign(), headers=bearer(keys["viewer"]))
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert campaigns_in(engine) == 0
    assert client.post("/api/v1/campaigns", json=new_campaign(), headers=bearer(keys["operator"])).status_code == 201
    # and the keys' last use is recorded, never the key itself
    listed = {key["name"]: key for key in apikeys.listing(engine)}
    assert listed["viewer system"]["last_used_at"] and listed["old system"]["revoked_at"]
    assert not any(key in str(listed) for key in keys.values())


def test_a_campaign_from_json_once_per_idempotency_key(api, engine):
    client, keys = api
    headers = {**bearer(keys["operator"]), "Idempotency-Key": "booking-42"}
    # when the same request is sent twice with one key
    first = client.post("/api/v1/campaigns", json=new_campaign(), headers=headers)
    again = client.post("/api/v1/campaigns", json=new_campaign(), headers=headers)
    # then one campaign is made, a draft of its recipients, and both answers are the same
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and campaigns_in(engine) == 1
    made = first.json()
    assert made["status"] == "draft" and made["total"] == 3
    assert made["counts"]["pending"] == 2 and made["counts"]["skipped"] == 1
    # and the key with another body is a conflict
    other = client.post("/api/v1/campaigns", json=new_campaign(name="other"), headers=headers)
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    # when it is launched, then it runs; a second launch is refused with the reason
    launched = client.post(f"/api/v1/campaigns/{made['id']}/launch", headers=bearer(keys["operator"]))
    assert launched.status_code == 200 and launched.json()["status"] == "running"
    twice = client.post(f"/api/v1/campaigns/{made['id']}/launch", headers=bearer(keys["operator"]))
    assert twice.status_code == 409 and "not a draft" in twice.json()["detail"]


def test_two_requests_with_one_key_at_once_make_one_campaign(api, engine):
    client, keys = api
    headers = {**bearer(keys["operator"]), "Idempotency-Key": "same-moment"}
    answers = []
    start = threading.Barrier(2)

    def send():
        start.wait()
        answers.append(client.post("/api/v1/campaigns", json=new_campaign(), headers=headers))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"] and campaigns_in(engine) == 1


def test_messages_page_by_page_and_actions(api, engine):
    client, keys = api
    recipients = [{"phone": f"+2567720{n:05d}", "variables": {"name": f"P{n}", "day": "Mon"}} for n in range(25)]
    made = client.post("/api/v1/campaigns", json=new_campaign(recipients=recipients),
                       headers=bearer(keys["operator"])).json()
    # when its messages are read ten at a time, then every one comes once, in the list's order
    seen, cursor = [], None
    while True:
        page = client.get(f"/api/v1/campaigns/{made['id']}/messages", headers=bearer(keys["viewer"]),
                          params={"limit": 10, **({"cursor": cursor} if cursor else {})}).json()
        seen += [item["phone"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [recipient["phone"] for recipient in recipients]
    only = client.get(f"/api/v1/campaigns/{made['id']}/messages", params={"state": "skipped"},
                      headers=bearer(keys["viewer"])).json()
    assert only["items"] == []
    # and cancelling it cancels every message; the list shows it
    cancelled = client.post(f"/api/v1/campaigns/{made['id']}/cancel", headers=bearer(keys["operator"])).json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 25
    listed = client.get("/api/v1/campaigns", headers=bearer(keys["viewer"])).json()
    assert [item["id"] for item in listed["items"]] == [made["id"]] and listed["next_cursor"] is None
    assert client.get("/api/v1/campaigns/999", headers=bearer(keys["viewer"])).status_code == 404


def test_optouts_and_accounts(api):
    client, keys = api
    added = client.post("/api/v1/optouts", json={"phone": "0772 000 009"}, headers=bearer(keys["operator"]))
    assert added.status_code == 201 and added.json()["phone"] == "+256772000009"
    assert [item["phone"] for item in client.get("/api/v1/optouts", headers=bearer(keys["viewer"])).json()["items"]] \
        == ["+256772000009"]
    bad = client.post("/api/v1/optouts", json={"phone": "nope"}, headers=bearer(keys["operator"]))
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    assert client.delete("/api/v1/optouts/+256772000009", headers=bearer(keys["operator"])).status_code == 204
    assert client.delete("/api/v1/optouts/+256772000009", headers=bearer(keys["operator"])).status_code == 404
    accounts = client.get("/api/v1/accounts", headers=bearer(keys["viewer"]))
    assert [(a["name"], a["provider"]) for a in accounts.json()] == [("uganda", "socnet")]
    assert SOCNET_KEY not in accounts.text


def test_the_openapi_document_and_docs_page_are_served(api):
    client, _keys = api
    document = client.get("/api/v1/openapi.json").json()
    assert "/campaigns" in document["paths"] and "/campaigns/{campaign_id}/launch" in document["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "POST /campaigns/{campaign_id}/launch" in docs.text
    assert "<script" not in docs.text and "http" not in docs.text.split("<main>")[0].replace("/static", "")


def test_keys_from_the_command_line(api, engine):
    from typer.testing import CliRunner

    from campaigns.cli import app

    client, _keys = api
    runner = CliRunner()
    # when a key is made, then it is printed alone on the last line, and works
    made = runner.invoke(app, ["apikey", "create", "--name", "clinic booking", "--role", "viewer"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("blast_") and client.get("/api/v1/campaigns", headers=bearer(key)).status_code == 200
    # and the list shows it without the key; a second key of that name, or a made-up role, is refused
    listed = runner.invoke(app, ["apikey", "list", "--json"])
    assert "clinic booking" in listed.stdout and key not in listed.stdout
    assert runner.invoke(app, ["apikey", "create", "--name", "clinic booking", "--role", "viewer"]).exit_code == 1
    assert runner.invoke(app, ["apikey", "create", "--name", "x", "--role", "owner"]).exit_code == 1
    # when it is revoked, then it is refused at once
    assert runner.invoke(app, ["apikey", "revoke", "clinic booking"]).exit_code == 0
    assert client.get("/api/v1/campaigns", headers=bearer(key)).status_code == 401


def test_a_big_list_is_read_by_a_worker_and_the_answer_is_202(api, engine, monkeypatch, blast_home):
    from campaigns.web.api import campaigns as api_campaigns
    from tests.support.waiting import wait_until
    from workers.embedded import EmbeddedWorker

    client, keys = api
    # given lists over 20 recipients count as big
    monkeypatch.setattr(api_campaigns, "INLINE_RECIPIENTS", 20)
    recipients = [{"phone": f"+2567720{n:05d}", "variables": {"name": f"P{n}", "day": "Mon"}} for n in range(60)]
    # when one is created, then the answer is 202 at once, with a draft whose rows are not in yet
    answer = client.post("/api/v1/campaigns", json=new_campaign(recipients=recipients, launch=True),
                         headers=bearer(keys["operator"]))
    assert answer.status_code == 202 and answer.json()["status"] == "draft"
    campaign_id = answer.json()["id"]
    # when a worker runs, then the campaign is read whole and starts, each recipient once
    with EmbeddedWorker(pace=False, concurrency=2):
        wait_until(lambda: client.get(f"/api/v1/campaigns/{campaign_id}", headers=bearer(keys["viewer"]))
                   .json()["status"] == "running", timeout=30, message="the worker to read the list")
    report = client.get(f"/api/v1/campaigns/{campaign_id}", headers=bearer(keys["viewer"])).json()
    assert report["total"] == 60 and report["counts"]["skipped"] == 0
    with engine.connect() as connection:
        phones = connection.execute(select(func.count(func.distinct(Message.phone)))
                                    .where(Message.campaign_id == campaign_id)).scalar_one()
    assert phones == 60
    # and the list's file is gone once read
    assert list((blast_home / "api-lists").iterdir()) == []


def test_a_campaign_from_a_contact_file(api, engine, blast_home):
    client, keys = api
    headers = {**bearer(keys["operator"]), "Idempotency-Key": "file-7"}
    contacts = b"Name,Mobile No\nAmina,+256772000001\nBrian,0772000002\nCid,12\n"
    fields = {"name": "from a file", "account": "uganda", "template": "Hi {{ name }}", "phone_column": "Mobile No",
              "launch": "false"}
    # when a CSV is sent as multipart with the fields, twice with one Idempotency-Key
    first = client.post("/api/v1/campaigns", data=fields, headers=headers,
                        files={"file": ("patients.csv", contacts, "text/csv")})
    again = client.post("/api/v1/campaigns", data=fields, headers=headers,
                        files={"file": ("patients.csv", contacts, "text/csv")})
    # then one draft is made from its rows, and no upload is left behind
    assert first.status_code == 201, first.text
    assert again.json() == first.json() and campaigns_in(engine) == 1
    assert first.json()["total"] == 3 and first.json()["counts"]["skipped"] == 1
    assert not any((blast_home / "uploads").glob("*/contacts.*"))
    # and a file that is not a contact list, or a missing file, is refused as problem+json
    wrong = client.post("/api/v1/campaigns", data=fields, headers=bearer(keys["operator"]),
                        files={"file": ("notes.pdf", b"%PDF-1.4", "application/pdf")})
    assert wrong.status_code == 415 and wrong.headers["content-type"] == PROBLEM, wrong.text
    missing = client.post("/api/v1/campaigns", data=fields, headers=bearer(keys["operator"]),
                          files={"other": ("x.csv", b"a", "text/csv")})
    assert missing.status_code == 422 and "file" in missing.json()["detail"]
    unreadable = client.post("/api/v1/campaigns", data={**fields, "phone_column": "Nope"},
                             headers=bearer(keys["operator"]), files={"file": ("patients.csv", contacts, "text/csv")})
    assert unreadable.status_code == 400 and "patients.csv" in unreadable.json()["detail"]
    # and a canary is checked as in JSON: on a draft it is refused, before the file is kept
    canary_on_a_draft = client.post("/api/v1/campaigns", data={**fields, "canary": "5%"},
                                    headers=bearer(keys["operator"]),
                                    files={"file": ("patients.csv", contacts, "text/csv")})
    assert canary_on_a_draft.status_code == 422 and "launch: true" in canary_on_a_draft.json()["detail"]
    assert campaigns_in(engine) == 1 and not any((blast_home / "uploads").glob("*/contacts.*"))


def test_keys_through_the_api_for_admins_only(api, engine):
    client, keys = api
    admin = {**bearer(keys["admin"]), "Idempotency-Key": "new-key-1"}
    # when an admin creates a key, twice with one Idempotency-Key
    first = client.post("/api/v1/keys", json={"name": "clinic", "role": "operator"}, headers=admin)
    again = client.post("/api/v1/keys", json={"name": "clinic", "role": "operator"}, headers=admin)
    # then the key is in the first answer only, it works, and it was made once
    assert first.status_code == again.status_code == 201, first.text
    made = first.json()["key"]
    assert made.startswith("blast_") and again.json()["key"] is None
    assert {**first.json(), "key": None} == again.json()
    assert client.get("/api/v1/campaigns", headers=bearer(made)).status_code == 200
    listed = client.get("/api/v1/keys", headers=bearer(keys["admin"])).json()
    assert [key["name"] for key in listed].count("clinic") == 1
    # and no table keeps it
    with engine.connect() as connection:
        assert made not in str(connection.execute(select(IdempotentRequest.body)).scalars().all())
    # and an operator may not list or create keys
    operator = bearer(keys["operator"])
    for refused in (client.get("/api/v1/keys", headers=operator),
                    client.post("/api/v1/keys", json={"name": "mine", "role": "admin"}, headers=operator)):
        assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    # when the admin revokes it, then it is refused at once; an unknown name is 404
    assert client.delete("/api/v1/keys/clinic", headers=bearer(keys["admin"])).status_code == 204
    assert client.get("/api/v1/campaigns", headers=bearer(made)).status_code == 401
    assert client.delete("/api/v1/keys/clinic", headers=bearer(keys["admin"])).status_code == 404
    # and the audit log has both, by the admin's key, once each, without the key
    from campaigns import audit

    entries = [entry for entry in audit.listing(engine) if entry["object_id"] == "clinic"]
    assert [(entry["action"], entry["actor"]) for entry in entries] == [
        ("apikey.revoke", "key:admin system"), ("apikey.create", "key:admin system")]
    assert made not in str(entries)


def test_schedules_through_the_api(api, engine):
    client, keys = api
    body = {"name": "weekly", "account": "uganda", "template": "Hi {{ name }}, your visit is {{ visit }}",
            "recipients": [{"phone": "+256772000001", "variables": {"name": "Amina", "visit": "2027-01-10T09:00"}}],
            "cron": "0 9 * * MON", "timezone": "Africa/Kampala", "quiet_hours": "21:00-08:00"}
    # when an operator adds a weekly schedule and a relative one
    weekly = client.post("/api/v1/schedules", json=body, headers=bearer(keys["operator"]))
    relative = client.post("/api/v1/schedules", json={**body, "name": "day before", "cron": None,
                                                      "relative": "24h before visit"},
                           headers=bearer(keys["operator"]))
    # then both are listed as `blast schedule list --json` shows them, with their next firing
    assert weekly.status_code == relative.status_code == 201, (weekly.text, relative.text)
    shown = weekly.json()
    assert shown["kind"] == "cron" and shown["cron"] == "0 9 * * MON" and shown["enabled"]
    assert shown["timezone"] == "Africa/Kampala" and shown["quiet_hours"] == "21:00-08:00"
    assert shown["next_fire_at"] and shown["phone_column"] == "phone"
    assert relative.json()["kind"] == "relative" and relative.json()["relative"] == "1d before visit"
    listed = client.get("/api/v1/schedules", headers=bearer(keys["viewer"])).json()["items"]
    assert [item["name"] for item in listed] == ["weekly", "day before"]
    # and a viewer may not add one; a cron that is not one is refused with the reason
    assert client.post("/api/v1/schedules", json=body, headers=bearer(keys["viewer"])).status_code == 403
    wrong = client.post("/api/v1/schedules", json={**body, "cron": "every monday"}, headers=bearer(keys["operator"]))
    assert wrong.status_code == 400 and "cron" in wrong.json()["detail"]
    # when one is removed, then it stays listed, disabled; an unknown id is 404
    assert client.delete(f"/api/v1/schedules/{shown['id']}", headers=bearer(keys["operator"])).status_code == 204
    items = client.get("/api/v1/schedules", headers=bearer(keys["viewer"])).json()["items"]
    after = {item["id"]: item for item in items}
    assert after[shown["id"]]["enabled"] is False and after[shown["id"]]["next_fire_at"] is None
    assert client.delete("/api/v1/schedules/999", headers=bearer(keys["operator"])).status_code == 404
    # and the audit log has the two added and the one removed, by the operator's key
    from campaigns import audit

    done = [(entry["action"], entry["actor"]) for entry in audit.listing(engine) if entry["object_type"] == "schedule"]
    assert done == [("schedule.remove", "key:operator system"), ("schedule.add", "key:operator system"),
                    ("schedule.add", "key:operator system")]


def test_each_key_has_its_request_rate(api, monkeypatch):
    from campaigns.settings import reset_settings

    client, keys = api
    # given keys allowed one request every ten seconds
    monkeypatch.setenv("BLAST_API_RATE_PER_KEY", "0.1")
    reset_settings()
    # when one key makes two requests at once
    answers_ = [client.get("/api/v1/accounts", headers=bearer(keys["viewer"])) for _ in range(2)]
    # then the second does not wait many seconds for its turn: 429, problem+json, with Retry-After
    assert [answer.status_code for answer in answers_] == [200, 429]
    assert answers_[1].headers["content-type"] == PROBLEM and int(answers_[1].headers["retry-after"]) >= 1
    assert "0.1 requests a second" in answers_[1].json()["detail"]
    # and another key is not slowed by it
    assert client.get("/api/v1/accounts", headers=bearer(keys["operator"])).status_code == 200


def test_a_campaign_launched_with_a_canary(api, engine):
    client, keys = api
    headers = bearer(keys["operator"])
    # given a canary that is no count or share, canary_auto alone, and a canary on a draft, then each is refused
    # (422, as problem+json, saying why) and nothing is made
    for fields, said in (({"canary": "0", "launch": True}, "percentage under 100"),
                         ({"canary": "many", "launch": True}, "percentage under 100"),
                         ({"canary_auto": True, "launch": True}, "canary_auto goes with canary"),
                         ({"canary": "1"}, "launch: true")):
        refused = client.post("/api/v1/campaigns", json=new_campaign(**fields), headers=headers)
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
        assert said in refused.json()["detail"]
    assert campaigns_in(engine) == 0
    # when a campaign is launched with a canary of one, judged by itself
    made = client.post("/api/v1/campaigns", json=new_campaign(canary="1", canary_auto=True, launch=True),
                       headers=headers)
    assert made.status_code == 201
    # then its slice ends at its first valid message, as `blast launch --canary 1 --canary-auto` sets it
    with engine.connect() as connection:
        held = connection.execute(select(Campaign.canary_until_id, Campaign.canary_auto)).one()
        first = connection.execute(select(func.min(Message.id)).where(Message.state != "skipped")).scalar_one()
    assert tuple(held) == (first, True)
