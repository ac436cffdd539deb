"""The WhatsApp HTTP API 2.0.0 client: the operation and parameters for each kind, the limits it checks,
and every kind, report, webhook and error path against the sandbox over real HTTP."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from campaigns.states import EventKind, Outcome
from tests.support.sandbox import account
from tests.support.waiting import wait_until
from workers.providers import (
    HttpApiClient,
    Inbound,
    InvalidMessage,
    Outbound,
    SentQuery,
    StatusUpdate,
    parse_httpapi_webhook,
)

TOKEN = "62b32c76758e0afb0d390793"
TO = "+919812345678"


def client(**overrides) -> HttpApiClient:
    return HttpApiClient(account("httpapi", **overrides))


def request_of(kind: str = "text", text: str | None = "Hello", **options):
    return client().build_payload(Outbound(message_id=1, to=TO, text=text, kind=kind, options=options))


def operation_of(kind: str = "text", text: str | None = "Hello", **options) -> tuple[str, dict]:
    """(operation, parameters): every parameter in the query string (providers/README.md), no body."""
    request = request_of(kind, text, **options)
    assert request.method == "POST" and request.params["token"] == TOKEN and request.data is None
    return request.path.removeprefix("/api/"), {k: v for k, v in request.params.items() if k != "token"}


# ---------------------------------------------------------------------- requests


def test_send_text():
    assert operation_of("text", "*Hello* Aisha") == ("sendText", {"phone": "919812345678",
                                                                  "message": "*Hello* Aisha"})


def test_file_by_url_with_and_without_caption():
    assert operation_of("image", "Our flyer", media_url="https://cdn.example/f.jpg") == (
        "sendFileWithCaption", {"phone": "919812345678", "link": "https://cdn.example/f.jpg",
                                "message": "Our flyer"})
    assert operation_of("media", None, media_url="https://cdn.example/f.pdf") == (
        "sendFiles", {"phone": "919812345678", "link": "https://cdn.example/f.pdf"})


def test_local_file_goes_as_multipart(tmp_path):
    path = tmp_path / "menu.pdf"
    path.write_bytes(b"%PDF-1.4 menu")
    request = request_of("file_upload", "Our menu", file_path=str(path))
    assert request.path == "/api/sendFileWithCaption"
    assert {k: v for k, v in request.params.items() if k != "token"} == {"phone": "919812345678",
                                                                          "message": "Our menu"}
    assert request.files == {"file": ("menu.pdf", b"%PDF-1.4 menu", "application/pdf")}
    assert request_of("file_upload", None, file_path=str(path)).path == "/api/sendFiles"


def test_location_and_contact():
    assert operation_of("location", None, lat=28.6139, lng=77.209, name="Office", address="Connaught Place",
                        url="https://maps.example/o") == (
        "sendLocation", {"phone": "919812345678", "degreesLatitude": "28.6139", "degreesLongitude": "77.209",
                         "name": "Office", "address": "Connaught Place", "url": "https://maps.example/o"})
    assert operation_of("contact", None, name="Aisha N", phone="+91 98123 45679", organization="Blast") == (
        "sendContact", {"phone": "919812345678", "contactName": "Aisha N", "contactPhone": "919812345679",
                        "contactOrganization": "Blast"})


def test_quick_reply_buttons():
    assert operation_of("buttons", "Coming?", buttons=["Yes", "No", "Maybe"], footer="Reply below") == (
        "sendTextButton", {"phone": "919812345678", "message": "Coming?", "button1": "Yes", "button2": "No",
                           "button3": "Maybe", "footer": "Reply below"})


def test_call_to_action_buttons_with_one_quick_reply():
    buttons = [{"type": "call", "text": "Call us", "value": "+919812300000"},
               {"type": "url", "text": "Website", "value": "https://blast.example"}, "Stop"]
    assert operation_of("buttons", "Questions?", buttons=buttons)[1] == {
        "phone": "919812345678", "message": "Questions?", "button1": "Stop", "callButtonText": "Call us",
        "callButtonValue": "919812300000", "urlButtonText": "Website", "urlButtonValue": "https://blast.example"}


def test_buttons_with_a_file_or_a_location():
    operation, fields = operation_of("buttons", "Flyer", buttons=["Yes"], media_url="https://cdn.example/f.png")
    assert (operation, fields["link"]) == ("sendFilesButton", "https://cdn.example/f.png")
    operation, fields = operation_of("buttons", "Find us", buttons=["Directions"], lat=1.5, lng=2.5,
                                     name="Shop")
    assert operation == "sendLocationButton"
    assert (fields["degreesLatitude"], fields["degreesLongitude"], fields["name"]) == ("1.5", "2.5", "Shop")


def test_list_rows():
    assert operation_of("list", "Pick a slot", header="Clinic", footer="Thanks", button_text="Slots",
                        rows=["Monday:9am:Dr Okello", {"title": "10am"}]) == (
        "sendList", {"phone": "919812345678", "message": "Pick a slot", "header": "Clinic",
                     "footer": "Thanks", "buttonText": "Slots", "rows": ["Monday:9am:Dr Okello", ":10am:"]})


@pytest.mark.parametrize(
    ("kind", "text", "options", "words"),
    [
        ("text", "€" * 667, {}, "2001 bytes, over the limit of 2000 bytes"),
        ("image", "€" * 667, {"media_url": "https://cdn.example/f.jpg"}, "caption is 2001 bytes"),
        ("image", "hi", {"media_url": "https://cdn.example/f.jpg", "size_bytes": 5 * 1024 * 1024 + 1},
         "over the limit of 5.0 MB"),
        ("image", "hi", {"media_url": "cdn.example/f.jpg"}, "http or https URL"),
        ("file_upload", "hi", {}, "needs options 'file_path'"),
        ("file_upload", "hi", {"file_path": "/nonexistent/menu.pdf"}, "'menu.pdf' to upload does not exist"),
        ("location", None, {"lat": 28.6, "lng": 77.2}, "a location needs its name"),
        ("location", None, {"lat": -91, "lng": 77.2, "name": "x"}, "latitude -91 is outside [-90, 90]"),
        ("location", None, {"lat": 1, "lng": 181, "name": "x"}, "longitude 181 is outside [-180, 180]"),
        ("contact", None, {"name": "A" * 31, "phone": "+919812345679"},
         "31 characters, over the limit of 30"),
        ("contact", None, {"name": "Aisha", "phone": "call me"}, "must be a phone number"),
        ("buttons", "hi", {}, "needs options 'buttons'"),
        ("buttons", "hi", {"buttons": ["a", "b", "c", "d"]}, "4 buttons, at most 3"),
        ("buttons", "hi", {"buttons": ["Yes", "No", {"type": "url", "text": "Web", "value": "https://x.io"}]},
         "at most one quick reply"),
        ("buttons", "hi", {"buttons": [{"type": "call", "text": "A", "value": "+919812300000"},
                                       {"type": "call", "text": "B", "value": "+919812300001"}]},
         "at most one call button"),
        ("buttons", "hi", {"buttons": ["x" * 21]}, "21 characters, over the limit of 20"),
        ("buttons", "hi", {"buttons": [{"type": "url", "text": "Web", "value": "javascript:x"}]},
         "http or https"),
        ("buttons", "hi", {"buttons": [{"type": "sms", "text": "x"}]}, "not reply, call or url"),
        ("buttons", "hi", {"buttons": ["Yes"], "footer": "f" * 61}, "61 characters, over the limit of 60"),
        ("buttons", "x" * 1025, {"buttons": ["Yes"]}, "1025 characters, over the limit of 1024"),
        ("buttons", "", {"buttons": ["Yes"]}, "text is required"),
        ("buttons", "hi", {"buttons": ["Yes"], "media_url": "https://cdn.example/a.gif"},
         "cannot go with buttons"),
        ("list", "hi", {"rows": ["a:b:c"]}, "list button text"),
        ("list", "hi", {"button_text": "Pick"}, "at least one row"),
        ("list", "hi", {"button_text": "Pick", "rows": ["a:b"]}, "two colons"),
        ("list", "hi", {"button_text": "Pick", "rows": [{"title": "10:30"}]}, "contains a colon"),
        ("list", "hi", {"button_text": "Pick", "rows": ["s" * 21 + ":t:d"]}, "section text is 21 characters"),
        ("list", "hi", {"button_text": "Pick", "rows": ["s:" + "t" * 21 + ":d"]},
         "title text is 21 characters"),
        ("list", "hi", {"button_text": "Pick", "rows": ["s::d"]}, "list title text is required"),
        ("list", "hi", {"button_text": "Pick", "rows": ["s:t:" + "d" * 31]}, "description text is 31"),
        ("list", "hi", {"button_text": "Pick", "rows": ["s:t:d"], "header": "h" * 61}, "list header is 61"),
        ("list", "x" * 1025, {"button_text": "Pick", "rows": ["s:t:d"]}, "over the limit of 1024"),
        ("template", "hi", {}, "kind 'template' is not offered"),
    ],
)
def test_limits_are_checked_before_sending_with_a_clear_error(kind, text, options, words):
    with pytest.raises(InvalidMessage) as error:
        client().validate(Outbound(message_id=1, to=TO, text=text, kind=kind, options=options))
    assert words in str(error.value)


def test_local_files_over_3_mb_are_refused(tmp_path):
    path = tmp_path / "big.pdf"
    path.write_bytes(b"0" * (3 * 1024 * 1024 + 1))
    with pytest.raises(InvalidMessage, match=r"over the limit of 3\.0 MB"):
        client().validate(Outbound(message_id=1, to=TO, text="hi", kind="file_upload",
                                   options={"file_path": str(path)}))


def test_report_dates_go_both_or_neither():
    with pytest.raises(ValueError, match="both"):
        client().campaign_report(start_date=date(2024, 7, 1))


# ---------------------------------------------------------------------- against the sandbox


@pytest.fixture
def httpapi(sandbox):
    gateway = HttpApiClient(sandbox.account("httpapi"))
    yield gateway
    gateway.close()


@pytest.fixture
def local_file(tmp_path):
    path = tmp_path / "menu.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 a small jpeg")
    return str(path)


def kinds(local_file: str) -> list[Outbound]:
    flyer = {"media_url": "https://cdn.example/flyer.jpg"}
    return [
        Outbound(message_id=1, to=TO, text="Hello Aisha"),
        Outbound(message_id=2, to=TO, text="Our flyer", kind="image", options=flyer),
        Outbound(message_id=3, to=TO, kind="media", options=flyer),
        Outbound(message_id=4, to=TO, text="Our menu", kind="file_upload", options={"file_path": local_file}),
        Outbound(message_id=5, to=TO, kind="file_upload", options={"file_path": local_file}),
        Outbound(message_id=6, to=TO, kind="location", options={"lat": 28.6, "lng": 77.2, "name": "Office"}),
        Outbound(message_id=7, to=TO, kind="contact", options={"name": "Aisha", "phone": "+919812345679"}),
        Outbound(message_id=8, to=TO, text="Coming?", kind="buttons", options={"buttons": ["Yes", "No"]}),
        Outbound(message_id=9, to=TO, text="Flyer", kind="buttons", options={"buttons": ["Yes"], **flyer}),
        Outbound(message_id=10, to=TO, text="Menu", kind="buttons",
                 options={"buttons": [{"type": "url", "text": "Web", "value": "https://x.io"}],
                          "file_path": local_file}),
        Outbound(message_id=11, to=TO, text="Find us", kind="buttons",
                 options={"buttons": [{"type": "call", "text": "Call", "value": "+919812300000"}], "lat": 1,
                          "lng": 2, "name": "Shop"}),
        Outbound(message_id=12, to=TO, text="Pick", kind="list",
                 options={"button_text": "Slots", "rows": ["Mon:9am:Dr O", "Mon:10am:"], "header": "Clinic"}),
    ]


KIND_IDS = ["text", "file+caption", "file", "upload+caption", "upload", "location", "contact", "text-buttons",
            "file-buttons", "upload-buttons", "location-buttons", "list"]


@pytest.mark.parametrize("index", range(len(KIND_IDS)), ids=KIND_IDS)
def test_each_kind_is_accepted_and_reported(sandbox, httpapi, local_file, index):
    # when a message of the kind is sent
    result = httpapi.send(kinds(local_file)[index])
    # then it is accepted with the gateway's id, which campaignStatus knows
    assert result.outcome == Outcome.ACCEPTED, result
    update = httpapi.campaign_status(result.provider_message_id)
    assert update.provider_message_id == result.provider_message_id
    assert sandbox.account_stats("httpapi")["accepted_per_recipient"] == {TO: 1}


def test_status_progresses_to_read(sandbox, httpapi):
    sandbox.knobs("httpapi", progress_seconds=0.05)
    result = httpapi.send(Outbound(message_id=1, to=TO, text="hi"))

    def read_update():
        update = httpapi.campaign_status(result.provider_message_id)
        return update if update.kind == EventKind.READ else None

    assert wait_until(read_update, timeout=10, interval=0.02, message="the message to be read").occurred_at is not None


def test_unknown_message_id_has_no_status(sandbox, httpapi):
    assert httpapi.campaign_status("000000000000000000000000") is None


def test_campaign_report_lists_the_messages_sent(sandbox, httpapi):
    ids = {httpapi.send(Outbound(message_id=n, to=f"+91981234567{n}", text="hi")).provider_message_id
           for n in range(3)}
    today = date.today()
    report = httpapi.campaign_report(start_date=today - timedelta(days=1), end_date=today + timedelta(days=1))
    assert {u.provider_message_id for u in report} == ids
    assert all(isinstance(u, StatusUpdate) for u in report)
    assert len(httpapi.campaign_report(limit=2)) == 2



def test_find_sent_names_this_message_never_an_earlier_one_to_the_same_number(sandbox, httpapi):
    # given a message sent to a number, and another to the same number with other words
    began = datetime.now(UTC)
    first = httpapi.send(Outbound(message_id=1, to=TO, text="Your visit is tomorrow")).provider_message_id
    httpapi.send(Outbound(message_id=2, to=TO, text="Other words"))
    # when an unknown message with the first one's words, begun before it, is looked for
    found = httpapi.find_sent([SentQuery(7, TO, "Your visit is tomorrow", began)])
    # then only the first is a candidate
    assert [u.provider_message_id for u in found[7]] == [first]
    # and an attempt that began after it (past the clock margin) never takes it, though the words match
    later = began + timedelta(seconds=61)
    assert httpapi.find_sent([SentQuery(8, TO, "Your visit is tomorrow", later)]) == {}


def test_report_of_an_empty_account_is_empty(sandbox, httpapi):
    assert httpapi.campaign_report() == []
    assert httpapi.find_sent([SentQuery(1, TO, "hi", datetime.now(UTC))]) == {}


def test_not_on_whatsapp_is_accepted_then_reported_failed(sandbox, httpapi):
    sandbox.knobs("httpapi", not_on_whatsapp=[TO])
    result = httpapi.send(Outbound(message_id=1, to=TO, text="hi"))
    assert result.outcome == Outcome.ACCEPTED

    def failed():
        update = httpapi.campaign_status(result.provider_message_id)
        return update if update.kind == EventKind.FAILED else None

    assert wait_until(failed, timeout=10, interval=0.02, message="the report to say failed").reason


def test_webhook_brings_delivery_statuses_and_inbound_messages(sandbox, httpapi, receiver):
    # given the instance's webhook pointed at us and quick statuses
    sandbox.knobs("httpapi", webhook_url=receiver.url, progress_seconds=0.05)
    # when a message goes and a recipient writes in
    result = httpapi.send(Outbound(message_id=1, to=TO, text="hi"))
    sandbox.inbound("httpapi", None, "+919812345670", "STOP")
    # then the webhook's deliveries name our message up to read, and the inbound message arrives
    events = receiver.collect(
        lambda content_type, body: parse_httpapi_webhook(body, content_type),
        lambda items: any(isinstance(e, Inbound) for e in items)
        and any(isinstance(e, StatusUpdate) and e.kind == EventKind.READ for e in items),
    )
    updates = [e for e in events if isinstance(e, StatusUpdate)]
    inbound = [e for e in events if isinstance(e, Inbound)]
    assert {u.provider_message_id for u in updates} == {result.provider_message_id}
    assert (inbound[0].from_phone, inbound[0].text) == ("+919812345670", "STOP")


def test_inbox_report_and_offset(sandbox, httpapi):
    sandbox.inbound("httpapi", None, "+919812345670", "first")
    sandbox.inbound("httpapi", None, "+919812345671", "second")
    inbox = httpapi.inbox_report()
    assert sorted(i.text for i in inbox) == ["first", "second"]
    assert {i.from_phone for i in inbox} == {"+919812345670", "+919812345671"}
    today = date.today()
    dated = httpapi.inbox_report(start_date=today - timedelta(days=1), end_date=today + timedelta(days=1))
    assert len(dated) == 2
    first = next(i for i in inbox if i.text == "first")
    newer = httpapi.inbox_report_offset(offset=first.provider_message_id)
    assert [i.text for i in newer] == ["second"]


def test_account_calls(sandbox, httpapi):
    balance = httpapi.check_balance()
    assert "quota" in balance
    assert httpapi.qr_code()["status"] in ("qrcode", "success")
    assert isinstance(httpapi.groups(), list) and isinstance(httpapi.contacts(), list)


def test_quota_expiry_is_quota(sandbox, httpapi):
    sandbox.knobs("httpapi", quota=0)
    result = httpapi.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.QUOTA, "05-Quota expiry")
    assert TOKEN not in str(result.raw)


def test_wrong_token_is_auth(sandbox):
    gateway = HttpApiClient(sandbox.account("httpapi", token="000000000000000000000000"))
    result = gateway.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.AUTH, "invalid object id")


def test_over_the_rate_cap_is_throttled_502(sandbox, httpapi):
    sandbox.knobs("httpapi", rate_cap=1)
    results = [httpapi.send(Outbound(message_id=n, to=f"+91981234567{n}", text="hi")) for n in range(5)]
    throttled = [r for r in results if r.outcome == Outcome.THROTTLED]
    assert throttled and all(r.code == "HTTP 502" for r in throttled)


def test_a_slow_gateway_is_an_ambiguous_timeout(sandbox):
    sandbox.knobs("httpapi", latency_ms=1000)
    gateway = HttpApiClient(sandbox.account("httpapi", timeout_seconds=0.2))
    result = gateway.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.AMBIGUOUS, "timeout")


def test_the_token_never_reaches_the_logs(sandbox, httpapi, caplog):
    caplog.set_level(logging.DEBUG, logger="urllib3")
    assert httpapi.send(Outbound(message_id=1, to=TO, text="hi")).outcome == Outcome.ACCEPTED
    assert "sendText?token=****" in caplog.text
    assert TOKEN not in caplog.text


def test_gateway_failure_is_transient(sandbox, httpapi):
    sandbox.knobs("httpapi", fail_fraction=1.0)
    result = httpapi.send(Outbound(message_id=1, to=TO, text="hi"))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "HTTP 503")
