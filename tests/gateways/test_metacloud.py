"""The Meta Cloud API client: every message kind and every row of its classification table, against the
sandbox over real HTTP; signed status webhooks; template listing; webhook parsing and signature checks."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from campaigns.events import Inbound, StatusUpdate
from campaigns.states import EventKind, Outcome
from tests.support.sandbox import METACLOUD_APP_SECRET, METACLOUD_VERIFY_TOKEN, account
from workers.providers.base import InvalidMessage, Outbound
from workers.providers.metacloud import OUTCOMES, UNCERTAIN, MetaCloudClient, parse_notification
from workers.sandbox.gateways.metacloud import ERRORS

TO = "+256701234567"
ORDER_SLOTS = [{"component": "body", "column": "name"}, {"component": "body", "column": "order"},
               {"component": "header", "format": "text", "column": "order"},
               {"component": "button", "index": 0, "sub_type": "url", "column": "order"}]
VARIABLES = {"name": "Asha", "order": "A-1042"}


def client(**overrides) -> MetaCloudClient:
    return MetaCloudClient(account("metacloud", **overrides))


# ---------------------------------------------------------------------- requests


def test_bearer_token_version_and_number_in_the_path():
    gateway = client(api_version="v22.0")
    request = gateway.build_payload(Outbound(message_id=7, to=TO, text="hi"))
    assert (request.method, request.path) == ("POST", f"/v22.0/{gateway.account.phone_number_id}/messages")
    assert gateway.headers["Authorization"] == f"Bearer {gateway.account.secret('access_token')}"
    assert request.json == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO,
                            "type": "text", "text": {"body": "hi", "preview_url": False},
                            "biz_opaque_callback_data": "7"}


def test_template_components_are_filled_from_the_recipients_columns():
    body = client().message_body(Outbound(message_id=1, to=TO, kind="template", variables=VARIABLES, options={
        "template": "order_update", "language": "en_US", "slots": ORDER_SLOTS}))
    assert body["template"] == {"name": "order_update", "language": {"code": "en_US"}, "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "A-1042"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "A-1042"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-1042"}]}]}


@pytest.mark.parametrize(("kind", "text", "options", "variables", "words"), [
    ("template", None, {"template": "order_update", "slots": ORDER_SLOTS}, {"name": "Asha"}, "column 'order' is empty"),
    ("template", None, {"template": "Order Update"}, {}, "needs options 'template'"),
    ("text", "x" * 4097, {}, {}, "over the limit of 4096"),
    ("buttons", "Pick", {"buttons": ["a", "b", "c", "d"]}, {}, "1 to 3"),
    ("buttons", "Pick", {"buttons": ["a" * 21]}, {}, "over the limit of 20"),
    ("list", "Pick", {"button_text": "Open", "rows": [{"title": f"r{n}"} for n in range(11)]}, {}, "1 to 10 rows"),
    ("image", "caption", {"media_url": "https://cdn.example/a.gif"}, {}, "image/gif is not a supported"),
    ("location", None, {"lat": 91, "lng": 0}, {}, "outside [-90, 90]"),
    ("contact", "x", {}, {}, "not offered"),
])
def test_limits_are_checked_before_sending(kind, text, options, variables, words):
    with pytest.raises(InvalidMessage, match=words.replace("[", r"\[").replace("(", r"\(")):
        client().validate(Outbound(message_id=1, to=TO, text=text, kind=kind, options=options, variables=variables))


# ---------------------------------------------------------------------- against the sandbox


@pytest.fixture
def metacloud(sandbox):
    gateway = MetaCloudClient(sandbox.account("metacloud"))
    yield gateway
    gateway.close()


KINDS = [
    Outbound(message_id=1, to=TO, kind="template", variables=VARIABLES,
             options={"template": "order_update", "language": "en_US", "slots": ORDER_SLOTS}),
    Outbound(message_id=2, to=TO, kind="template", variables={"photo": "https://cdn.example/p.jpg", "name": "Asha"},
             options={"template": "spring_sale", "language": "en_US", "slots": [
                 {"component": "body", "column": "name"},
                 {"component": "header", "format": "image", "column": "photo"}]}),
    Outbound(message_id=3, to=TO, kind="template", options={"template": "welcome", "language": "en_US"}),
    Outbound(message_id=4, to=TO, text="Hello", kind="text"),
    Outbound(message_id=5, to=TO, text="Flyer", kind="image", options={"media_url": "https://cdn.example/f.jpg"}),
    Outbound(message_id=6, to=TO, text="Clip", kind="video", options={"media_url": "https://cdn.example/c.mp4"}),
    Outbound(message_id=7, to=TO, text="Prices", kind="document",
             options={"media_url": "https://cdn.example/p.pdf", "filename": "prices.pdf"}),
    Outbound(message_id=8, to=TO, kind="audio", options={"media_url": "https://cdn.example/a.ogg"}),
    Outbound(message_id=9, to=TO, text="Confirm?", kind="buttons",
             options={"buttons": ["Yes", {"id": "n", "title": "No"}]}),
    Outbound(message_id=10, to=TO, text="Choose", kind="list", options={
        "button_text": "Slots", "sections": [{"title": "Monday", "rows": [{"id": "m9", "title": "9:00"}]}]}),
    Outbound(message_id=11, to=TO, kind="location", options={"lat": 0.3136, "lng": 32.5811, "name": "Office"}),
]


@pytest.mark.parametrize("message", KINDS, ids=[f"{m.kind}-{m.message_id}" for m in KINDS])
def test_each_kind_is_accepted(sandbox, metacloud, message):
    # given a number that wrote within 24 hours (free-form messages need it; templates do not)
    if message.kind != "template":
        sandbox.inbound("metacloud", None, TO, "hello")
    # when the message is sent
    result = metacloud.send(message)
    # then Meta accepts it with a wamid
    assert result.outcome == Outcome.ACCEPTED, result
    assert result.provider_message_id.startswith("wamid.")
    assert sandbox.account_stats("metacloud")["accepted_per_recipient"] == {TO: 1}


def test_free_form_outside_the_window_is_131047(sandbox, metacloud):
    # given a number that never wrote; when a text goes to it; then Meta refuses it: only templates may
    result = metacloud.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.CONTENT, "131047")


SYNC_CODES = sorted(code for code, (_, _, arrives) in ERRORS.items() if arrives == "sync")


@pytest.mark.parametrize("code", SYNC_CODES)
def test_every_synchronous_code_is_classified_by_its_row(sandbox, metacloud, code):
    # given the gateway answers this code; when a template goes
    sandbox.knobs("metacloud", error_code=code)
    result = metacloud.send(KINDS[2])
    # then the outcome is the table's row for it, whatever the HTTP status
    key = "200-299" if 200 <= code <= 299 else str(code)
    assert (result.outcome, result.code) == (OUTCOMES[key].outcome, str(code))


def test_subcode_33_is_auth_and_other_100s_are_content(sandbox):
    wrong_number = MetaCloudClient(sandbox.account("metacloud", phone_number_id="999"))
    assert wrong_number.send(KINDS[2]).outcome == Outcome.AUTH
    sandbox.knobs("metacloud", error_code=100)
    assert MetaCloudClient(sandbox.account("metacloud")).send(KINDS[2]).outcome == Outcome.CONTENT


def test_pair_rate_delays_that_recipient_only_and_throughput_backs_the_account_off(sandbox, metacloud):
    sandbox.knobs("metacloud", error_codes={TO: [131056, 130429]})
    pair = metacloud.send(KINDS[2])
    throughput = metacloud.send(KINDS[2])
    assert (pair.outcome, pair.recipient_only, pair.retry_after) == (
        Outcome.THROTTLED, True, UNCERTAIN["pair_rate_seconds"])
    assert (throughput.outcome, throughput.recipient_only) == (Outcome.THROTTLED, False)
    assert metacloud.send(KINDS[2]).outcome == Outcome.ACCEPTED  # the codes were answered once each


def test_a_paused_template_is_content_held_and_a_disabled_one_plain_content(sandbox, metacloud):
    # given Meta paused one template for low quality and disabled another (KINDS[2] is a template message)
    sandbox.knobs("metacloud", error_codes={TO: [132015, 132016]})
    paused, disabled = metacloud.send(KINDS[2]), metacloud.send(KINDS[2])
    # then the paused one holds the message for the template to come back; the disabled one fails it
    assert (paused.outcome, paused.code, paused.template_held) == (Outcome.CONTENT, "132015", True)
    assert (disabled.outcome, disabled.code, disabled.template_held) == (Outcome.CONTENT, "132016", False)


def test_wrong_token_is_auth(sandbox):
    result = MetaCloudClient(sandbox.account("metacloud", access_token="revoked")).send(KINDS[2])
    assert (result.outcome, result.code) == (Outcome.AUTH, "190")
    assert "revoked" not in str(result.raw)


@pytest.mark.parametrize(("status", "outcome"), [(503, Outcome.TRANSIENT), (500, Outcome.AMBIGUOUS)])
def test_answers_without_a_graph_error(sandbox, metacloud, status, outcome):
    sandbox.knobs("metacloud", **({"fail_fraction": 1.0} if status == 503 else {"lost_fraction": 1.0}))
    result = metacloud.send(KINDS[2])
    assert result.outcome in (outcome, Outcome.AMBIGUOUS)


def notifications(_content_type: str, body: bytes):
    return parse_notification(body)


def test_statuses_come_signed_with_our_reference_up_to_read(sandbox, metacloud, receiver):
    # given statuses that progress quickly, posted to our receiver
    sandbox.knobs("metacloud", progress_seconds=0.05, webhook_url=receiver.url)
    # when a template goes
    result = metacloud.send(KINDS[0])
    # then signed webhooks name its wamid, echo our id and reach read
    updates = receiver.collect(notifications, lambda items: any(u.kind == EventKind.READ for u in items))
    assert {u.provider_message_id for u in updates} == {result.provider_message_id}
    assert {u.reference for u in updates} == {"1"}
    assert [u.kind for u in updates] == [EventKind.SENT, EventKind.DELIVERED, EventKind.READ]
    for post in receiver.posts:
        headers = {name.lower(): value for name, value in post["headers"].items()}
        assert MetaCloudClient.webhook_signed(metacloud.account, headers, post["raw"])


ASYNC_CODES = sorted(code for code, (_, _, arrives) in ERRORS.items() if arrives == "async")


@pytest.mark.parametrize("code", ASYNC_CODES)
def test_every_asynchronous_code_fails_by_webhook_with_its_row(sandbox, metacloud, receiver, code):
    sandbox.knobs("metacloud", error_code=code, webhook_url=receiver.url)
    result = metacloud.send(KINDS[2])
    assert result.outcome == Outcome.ACCEPTED  # s2: a 200 means accepted for processing, nothing more
    updates = receiver.collect(notifications, lambda items: any(u.kind == EventKind.FAILED for u in items))
    failed = next(u for u in updates if u.kind == EventKind.FAILED)
    assert (failed.error_code, failed.outcome) == (str(code), OUTCOMES[str(code)].outcome)


def test_templates_are_listed_across_pages_with_their_parameters(sandbox):
    gateway = MetaCloudClient(sandbox.account("metacloud"))
    sandbox.knobs("metacloud", template_status={"welcome": "PAUSED"})
    templates = {(t["name"], t["language"]): t for t in gateway.list_templates()}
    order = templates[("order_update", "en_US")]
    assert (order["status"], order["category"]) == ("APPROVED", "UTILITY")
    assert [(s["component"], s.get("index")) for s in order["slots"]] == [
        ("body", None), ("body", None), ("header", None), ("button", 0)]
    assert "Hi {{1}}, your order {{2}}" in order["text"]
    assert templates[("welcome", "en_US")]["status"] == "PAUSED"
    assert templates[("spring_sale", "en_US")]["slots"][-1] == {
        "component": "header", "format": "image", "placeholder": "image"}
    assert ("appointment_reminder", "fr") in templates


# ---------------------------------------------------------------------- webhooks, without the network


def signed(body: bytes, secret: str = METACLOUD_APP_SECRET) -> dict:
    return {"x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def test_signature_over_the_raw_bytes():
    gateway = account("metacloud")
    body = b'{"object":"whatsapp_business_account","entry":[{"changes":[]}],"name":"J\\u00fcrgen"}'
    assert MetaCloudClient.webhook_signed(gateway, signed(body), body)
    assert not MetaCloudClient.webhook_signed(gateway, signed(body, "forged"), body)
    assert not MetaCloudClient.webhook_signed(gateway, signed(body), body.replace(b"\\u00fc", "ü".encode()))
    assert not MetaCloudClient.webhook_signed(gateway, {}, body)


def test_verification_handshake():
    gateway = account("metacloud")
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": METACLOUD_VERIFY_TOKEN}
    assert MetaCloudClient.webhook_challenge(gateway, query) == "1158201444"
    assert MetaCloudClient.webhook_challenge(gateway, {**query, "hub.verify_token": "guess"}) is None
    assert MetaCloudClient.webhook_challenge(gateway, {**query, "hub.mode": "unsubscribe"}) is None


def test_inbound_text_and_quick_reply_payload_are_read():
    body = (b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{'
            b'"messages":[{"from":"256701234567","id":"wamid.A","timestamp":"1733140000","type":"text",'
            b'"text":{"body":"STOP"}},{"from":"256701234568","id":"wamid.B","timestamp":"1733140001",'
            b'"type":"button","button":{"payload":"STOP","text":"Stop promotions"}}],'
            b'"statuses":[{"id":"wamid.C","status":"failed","timestamp":"1733140002","recipient_id":"256701234569",'
            b'"errors":[{"code":131056}]},{"id":"wamid.D","status":"played","timestamp":"1733140003"}]}}]}]}')
    events = parse_notification(body)
    inbound = [e for e in events if isinstance(e, Inbound)]
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert [(i.from_phone, i.text) for i in inbound] == [
        ("+256701234567", "STOP"), ("+256701234568", "STOP"), ("+256701234568", "Stop promotions")]
    assert [(s.kind, s.error_code) for s in statuses] == [(EventKind.THROTTLED, "131056"), (EventKind.READ, None)]
