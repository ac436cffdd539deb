"""Delivery reports, webhooks and opt-outs, on SQLite and the real Postgres."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from campaigns import delivery, optouts
from campaigns.events import StatusUpdate
from campaigns.models import Campaign, Message, OptOut, StatusEvent
from campaigns.settings import reset_settings
from campaigns.states import EventKind
from tests.support.factories import make_campaign, make_messages
from tests.support.webhooks import CONFIG, SECRET


def submitted(engine, count: int, *, account: str = "dv", provider: str = "devino",
              campaign_status: str = "running") -> list[int]:
    """Given `count` messages the gateway accepted, with provider ids p<id>."""
    campaign = make_campaign(engine, account=account, provider=provider, status=campaign_status)
    ids = make_messages(engine, campaign.id, count, state="submitted")
    with engine.begin() as connection:
        for message_id in ids:
            connection.execute(update(Message).where(Message.id == message_id)
                               .values(provider_message_id=f"p{message_id}"))
    return ids


def states(engine, ids: list[int]) -> list[str]:
    with engine.connect() as connection:
        rows = dict(connection.execute(select(Message.id, Message.state).where(Message.id.in_(ids))).all())
    return [rows[message_id] for message_id in ids]


def message(engine, message_id: int):
    with engine.connect() as connection:
        return connection.execute(select(Message.__table__).where(Message.id == message_id)).one()


def status(provider_id: str, kind: EventKind, **fields) -> StatusUpdate:
    return StatusUpdate(provider_message_id=provider_id, kind=kind, **fields)


def test_reordered_and_replayed_events_end_at_read(engine):
    ids = submitted(engine, 3)
    events = [status(f"p{i}", kind) for i in ids for kind in (EventKind.READ, EventKind.SENT, EventKind.DELIVERED)]

    counts = delivery.apply_updates(engine, "dv", events, source="webhook")
    assert counts["stored"] == 9 and counts["matched"] == 9
    assert states(engine, ids) == ["read"] * 3

    # when the same events come again, and a late "sent" after "read"
    again = delivery.apply_updates(engine, "dv", [*events, status(f"p{ids[0]}", EventKind.SENT)])
    assert again["moved"] == 0
    assert states(engine, ids) == ["read"] * 3
    with engine.connect() as connection:
        assert len(connection.execute(select(StatusEvent.id)).all()) == 19


def test_failure_keeps_code_and_reason(engine):
    ids = submitted(engine, 1)
    delivery.apply_updates(engine, "dv", [status(f"p{ids[0]}", EventKind.SENT, error_code="2305",
                                                reason="not on WhatsApp", outcome="recipient")])
    row = message(engine, ids[0])
    assert (row.state, row.error_code, row.error_reason) == ("failed", "2305", "not on WhatsApp")


def test_throttled_callback_resends_exactly_once(engine):
    ids = submitted(engine, 1)
    throttled = status(f"p{ids[0]}", EventKind.THROTTLED, error_code="2301", outcome="throttled")

    first = delivery.apply_updates(engine, "dv", [throttled])
    assert first["moved"] == 1
    row = message(engine, ids[0])
    assert row.state == "pending" and row.provider_message_id is None and row.next_attempt_at is not None

    # when the message is sent again and gets a new provider id, the old 2301 replayed changes nothing
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == ids[0])
                           .values(state="submitted", provider_message_id="p-new"))
    again = delivery.apply_updates(engine, "dv", [throttled, throttled])
    assert again["moved"] == 0
    assert message(engine, ids[0]).state == "submitted"


@pytest.mark.parametrize(("before", "after", "message_after"), [("finished", "running", "pending"),
                                                                ("paused", "paused", "pending"),
                                                                ("cancelled", "cancelled", "cancelled")])
def test_a_late_2301_follows_the_campaigns_status(engine, before, after, message_after):
    # given a campaign whose messages were all accepted (finished), or one the operator paused or cancelled
    ids = submitted(engine, 2, campaign_status=before)
    # when a late 2301 callback arrives for one of them
    delivery.apply_updates(engine, "dv", [status(f"p{ids[0]}", EventKind.THROTTLED, error_code="2301",
                                                 outcome="throttled")])
    # then the message waits to be sent again and a finished campaign runs again so the pacer sends it;
    # a paused one keeps the operator's decision, and in a cancelled one the message is cancelled
    assert states(engine, ids) == [message_after, "submitted"]
    with engine.connect() as connection:
        campaign_status = connection.execute(select(Campaign.status).join(Message, Message.campaign_id == Campaign.id)
                                             .where(Message.id == ids[0])).scalar_one()
    assert campaign_status == after


def test_callback_before_the_provider_id_is_applied_later(engine):
    campaign = make_campaign(engine, account="dv", provider="devino", status="running")
    [message_id] = make_messages(engine, campaign.id, 1, state="sending")
    early = status("late-id", EventKind.DELIVERED, reference=str(message_id))

    counts = delivery.apply_updates(engine, "dv", [early])
    assert counts["waiting"] == 1 and message(engine, message_id).state == "sending"

    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == message_id)
                           .values(state="submitted", provider_message_id="late-id"))
    assert delivery.apply_waiting(engine) == 1
    assert message(engine, message_id).state == "delivered"
    assert delivery.apply_waiting(engine) == 0


def test_events_of_another_account_do_not_match(engine):
    ids = submitted(engine, 1)
    delivery.apply_updates(engine, "elsewhere", [status(f"p{ids[0]}", EventKind.READ)])
    assert states(engine, ids) == ["submitted"]


# ---------------------------------------------------------------------- webhooks


@pytest.fixture
def client(engine, tmp_path, monkeypatch):
    (tmp_path / "hooks.toml").write_text(CONFIG)
    monkeypatch.setenv("BLAST_CONFIG", str(tmp_path / "hooks.toml"))
    reset_settings()
    from campaigns.web import hooks

    app = FastAPI()
    app.include_router(hooks.router)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def devino_item(provider_id: str, word: str, code: int = 0) -> dict:
    return {"messageId": provider_id, "ts": 1700000000, "status": word, "errorCode": code, "options": None}


def test_devino_callbacks_move_messages(engine, client):
    ids = submitted(engine, 2)
    body = [devino_item(f"p{ids[0]}", "Delivered"), devino_item(f"p{ids[1]}", "Read"),
            devino_item(f"p{ids[0]}", "Sent")]

    answer = client.post(f"/hooks/devino/dv?token={SECRET}", json=body)
    # then 200 with an empty body, as Devino wants (providers/README.md), and every callback applied
    assert (answer.status_code, answer.content) == (200, b"")
    assert states(engine, ids) == ["delivered", "read"]
    replay = client.post("/hooks/devino/dv", json=body, headers={"X-Blast-Token": SECRET})
    assert replay.status_code == 200
    assert states(engine, ids) == ["delivered", "read"]


def test_devino_2301_callback_sets_pending_once(engine, client):
    ids = submitted(engine, 1)
    body = [devino_item(f"p{ids[0]}", "Undelivered", 2301)]
    assert client.post(f"/hooks/devino/dv?token={SECRET}", json=body).status_code == 200
    assert states(engine, ids) == ["pending"]
    # a replay names a provider id the message no longer carries: kept, applied to nothing
    assert client.post(f"/hooks/devino/dv?token={SECRET}", json=body).status_code == 200
    assert states(engine, ids) == ["pending"]
    with engine.connect() as connection:
        applied = connection.execute(select(StatusEvent.applied).order_by(StatusEvent.id)).scalars().all()
    assert applied == [True, False]


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("/hooks/devino/dv?token=" + SECRET, b"not json", 400),
    ("/hooks/devino/dv?token=" + SECRET, b"[1, 2]", 400),
    ("/hooks/devino/dv?token=" + SECRET, b'[{"status": "Sent"}]', 400),
    ("/hooks/httpapi/wa?token=" + SECRET, b"\xff\xfe", 400),
    ("/hooks/devino/nobody?token=" + SECRET, b"[]", 404),
    ("/hooks/httpapi/dv?token=" + SECRET, b"[]", 404),
    ("/hooks/devino/dv", b"[]", 401),
    ("/hooks/devino/dv?token=wrong", b"[]", 403),
])
def test_bad_requests_are_refused_without_a_500(client, path, body, expected):
    assert client.post(path, content=body, headers={"content-type": "application/json"}).status_code == expected


def test_httpapi_delivery_and_multipart_stop(engine, client):
    ids = submitted(engine, 1, account="wa", provider="httpapi")
    delivery_report = {"messageID": f"p{ids[0]}", "reportType": "delivery", "status": 4, "statusInfo": "Read"}
    assert client.post(f"/hooks/httpapi/wa?token={SECRET}", json=delivery_report).status_code == 200
    assert states(engine, ids) == ["read"]

    # given a pending message to a number that then replies "Arrêt !" with a photo
    campaign = make_campaign(engine, account="wa", provider="httpapi", status="running", name="next")
    [pending] = make_messages(engine, campaign.id, 1, start=500)
    phone = message(engine, pending).phone
    inbox = {"reportType": "inbox", "phone": phone.lstrip("+"), "type": "text", "value": " Arrêt ! "}
    answer = client.post(f"/hooks/httpapi/wa?token={SECRET}", data={"json": json.dumps(inbox)},
                         files={"file": ("p.jpg", b"\xff\xd8 image", "image/jpeg")})
    assert answer.status_code == 200 and answer.json()["opted_out"] == 1
    assert message(engine, pending).state == "skipped"
    with engine.connect() as connection:
        assert connection.execute(select(OptOut.phone)).scalars().all() == [phone]


# ---------------------------------------------------------------------- opt-outs


@pytest.mark.parametrize("text", ["STOP", " stop ", "S T O P", "Unsubscribe", "STOPP", "ARRÊT", "arret", "Alto",
                                  "PARAR", "baja", "Saca", "KOMESHA", "stop."])
def test_stop_words_in_several_languages(text):
    assert optouts.is_stop(text)


@pytest.mark.parametrize("text", ["Stop by the shop tomorrow", "hello", "", "stopped"])
def test_other_messages_are_not_stops(text):
    assert not optouts.is_stop(text)


def test_configured_keywords_replace_the_defaults(monkeypatch):
    monkeypatch.setenv(optouts.KEYWORDS_ENVIRONMENT, "Halt, Basta")
    assert optouts.is_stop("halt") and optouts.is_stop("BASTA") and not optouts.is_stop("stop")


def test_optout_cli_add_list_remove(engine):
    from campaigns.cli import app

    runner = CliRunner()
    added = runner.invoke(app, ["optout", "add", "+256700000001", "0700000002", "--region", "UG"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["optout", "list", "--json"])
    assert sorted(item["phone"] for item in json.loads(listed.output)) == ["+256700000001", "+256700000002"]
    assert runner.invoke(app, ["optout", "remove", "+256700000001"]).exit_code == 0
    listed = runner.invoke(app, ["optout", "list", "--json"])
    assert [item["phone"] for item in json.loads(listed.output)] == ["+256700000002"]
    assert runner.invoke(app, ["optout", "add", "garbage"]).exit_code == 1


def test_status_groups_failures_by_reason_and_code(engine):
    from campaigns import tallies

    ids = submitted(engine, 3)
    delivery.apply_updates(engine, "dv", [
        status(f"p{ids[0]}", EventKind.FAILED, error_code="2305", reason="not on WhatsApp"),
        status(f"p{ids[1]}", EventKind.FAILED, error_code="2305", reason="not on WhatsApp"),
        status(f"p{ids[2]}", EventKind.FAILED, error_code="undelivered", reason="undelivered"),
    ])
    with engine.connect() as connection:
        campaign_id = connection.execute(select(Message.campaign_id).where(Message.id == ids[0])).scalar_one()
    report = tallies.campaign_report(campaign_id)
    assert set(report) >= {"id", "name", "status", "total", "counts", "failures"}
    assert report["failures"] == [{"reason": "not on WhatsApp", "code": "2305", "count": 2},
                                  {"reason": "undelivered", "code": "undelivered", "count": 1}]


def test_the_access_log_never_shows_the_secret(caplog):
    import logging

    from campaigns.web import hooks  # noqa: F401  (installs the filter)

    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1", "POST",
                                                 f"/hooks/devino/dv?token={SECRET}", 200)
    assert SECRET not in caplog.text and "token=****" in caplog.text


def test_uvicorns_access_formatter_prints_webhook_lines_with_the_token_masked(capsys):
    # given uvicorn's own access formatter on the access log, as `blast web` runs it
    import logging

    from uvicorn.logging import AccessFormatter

    from campaigns.web import hooks  # noqa: F401  (installs the filter)

    handler = logging.StreamHandler()
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        # when a webhook request is logged the way uvicorn logs it (five arguments)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", f"/hooks/devino/dv?token={SECRET}",
                    "1.1", 200)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    # then one line, the token masked, and no logging error
    err = capsys.readouterr().err
    assert "--- Logging error ---" not in err and "Traceback" not in err
    assert SECRET not in err and "token=****" in err


@pytest.mark.parametrize("body", [
    b'[{"messageId": "p\\u0000x", "status": "DELIVERED", "errorCode": "\\u0000", "options": "1"}]',
    '[{"messageId": 5, "status": "READ", "options": "\u00b2"}]'.encode(),
    b'[{"messageId": 6, "status": "READ", "options": "123456789012345678901234567890"}]',
    b'{"from": "+256701234567\\u0000", "text": "STOP\\u0000"}',
])
def test_hostile_callbacks_with_a_valid_token_are_stored_or_refused_never_a_500(engine, client, body):
    answer = client.post(f"/hooks/devino/dv?token={SECRET}", content=body,
                         headers={"content-type": "application/json"})
    assert answer.status_code in (200, 400), answer.text


def test_a_deeply_nested_callback_is_a_400(client):
    body = b"[" * 50_000 + b"]" * 50_000
    answer = client.post(f"/hooks/devino/dv?token={SECRET}", content=body,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400
