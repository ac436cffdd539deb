"""Meta Cloud API webhooks at /hooks/metacloud/{account}: the GET handshake, the X-Hub-Signature-256 check on the
raw body (401 and nothing changed when forged), statuses through the one event path, inbound messages opening
the 24-hour window, STOP opting out; on SQLite and the real Postgres."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from campaigns import service_window
from campaigns.models import Message, OptOut, ServiceWindow, StatusEvent
from campaigns.settings import reset_settings
from tests.support.factories import make_campaign, make_messages

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "meta-verify-token"
FIRST_NUMBER, SECOND_NUMBER, OTHER_APP_NUMBER = "106540352242922", "106540352242923", "106540352242924"
CONFIG = f"""
[accounts.meta]
provider = "metacloud"
access_token = "EAAG-token"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"

[accounts.meta_second]
provider = "metacloud"
access_token = "EAAG-token-2"
phone_number_id = "{SECOND_NUMBER}"
waba_id = "102290129340398"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"

[accounts.meta_other_app]
provider = "metacloud"
access_token = "EAAG-token-3"
phone_number_id = "{OTHER_APP_NUMBER}"
waba_id = "102290129340399"
app_secret = "another-apps-secret"
verify_token = "another-verify-token"
"""


@pytest.fixture
def client(engine, tmp_path, monkeypatch):
    (tmp_path / "meta.toml").write_text(CONFIG)
    monkeypatch.setenv("BLAST_CONFIG", str(tmp_path / "meta.toml"))
    reset_settings()
    from campaigns.web import hooks

    app = FastAPI()
    app.include_router(hooks.router)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def notification(value: dict, number_id: str = FIRST_NUMBER) -> bytes:
    """Meta's envelope, serialised as Meta does: non-ASCII escaped."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550783881", "phone_number_id": number_id}, **value}}]}]}).encode()


def post(client, body: bytes, secret: str = APP_SECRET):
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/hooks/metacloud/meta", content=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"})


def submitted(engine, count: int, account: str = "meta") -> list[int]:
    campaign = make_campaign(engine, account=account, provider="metacloud", status="running")
    ids = make_messages(engine, campaign.id, count, state="submitted")
    with engine.begin() as connection:
        for message_id in ids:
            connection.execute(update(Message).where(Message.id == message_id)
                               .values(provider_message_id=f"wamid.{message_id}"))
    return ids


def states(engine, ids):
    with engine.connect() as connection:
        found = dict(connection.execute(select(Message.id, Message.state).where(Message.id.in_(ids))).all())
    return [found[i] for i in ids]


def test_the_handshake_echoes_the_challenge_only_for_our_verify_token(client):
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    answer = client.get("/hooks/metacloud/meta", params=query)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert client.get("/hooks/metacloud/meta", params={**query, "hub.verify_token": "guess"}).status_code == 403
    assert client.get("/hooks/metacloud/nobody", params=query).status_code == 404


def test_signed_statuses_move_messages_through_the_event_path(engine, client):
    # given two messages Meta accepted
    ids = submitted(engine, 2)
    body = notification({"statuses": [
        {"id": f"wamid.{ids[0]}", "status": "delivered", "timestamp": "1733140000", "recipient_id": "2567",
         "biz_opaque_callback_data": str(ids[0])},
        {"id": f"wamid.{ids[1]}", "status": "failed", "timestamp": "1733140001", "recipient_id": "2567",
         "errors": [{"code": 131026, "title": "Message Undeliverable"}]},
        {"id": f"wamid.{ids[0]}", "status": "read", "timestamp": "1733140002", "recipient_id": "2567"}]})
    # when Meta posts their statuses, signed
    answer = post(client, body)
    # then they move, the failure keeps its code
    assert answer.status_code == 200
    assert states(engine, ids) == ["read", "failed"]
    with engine.connect() as connection:
        assert connection.execute(select(Message.error_code).where(Message.id == ids[1])).scalar() == "131026"


