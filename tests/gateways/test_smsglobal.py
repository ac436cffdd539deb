"""The SMSGlobal client: MAC signing, the message object for each kind, the limits it checks, and every
kind, report and error path against the sandbox over real HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.states import EventKind, Outcome
from tests.support.sandbox import account
from tests.support.waiting import wait_until
from workers.providers import InvalidMessage, Outbound, SentQuery, SmsGlobalClient
from workers.providers.smsglobal import mac_header, mac_signature

TO = "+61400000001"


def client(**overrides) -> SmsGlobalClient:
    return SmsGlobalClient(account("smsglobal", **overrides))


def message_of(kind: str, text: str | None = "Hello", **options) -> dict:
    return client().build_payload(Outbound(message_id=1, to=TO, text=text, kind=kind, options=options)).json


# ---------------------------------------------------------------------- MAC authentication


def test_mac_signature_matches_the_sdk_test_vector():
    mac = mac_signature("secret12345", "1325376000", "abc123", "POST", "/v2/sms", "api.smsglobal.com", 443)
    assert mac == "zJs/JU7wVjPEvHniKcYYrIOPQAeSyaHUFmzbjIV9Vus="


@pytest.mark.parametrize(
    ("url", "uri", "host", "port"),
    [
        ("http://127.0.0.1:8900/smsglobal/v2/whatsapp?offset=1&limit=20",
         "/smsglobal/v2/whatsapp?offset=1&limit=20", "127.0.0.1", 8900),
        ("https://api.smsglobal.com/v2/whatsapp", "/v2/whatsapp", "api.smsglobal.com", 443),
        ("http://gateway.example/v2/whatsapp/5", "/v2/whatsapp/5", "gateway.example", 80),
    ],
)
def test_mac_header_signs_the_request_as_sent(url, uri, host, port):
    # given a request's header as the client signs it
    header = mac_header("my-key", "my-secret", "GET", url)
    # then the header names the key, and the mac is over the full path with its query, host and port
    fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
    assert header.startswith("MAC ") and fields["id"] == "my-key"
    assert abs(int(fields["ts"]) - datetime.now(UTC).timestamp()) < 60 and fields["nonce"]
    assert fields["mac"] == mac_signature("my-secret", fields["ts"], fields["nonce"], "GET", uri, host, port)
    assert "my-secret" not in header


# ---------------------------------------------------------------------- message objects


def test_text_with_preview_url():
    assert message_of("text", "see https://x.io", preview_url=True) == {
        "to": ["61400000001"], "message": {"type": "text", "text": "see https://x.io", "preview_url": True}}


def test_template_with_params():
    assert message_of("template", None, template="order_update", params=["Aisha", "42"])["message"] == {
        "type": "template", "template_name": "order_update", "params": ["Aisha", "42"]}


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("image", {"media_url": "https://cdn.example/flyer.png"},
         {"type": "image", "url": "https://cdn.example/flyer.png", "caption": "Hello"}),
        ("video", {"media_url": "https://cdn.example/clip.mp4"},
         {"type": "video", "url": "https://cdn.example/clip.mp4", "caption": "Hello"}),
        ("document", {"media_url": "https://cdn.example/d/1", "filename": "invoice.pdf"},
         {"type": "document", "url": "https://cdn.example/d/1", "caption": "Hello",
          "filename": "invoice.pdf"}),
        ("media", {"media_url": "https://cdn.example/photo.jpg"},
         {"type": "image", "url": "https://cdn.example/photo.jpg", "caption": "Hello"}),
        ("media", {"media_url": "https://cdn.example/report.pdf"},
         {"type": "document", "url": "https://cdn.example/report.pdf", "caption": "Hello"}),
        ("location", {"lat": 0.3476, "lng": 32.5825, "name": "Kampala office", "address": "Plot 1"},
         {"type": "location", "lat": 0.3476, "lng": 32.5825, "name": "Kampala office", "address": "Plot 1"}),
    ],
)
def test_message_object_for_each_kind(kind, options, expected):
    assert message_of(kind, **options)["message"] == expected


def test_audio_by_url_without_caption():
    assert message_of("audio", None, media_url="https://cdn.example/a.ogg")["message"] == {
        "type": "audio", "url": "https://cdn.example/a.ogg"}


@pytest.mark.parametrize(
    ("kind", "text", "options", "words"),
    [
        ("text", "", {}, "text is required"),
        ("text", "x" * 4097, {}, "over the limit of 4096"),
        ("text", "hi", {"preview_url": "yes"}, "preview_url must be true or false"),
        ("template", None, {}, "template name"),
        ("template", None, {"template": "t", "params": "Aisha"}, "params must be a list"),
        ("image", "hi", {"media_url": "https://cdn.example/anim.gif"}, "image/gif is not a supported image"),
        ("image", "hi", {"media_url": "https://cdn.example/a.png", "size_bytes": 5 * 1024 * 1024 + 1},
         "over the limit of 5.0 MB"),
        ("video", "hi", {"media_url": "https://cdn.example/a.mp4", "size_bytes": 17 * 1024 * 1024},
         "over the limit of 16.0 MB"),
        ("image", "hi", {"media_url": "ftp://cdn.example/a.png"}, "http or https URL"),
        ("image", "x" * 1025, {"media_url": "https://cdn.example/a.png"}, "caption is 1025 characters"),
        ("audio", "hi", {"media_url": "https://cdn.example/a.ogg"}, "takes no caption"),
        ("location", None, {"lat": 91, "lng": 0}, "latitude 91 is outside [-90, 90]"),
        ("location", None, {"lat": 0, "lng": 180.01}, "longitude 180.01 is outside [-180, 180]"),
        ("buttons", "hi", {}, "kind 'buttons' is not offered"),
    ],
)
def test_limits_are_checked_before_sending_with_a_clear_error(kind, text, options, words):
    with pytest.raises(InvalidMessage) as error:
        client().validate(Outbound(message_id=1, to=TO, text=text, kind=kind, options=options))
    assert words in str(error.value)


def test_list_paging_limits_are_checked():
    with pytest.raises(ValueError, match="limit must be 1 to 1000"):
        client().list_outgoing(limit=1001)
    with pytest.raises(ValueError, match="offset"):
        client().list_outgoing(offset=9500, limit=1000)


# ---------------------------------------------------------------------- against the sandbox


@pytest.fixture
def smsglobal(sandbox):
    gateway = SmsGlobalClient(sandbox.account("smsglobal"))
    yield gateway
    gateway.close()


KINDS = [
    Outbound(message_id=1, to=TO, text="Hello Aisha", options={"preview_url": False}),
    Outbound(message_id=2, to=TO, kind="template", options={"template": "order_update", "params": ["Aisha"]}),
    Outbound(message_id=3, to=TO, text="Our flyer", kind="image",
             options={"media_url": "https://cdn.example/flyer.jpg"}),
    Outbound(message_id=4, to=TO, text="Our clip", kind="video",
             options={"media_url": "https://cdn.example/v.mp4"}),
    Outbound(message_id=5, to=TO, text="Invoice", kind="document",
             options={"media_url": "https://cdn.example/i.pdf", "filename": "invoice.pdf"}),
    Outbound(message_id=6, to=TO, kind="audio", options={"media_url": "https://cdn.example/a.mp3"}),
    Outbound(message_id=7, to=TO, kind="location", options={"lat": -33.86, "lng": 151.2, "name": "Office"}),
]


@pytest.mark.parametrize("message", KINDS, ids=[m.kind for m in KINDS])
def test_each_kind_is_accepted_and_can_be_fetched_by_id(sandbox, smsglobal, message):
    # when the message is sent
    result = smsglobal.send(message)
    # then it is accepted with an id the gateway knows
    assert result.outcome == Outcome.ACCEPTED, result
    update = smsglobal.get_outgoing(result.provider_message_id)
    assert update.provider_message_id == result.provider_message_id
    assert update.raw["recipient"].lstrip("+") == TO.lstrip("+")
    assert sandbox.account_stats("smsglobal")["accepted_per_recipient"] == {TO: 1}


def test_status_progresses_to_read_in_the_outgoing_message(sandbox, smsglobal):
    sandbox.knobs("smsglobal", progress_seconds=0.05)
    result = smsglobal.send(Outbound(message_id=1, to=TO, text="hi"))

    def read_update():
        update = smsglobal.get_outgoing(result.provider_message_id)
        return update if update.kind == EventKind.READ else None

    # then the outgoing message reaches read, its last status ("final")
    assert wait_until(read_update, timeout=10, interval=0.02, message="the message to be read").raw["state"] == "final"


def test_outgoing_list_pages_and_date_range(sandbox, smsglobal):
    # given five messages sent
    ids = {smsglobal.send(Outbound(message_id=n, to=f"+6140000000{n}", text="hi")).provider_message_id
           for n in range(5)}
    now = datetime.now(UTC)
    # when listed two at a time within a range around now
    seen: set[str] = set()
    for offset in (1, 3, 5):
        page, total = smsglobal.list_outgoing(start=now - timedelta(hours=1), end=now + timedelta(hours=1),
                                              offset=offset, limit=2)
        assert total == 5 and len(page) <= 2
        seen |= {update.provider_message_id for update in page}
    # then every message is on exactly one page, and a range in the future has none
    assert seen == ids
    later, total = smsglobal.list_outgoing(start=now + timedelta(days=1), end=now + timedelta(days=2))
    assert (later, total) == ([], 0)


def test_find_sent_finds_this_message_never_an_earlier_one_to_the_same_number(sandbox, smsglobal):
    # given messages to two numbers, and one to the first number with other words
    since = datetime.now(UTC)
    result = smsglobal.send(Outbound(message_id=1, to=TO, text="hi"))
    smsglobal.send(Outbound(message_id=2, to="+61400000009", text="other"))
    smsglobal.send(Outbound(message_id=3, to=TO, text="other words"))
    # when unknown messages are looked for
    found = smsglobal.find_sent([SentQuery(1, TO, "hi", since), SentQuery(2, "+61400000077", "hi", since),
                                 SentQuery(3, TO, "hi", since + timedelta(seconds=61))])
    # then only the message with the number, the words and a time after the attempt began is a candidate
    assert [u.provider_message_id for u in found[1]] == [result.provider_message_id]
    assert 2 not in found and 3 not in found


def test_capability_tells_who_is_on_whatsapp(sandbox, smsglobal):
    sandbox.knobs("smsglobal", not_on_whatsapp=["+61400000002"])
    capabilities = smsglobal.capability(["+61400000001", "+61400000002"])
    assert capabilities["+61400000001"]["capable"] is True
    assert capabilities["+61400000002"]["capable"] is False


def test_incoming_messages_are_listed_and_fetched(sandbox, smsglobal):
    sandbox.inbound("smsglobal", None, "+61400000005", "STOP")
    inbound, total = smsglobal.list_incoming()
    assert total == 1
    assert (inbound[0].from_phone, inbound[0].text) == ("+61400000005", "STOP")
    again = smsglobal.get_incoming(inbound[0].provider_message_id)
    assert (again.from_phone, again.text) == ("+61400000005", "STOP")


def test_opt_in_numbers(sandbox, smsglobal):
    added = smsglobal.opt_in(["+61400000001", {"number": "+61400000002", "name": "Aisha"}])
    listed = smsglobal.opted_in()
    assert {entry["number"].lstrip("+") for entry in added} == {"61400000001", "61400000002"}
    assert {entry["number"].lstrip("+") for entry in listed} >= {"61400000001", "61400000002"}


def test_credit_balance_is_a_mapping_or_none(sandbox, smsglobal):
    balance = smsglobal.credit_balance()
    assert balance is None or isinstance(balance, dict)


def test_no_credit_is_quota(sandbox, smsglobal):
    sandbox.knobs("smsglobal", quota=0)
    result = smsglobal.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.QUOTA, "HTTP 402")


def test_over_the_rate_cap_is_throttled_with_retry_after(sandbox, smsglobal):
    sandbox.knobs("smsglobal", rate_cap=1)
    results = [smsglobal.send(Outbound(message_id=n, to=f"+6140000000{n}", text="hi")) for n in range(5)]
    throttled = [r for r in results if r.outcome == Outcome.THROTTLED]
    assert throttled and all(r.code == "HTTP 429" and r.retry_after is not None for r in throttled)


def test_number_not_on_whatsapp_is_recipient(sandbox, smsglobal):
    sandbox.knobs("smsglobal", not_on_whatsapp=[TO])
    result = smsglobal.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.RECIPIENT, "invalidNumber")


@pytest.mark.parametrize("wrong", [{"api_secret": "not-the-secret"}, {"api_key": "not-the-key"}])
def test_wrong_credentials_are_auth(sandbox, wrong):
    gateway = SmsGlobalClient(sandbox.account("smsglobal", **wrong))
    result = gateway.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.AUTH, "HTTP 401")


def test_gateway_failure_is_transient(sandbox, smsglobal):
    sandbox.knobs("smsglobal", fail_fraction=1.0)
    result = smsglobal.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "HTTP 503")
