"""The Devino client: the `messages` items it builds, the limits it checks, batches of up to 100 with a
result per item, and every kind, callback and error path against the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from campaigns.states import EventKind, Outcome
from tests.support.sandbox import account
from workers.providers import DevinoClient, InvalidMessage, Outbound, parse_devino_callback

TO = "+79034567890"


def client(**overrides) -> DevinoClient:
    return DevinoClient(account("devino", **overrides))


def item_of(message: Outbound) -> dict:
    [item] = client().build_payload(message).json["messages"]
    return item


# ---------------------------------------------------------------------- requests


def test_text_item_and_key_header():
    gateway = client()
    request = gateway.build_payload(Outbound(message_id=7, to=TO, text="Code: 1234"))
    assert (request.method, request.path) == ("POST", "/whatsapp/messages")
    assert request.json == {"messages": [{"from": "Blast", "to": "79034567890", "text": "Code: 1234",
                                          "callbackData": "7"}]}
    assert gateway.headers["Authorization"] == "Key sandbox-devino-key"


def test_callback_url_and_data_go_with_each_message():
    item = item_of(Outbound(message_id=7, to=TO, text="hi", callback_url="https://blast.example/hooks/devino/ru"))
    assert (item["callbackUrl"], item["callbackData"]) == ("https://blast.example/hooks/devino/ru", "7")


@pytest.mark.parametrize(
    ("kind", "options", "content"),
    [
        ("media", {"media_url": "https://cdn.example/files/flyer.png"},
         {"contentUrl": "https://cdn.example/files/flyer.png", "contentName": "flyer.png",
          "contentType": "image/png"}),
        ("document", {"media_url": "https://cdn.example/d?id=1", "filename": "price list.pdf"},
         {"contentUrl": "https://cdn.example/d?id=1", "contentName": "price list.pdf",
          "contentType": "application/pdf"}),
        ("video", {"media_url": "https://cdn.example/v.mp4", "content_type": "video/mp4"},
         {"contentUrl": "https://cdn.example/v.mp4", "contentName": "v.mp4", "contentType": "video/mp4"}),
        ("audio", {"media_url": "https://cdn.example/a.ogg"},
         {"contentUrl": "https://cdn.example/a.ogg", "contentName": "a.ogg", "contentType": "audio/ogg"}),
    ],
)
def test_media_items(kind, options, content):
    item = item_of(Outbound(message_id=1, to=TO, text="caption", kind=kind, options=options))
    assert item == {"from": "Blast", "to": "79034567890", "text": "caption", "callbackData": "1", **content}


def test_template_item():
    options = {"template_id": "tpl-42", "params": ["Aisha", "Friday"], "language_code": "ru", "validity": 1}
    item = item_of(Outbound(message_id=1, to=TO, text="Hello Aisha, see you Friday", kind="template",
                            options=options))
    assert item == {"from": "Blast", "to": "79034567890", "text": "Hello Aisha, see you Friday",
                    "callbackData": "1", "templateId": "tpl-42",
                    "templateParams": {"1": "Aisha", "2": "Friday"}, "languageCode": "ru", "validity": 1}


@pytest.mark.parametrize(
    ("kind", "text", "options", "words"),
    [
        ("text", "x" * 1001, {}, "1001 characters, over the limit of 1000"),
        ("text", "", {}, "text is required"),
        ("template", "", {"template_id": "t"}, "text is required"),
        ("media", "hi", {}, "media_url must be an http or https URL"),
        ("media", "hi", {"media_url": "https://cdn.example/a.png", "filename": "n" * 101},
         "contentName is 101"),
        ("image", "hi", {"media_url": "https://cdn.example/a.gif"}, "image/gif is not a supported image"),
        ("video", "hi", {"media_url": "https://cdn.example/a.mp4", "size_bytes": 6 * 1024 * 1024},
         "over the limit of 5.0 MB"),
        ("document", "hi", {"media_url": "https://cdn.example/a.pdf", "size_bytes": 101 * 1024 * 1024},
         "over the limit of 100.0 MB"),
        ("text", "hi", {"validity": 1}, "validity is only given with a template"),
        ("template", "hi", {}, "needs options 'template_id'"),
        ("template", "hi", {"template_id": "t", "language_code": "english please"}, "not a language code"),
        ("template", "hi", {"template_id": "t", "validity": -1}, "validity must be a positive whole number"),
        ("template", "hi", {"template_id": "t", "params": {"first": "x"}}, "not a position number"),
        ("location", None, {"lat": 1, "lng": 1}, "kind 'location' is not offered"),
    ],
)
def test_limits_are_checked_before_sending_with_a_clear_error(kind, text, options, words):
    with pytest.raises(InvalidMessage) as error:
        client().validate(Outbound(message_id=1, to=TO, text=text, kind=kind, options=options))
    assert words in str(error.value)


def test_bad_callback_url_and_missing_sender_are_refused():
    with pytest.raises(InvalidMessage, match="callbackUrl"):
        client().validate(Outbound(message_id=1, to=TO, text="hi", callback_url="not a url"))
    with pytest.raises(InvalidMessage, match="no sender"):
        client(sender=None).validate(Outbound(message_id=1, to=TO, text="hi"))


def test_a_call_never_carries_more_than_max_batch():
    gateway = client(batch_size=2)
    with pytest.raises(InvalidMessage, match="3 messages in one call, over the limit of 2"):
        gateway.build_batch([Outbound(message_id=n, to=TO, text="hi") for n in range(3)])


# ---------------------------------------------------------------------- against the sandbox


@pytest.fixture
def devino(sandbox):
    gateway = DevinoClient(sandbox.account("devino"))
    yield gateway
    gateway.close()


def callbacks(_content_type: str, body: bytes):
    return parse_devino_callback(body)


KINDS = [
    Outbound(message_id=1, to=TO, text="Code: 1234"),
    Outbound(message_id=2, to=TO, text="Our flyer", kind="media",
             options={"media_url": "https://cdn.example/f.jpg"}),
    Outbound(message_id=3, to=TO, text="Clip", kind="video", options={"media_url": "https://cdn.example/c.mp4"}),
    Outbound(message_id=4, to=TO, text="Hello Aisha", kind="template",
             options={"template_id": "tpl-1", "params": {"1": "Aisha"}, "language_code": "EN",
                      "validity": 1}),
]


@pytest.mark.parametrize("message", KINDS, ids=[m.kind for m in KINDS])
def test_each_kind_is_accepted(sandbox, devino, message):
    result = devino.send(message)
    assert result.outcome == Outcome.ACCEPTED, result
    assert result.provider_message_id
    assert sandbox.account_stats("devino")["accepted_per_recipient"] == {TO: 1}


def test_batches_of_up_to_100_with_a_result_per_item_in_order(sandbox, devino):
    # given 250 messages, one of them breaking a limit
    messages = [Outbound(message_id=n, to=f"+7903{n:07d}", text=f"hello {n}") for n in range(250)]
    messages[120] = Outbound(message_id=120, to="+79030000120", text="x" * 1001)
    # when sent as a batch
    results = devino.send_batch(messages)
    # then one result per message in order: the bad one is content and never sent, the rest accepted,
    # in three calls of at most 100
    assert len(results) == 250
    assert results[120].outcome == Outcome.CONTENT
    accepted = [r for i, r in enumerate(results) if i != 120]
    assert all(r.outcome == Outcome.ACCEPTED for r in accepted)
    assert len({r.provider_message_id for r in accepted}) == 249
    stats = sandbox.account_stats("devino")
    assert stats["accepted"] == 249 and stats["requests"] == 3
    assert "+79030000120" not in stats["accepted_per_recipient"]


def test_callbacks_bring_statuses_with_our_reference(sandbox, devino, receiver):
    # given statuses that progress quickly
    sandbox.knobs("devino", progress_seconds=0.05)
    # when a message goes with our callback URL
    result = devino.send(Outbound(message_id=77, to=TO, text="hi", callback_url=receiver.url))
    # then the callbacks name it, carry our id back, and reach read
    updates = receiver.collect(callbacks, lambda items: any(u.kind == EventKind.READ for u in items))
    assert {u.provider_message_id for u in updates} == {result.provider_message_id}
    assert {u.reference for u in updates} == {"77"}
    assert [u.kind for u in updates][-1] == EventKind.READ


def test_over_the_rate_cap_is_accepted_then_throttled_by_callback(sandbox, devino, receiver):
    sandbox.knobs("devino", rate_cap=1)
    results = devino.send_batch([
        Outbound(message_id=n, to=f"+790300000{n:02d}", text="hi", callback_url=receiver.url) for n in range(5)])
    assert all(r.outcome == Outcome.ACCEPTED for r in results)
    updates = receiver.collect(callbacks, lambda items: any(u.kind == EventKind.THROTTLED for u in items))
    throttled = [u for u in updates if u.kind == EventKind.THROTTLED]
    assert throttled[0].error_code == "2301" and throttled[0].outcome == Outcome.THROTTLED
    assert throttled[0].reference in {str(n) for n in range(5)}


def test_number_not_on_whatsapp_fails_by_callback_2305(sandbox, devino, receiver):
    sandbox.knobs("devino", not_on_whatsapp=[TO])
    result = devino.send(Outbound(message_id=5, to=TO, text="hi", callback_url=receiver.url))
    updates = receiver.collect(callbacks, lambda items: any(u.kind == EventKind.FAILED for u in items))
    failed = next(u for u in updates if u.kind == EventKind.FAILED)
    assert (failed.provider_message_id, failed.error_code, failed.outcome) == (
        result.provider_message_id, "2305", Outcome.RECIPIENT)


def test_no_money_is_quota(sandbox, devino):
    sandbox.knobs("devino", quota=0)
    result = devino.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.QUOTA, "billing.error")


def test_wrong_key_is_auth(sandbox):
    gateway = DevinoClient(sandbox.account("devino", api_key="wrong-key"))
    results = gateway.send_batch([Outbound(message_id=n, to=TO, text="hi") for n in range(2)])
    assert [r.outcome for r in results] == [Outcome.AUTH, Outcome.AUTH]


def test_gateway_failure_is_transient_for_the_whole_call(sandbox, devino):
    sandbox.knobs("devino", fail_fraction=1.0)
    results = devino.send_batch([Outbound(message_id=n, to=TO, text="hi") for n in range(3)])
    assert [(r.outcome, r.code) for r in results] == [(Outcome.TRANSIENT, "HTTP 503")] * 3