@pytest.mark.parametrize("forgery", ["wrong secret", "no header", "body changed", "sha1 header"])
def test_a_forged_signature_is_401_and_changes_nothing(engine, client, forgery):
    # given a message Meta accepted
    [message_id] = submitted(engine, 1)
    body = notification({"statuses": [{"id": f"wamid.{message_id}", "status": "read", "timestamp": "1733140000"}]})
    # when a notification comes without a good signature
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}
    if forgery == "wrong secret":
        answer = post(client, body, secret="guessed")
    elif forgery == "no header":
        answer = client.post("/hooks/metacloud/meta", content=body, headers={"Content-Type": "application/json"})
    elif forgery == "body changed":
        answer = client.post("/hooks/metacloud/meta", content=body.replace(b"read", b"sent"), headers=headers)
    else:
        sha1 = hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
        answer = client.post("/hooks/metacloud/meta", content=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature": f"sha1={sha1}"})
    # then 401, and nothing is stored or moved
    assert answer.status_code == 401
    assert states(engine, [message_id]) == ["submitted"]
    with engine.connect() as connection:
        assert connection.execute(select(StatusEvent.id)).first() is None


def test_inbound_messages_open_the_window_and_stop_opts_out(engine, client):
    # given a pending message to a number
    campaign = make_campaign(engine, account="meta", provider="metacloud", status="running")
    [pending] = make_messages(engine, campaign.id, 1)
    with engine.connect() as connection:
        phone = connection.execute(select(Message.phone).where(Message.id == pending)).scalar()
    # when that number writes "hello", then taps a STOP quick reply, and another number writes "Grüße"
    body = notification({"contacts": [{"profile": {"name": "Asha"}, "wa_id": phone[1:]}], "messages": [
        {"from": phone[1:], "id": "wamid.in1", "timestamp": "1733140000", "type": "text", "text": {"body": "hello"}},
        {"from": phone[1:], "id": "wamid.in2", "timestamp": "1733140001", "type": "button",
         "button": {"payload": "STOP", "text": "Stop promotions"}},
        {"from": "256709999999", "id": "wamid.in3", "timestamp": "1733140002", "type": "text",
         "text": {"body": "Grüße"}}]})
    answer = post(client, body)
    # then both numbers' windows are recorded for the account, and the STOP opted the first one out
    assert answer.status_code == 200 and answer.json()["opted_out"] == 1
    with engine.connect() as connection:
        windows = set(connection.execute(select(ServiceWindow.account_name, ServiceWindow.phone)).all())
        assert connection.execute(select(OptOut.phone)).scalars().all() == [phone]
        assert connection.execute(select(Message.state).where(Message.id == pending)).scalar() == "skipped"
    assert windows == {("meta", phone), ("meta", "+256709999999")}
    # (the times are Meta's, from December 2024: outside any window opened now)
    assert service_window.open_numbers(engine, "meta", 24) == frozenset()
    with engine.begin() as connection:
        service_window.record(connection, "meta", [(phone, None)])
    assert service_window.open_numbers(engine, "meta", 24) == {phone}


def test_one_callback_address_serves_every_number_of_the_app(engine, client, caplog):
    # given a message sent through each of two numbers of one Meta app (accounts meta and meta_second), and a
    # third account of another app
    [first] = submitted(engine, 1)
    [second] = submitted(engine, 1, account="meta_second")
    [other] = submitted(engine, 1, account="meta_other_app")
    # when Meta posts to the one callback address the app has (the first account's), in one notification, the
    # second number's status and a STOP it received, and the first number's status
    body = json.loads(notification({"statuses": [
        {"id": f"wamid.{second}", "status": "delivered", "timestamp": "1733140000", "recipient_id": "2567"}],
        "messages": [{"from": "256701112222", "id": "wamid.in9", "timestamp": "1733140001", "type": "text",
                      "text": {"body": "STOP"}}]}, number_id=SECOND_NUMBER))
    body["entry"] += json.loads(notification({"statuses": [
        {"id": f"wamid.{first}", "status": "read", "timestamp": "1733140002", "recipient_id": "2567"}]}))["entry"]
    answer = post(client, json.dumps(body).encode())
    # then each number's events are its own account's: both messages move, the window opened is the second's
    assert answer.status_code == 200 and answer.json()["opted_out"] == 1
    assert states(engine, [first, second]) == ["read", "delivered"]
    with engine.connect() as connection:
        assert set(connection.execute(select(ServiceWindow.account_name, ServiceWindow.phone)).all()) == {
            ("meta_second", "+256701112222")}
    # when a status about the other app's number comes signed with this app's secret
    forged = notification({"statuses": [{"id": f"wamid.{other}", "status": "read", "timestamp": "1733140003"}]},
                          number_id=OTHER_APP_NUMBER)
    with caplog.at_level("WARNING", logger="campaigns.web.hooks"):
        answer = post(client, forged)
    # then it is answered (Meta would only send it again) and changes nothing, and a warning names the number
    assert answer.status_code == 200 and answer.json()["unrouted"] == 1
    assert states(engine, [other]) == ["submitted"]
    assert OTHER_APP_NUMBER in caplog.text
