"""The status vocabulary: every gateway's report, callback and webhook words become StatusUpdates and
Inbounds, row by row, from the documents' own samples; garbage is BadPayload, unknown words UNKNOWN."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests

from campaigns.events import BadPayload, Inbound, StatusUpdate
from campaigns.states import EventKind, Outcome
from workers.providers.devino import STATUSES as DEVINO_STATUSES
from workers.providers.devino import parse_callback as parse_devino_callback
from workers.providers.devino import parse_incoming as parse_devino_incoming
from workers.providers.events import normalise_phone, parse_time, word_family
from workers.providers.httpapi import NUMBERS as HTTPAPI_NUMBERS
from workers.providers.httpapi import WORDS as HTTPAPI_WORDS
from workers.providers.httpapi import parse_webhook as parse_httpapi_webhook
from workers.providers.httpapi import report_status as httpapi_report_status
from workers.providers.smsglobal import STATUSES as SMSGLOBAL_STATUSES
from workers.providers.smsglobal import inbound_message as smsglobal_inbound
from workers.providers.smsglobal import status_update as smsglobal_status

K = EventKind

# devino.txt "Response example for getting status"
DEVINO_CALLBACK = """[
    {
        "messageId": 1,
        "ts": 0,
        "status": "DELIVERED",
        "errorCode": 0,
        "ip": "127.0.0.1",
        "browser": "string",
        "os": "string",
        "userAgent": "string",
        "options": "string"
    }
]"""
# httpapi.txt 8, "Delivery Status"
HTTPAPI_DELIVERY = """{   "clientID": "5f*****c8",   "createdAt": "2022-05-06T13:25:47.065+05:30",
  "instanceID": "5f*****f3",   "messageID": "62*****00",   "phone": "9***1",   "reportType": "delivery",
  "status": 4,   "statusInfo": "Read",   "waID": "9***0",   "waMessageID": "57*****E6" }"""
# httpapi.txt 8, "Incoming Text Message"
HTTPAPI_INBOX_TEXT = """{   "clientID": "5f*****c8",   "createdAt": "2022-05-06T13:36:19+05:30",
  "instanceID": "5f*****f3",   "phone": "9***1",   "reportType": "inbox",   "status": 3,
  "statusInfo": "Delivered",   "type": "text",   "value": "Hello",   "waID": "9***1@s.whatsapp.net",
  "waMessageID": "A4*****B7" }"""
# httpapi.txt 8, "Incoming Media/Document Message"
HTTPAPI_INBOX_MEDIA = """{
  "reportType": "inbox",
  "clientID": "5f*****c8",
  "instanceID": "5f*****f3",
  "phone": "9***1",
  "type": "image",
  "value": {
    "caption": "Hi this is test",
    "type": "image/jpeg"
  },
  "waID": "9***1@s.whatsapp.net",
  "waMessageID": "67*****A3",
  "status": 3,
  "statusInfo": "Delivered",
  "createdAt": "2022-05-06T13:40:36+05:30"
}"""
# httpapi.txt 2.1, campaignStatus data
HTTPAPI_REPORT_ITEM = json.loads(
    '{"messageID":"62*****35","clientID":"5f*****c8","instanceID":"5f*****f3","creditID":"",'
    '"phone":"919*****1","full_push_name":"","text":"test_message","link":"","serverSend":false,'
    '"isMedia":false,"mediaType":"","mediaPath":"","isLocation":false,"location":null,"isContact":false,'
    '"contact":null,"isButton":false,"button":null,"isList":false,"list":null,"wacheck":false,'
    '"waID":"919***0","waMessageID":"EC***22","status":1,"timedOut":0,"statusInfo":"Sent","statusMessage":3,'
    '"statusMessageInfo":"Delivered","mode":"Panel","deliveredAt":"2022-06-25T14:36:16.546+05:30",'
    '"readAt":null,"createdAt":"2022-06-25T14:36:01.025+05:30","updatedAt":"2022-06-25T14:36:01.474+05:30",'
    '"value":null}'
)


def devino_item(**fields) -> bytes:
    item = json.loads(DEVINO_CALLBACK)[0]
    item.update(fields)
    return json.dumps([item]).encode()


# ---------------------------------------------------------------------- Devino callbacks


def test_devino_sample_callback_is_a_delivered_update_with_our_reference():
    [update] = parse_devino_callback(DEVINO_CALLBACK.encode())
    assert update == StatusUpdate(provider_message_id="1", kind=K.DELIVERED, error_code=None, reason=None,
                                  occurred_at=None, reference="string", raw=json.loads(DEVINO_CALLBACK)[0])


@pytest.mark.parametrize(("word", "kind"), list(DEVINO_STATUSES.items()))
def test_devino_status_words_map_row_by_row(word, kind):
    for spelling in (word.upper(), word, word.capitalize()):
        [update] = parse_devino_callback(devino_item(status=spelling))
        assert update.kind == kind


def test_devino_failure_carries_the_tables_words_and_outcome():
    [update] = parse_devino_callback(devino_item(status="UNDELIVERED", errorCode=2305))
    assert (update.kind, update.error_code, update.outcome) == (K.FAILED, "2305", Outcome.RECIPIENT)
    assert update.reason == "user has not used or is no longer using WhatsApp"


@pytest.mark.parametrize("status", ["FAILED", "SENT", "UNDELIVERED", "something"])
def test_devino_2301_is_throttled_whatever_the_status_word(status):
    [update] = parse_devino_callback(devino_item(status=status, errorCode="2301"))
    assert (update.kind, update.outcome, update.error_code) == (K.THROTTLED, Outcome.THROTTLED, "2301")


def test_devino_unknown_status_word_is_unknown_never_a_crash():
    [update] = parse_devino_callback(devino_item(status="TELEPORTED"))
    assert update.kind == K.UNKNOWN and "TELEPORTED" in update.reason


def test_devino_failure_with_an_undocumented_code_keeps_the_code():
    [update] = parse_devino_callback(devino_item(status="FAILED", errorCode=9999))
    assert (update.kind, update.error_code, update.outcome) == (K.FAILED, "9999", None)


def test_devino_unix_time_in_seconds_or_milliseconds():
    moment = datetime(2024, 7, 2, 10, 0, tzinfo=UTC)
    [seconds] = parse_devino_callback(devino_item(ts=int(moment.timestamp())))
    [millis] = parse_devino_callback(devino_item(ts=int(moment.timestamp() * 1000)))
    assert seconds.occurred_at == millis.occurred_at == moment


def test_devino_callback_batch_keeps_order_and_single_object_is_accepted():
    body = json.dumps([json.loads(devino_item(messageId=n, status="SENT"))[0] for n in (5, 6, 7)]).encode()
    assert [u.provider_message_id for u in parse_devino_callback(body)] == ["5", "6", "7"]
    single = json.dumps(json.loads(DEVINO_CALLBACK)[0]).encode()
    assert len(parse_devino_callback(single)) == 1


@pytest.mark.parametrize("body", [b"", b"not json", b'"text"', b"[1, 2]", b'[{"status": "SENT"}]', b"\xff"])
def test_devino_garbage_is_bad_payload(body):
    with pytest.raises(BadPayload):
        parse_devino_callback(body)


def test_devino_incoming_sample():
    # devino.txt "Response example for incoming message", with a real number
    body = (b'{"incomingMessageId": 42, "to": "str", "from": "79034567890", "text": "Stop", '
            b'"contentUrl": "str", "contentType": "str", "contentName": "str", "profileName": "str", '
            b'"ts": 0}')
    [inbound] = parse_devino_incoming(body)
    assert (inbound.from_phone, inbound.text, inbound.provider_message_id, inbound.received_at) == (
        "+79034567890", "Stop", "42", None)
    assert inbound.raw["profileName"] == "str"


def test_devino_incoming_without_sender_is_bad_payload():
    with pytest.raises(BadPayload):
        parse_devino_incoming(b'{"incomingMessageId": 1, "text": "x"}')


# ---------------------------------------------------------------------- SMSGlobal reports


@pytest.mark.parametrize(("word", "row"), list(SMSGLOBAL_STATUSES.items()))
def test_smsglobal_statuses_map_row_by_row(word, row):
    spelled = {"nocredits": "noCredits", "invalidnumber": "invalidNumber"}.get(word, word)
    item = {"id": 6746514019161950, "recipient": "61400000000", "status": spelled, "state": "final",
            "message": "Hello", "createdDate": "2024-07-02 10:00:00"}
    update = smsglobal_status(item)
    kind, _reason, outcome = row
    assert (update.provider_message_id, update.kind, update.outcome) == ("6746514019161950", kind, outcome)
    assert update.raw == item
    assert update.error_code == (spelled if kind == K.FAILED else None)


def test_smsglobal_unknown_status_is_unknown():
    update = smsglobal_status({"id": 1, "status": "beamed"})
    assert update.kind == K.UNKNOWN and "beamed" in update.reason


def test_smsglobal_incoming_item():
    inbound = smsglobal_inbound({"id": 9, "from": "61400000000", "to": "61411111111", "message": "STOP",
                                 "createdDate": "2024-07-02 10:00:00"})
    assert inbound == Inbound(from_phone="+61400000000", text="STOP",
                              received_at=datetime(2024, 7, 2, 10, 0, tzinfo=UTC), provider_message_id="9",
                              raw=inbound.raw)


# ---------------------------------------------------------------------- WhatsApp HTTP API 2.0.0


def test_httpapi_report_sample_reads_status_message_info_first():
    # statusInfo says "Sent", statusMessageInfo "Delivered": the message was delivered
    update = httpapi_report_status(HTTPAPI_REPORT_ITEM)
    assert (update.provider_message_id, update.kind) == ("62*****35", K.DELIVERED)
    assert update.occurred_at == datetime(2022, 6, 25, 9, 6, 16, 546000, tzinfo=UTC)
    assert update.raw == HTTPAPI_REPORT_ITEM


@pytest.mark.parametrize(("word", "kind"), list(HTTPAPI_WORDS.items()))
def test_httpapi_words_map_row_by_row(word, kind):
    item = {**HTTPAPI_REPORT_ITEM, "statusMessageInfo": word.capitalize(), "statusMessage": 99}
    assert httpapi_report_status(item).kind == kind


@pytest.mark.parametrize(("number", "kind"), list(HTTPAPI_NUMBERS.items()))
def test_httpapi_numbers_map_row_by_row_when_no_word_says(number, kind):
    item = {**HTTPAPI_REPORT_ITEM, "statusMessageInfo": "", "statusInfo": "", "statusMessage": number}
    assert httpapi_report_status(item).kind == kind


def test_httpapi_any_word_comes_before_any_number():
    # the inboxReport sample: statusInfo "Delivered" with statusMessage 0 and no statusMessageInfo
    item = {**HTTPAPI_REPORT_ITEM, "statusMessageInfo": "", "statusMessage": 0, "statusInfo": "Delivered",
            "status": 3}
    assert httpapi_report_status(item).kind == K.DELIVERED


def test_httpapi_failed_carries_a_reason_and_pending_changes_nothing():
    failed = httpapi_report_status({**HTTPAPI_REPORT_ITEM, "statusMessageInfo": "Failed", "statusMessage": 5})
    pending = httpapi_report_status({**HTTPAPI_REPORT_ITEM, "statusMessageInfo": "Pending",
                                     "statusMessage": 0})
    assert (failed.kind, failed.reason, failed.error_code) == (K.FAILED, "Failed", "failed")
    assert (pending.kind, pending.reason) == (K.UNKNOWN, "pending at the gateway")


def test_httpapi_undocumented_status_is_unknown():
    item = {**HTTPAPI_REPORT_ITEM, "statusMessageInfo": "Beamed", "statusMessage": 42, "statusInfo": "Odd",
            "status": 77}
    assert httpapi_report_status(item).kind == K.UNKNOWN


def test_httpapi_webhook_delivery_sample_is_read():
    [update] = parse_httpapi_webhook(HTTPAPI_DELIVERY.encode(), "application/json")
    assert (update.provider_message_id, update.kind) == ("62*****00", K.READ)
    assert update.occurred_at == datetime(2022, 5, 6, 7, 55, 47, 65000, tzinfo=UTC)


def test_httpapi_webhook_inbox_text_sample_is_an_inbound():
    [inbound] = parse_httpapi_webhook(HTTPAPI_INBOX_TEXT.encode(), "application/json; charset=utf-8")
    assert isinstance(inbound, Inbound)
    assert (inbound.from_phone, inbound.text, inbound.provider_message_id) == ("9***1", "Hello", "A4*****B7")
    assert inbound.received_at == datetime(2022, 5, 6, 8, 6, 19, tzinfo=UTC)


def test_httpapi_webhook_multipart_media_reads_the_json_field():
    # given the media sample as the gateway posts it: the JSON in a form field, the file as a binary part
    photo = ("photo.jpg", b"\xff\xd8\xff binary", "image/jpeg")
    prepared = requests.Request("POST", "http://hook", data={"json": HTTPAPI_INBOX_MEDIA},
                                files={"file1": photo}).prepare()
    # when parsed
    [inbound] = parse_httpapi_webhook(prepared.body, prepared.headers["Content-Type"])
    # then the caption is the text and the item is kept
    assert (inbound.text, inbound.provider_message_id) == ("Hi this is test", "67*****A3")
    assert inbound.raw["value"]["type"] == "image/jpeg"


def test_httpapi_webhook_with_a_real_number_is_e164():
    body = json.dumps({**json.loads(HTTPAPI_INBOX_TEXT), "phone": "919812345678"}).encode()
    [inbound] = parse_httpapi_webhook(body, "application/json")
    assert inbound.from_phone == "+919812345678"


def test_httpapi_webhook_unknown_report_type_is_ignored():
    body = json.dumps({**json.loads(HTTPAPI_DELIVERY), "reportType": "presence"}).encode()
    assert parse_httpapi_webhook(body, "application/json") == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1]", "application/json"),
        (b'{"reportType": "delivery", "status": 4}', "application/json"),
        (b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n",
         "multipart/form-data; boundary=x"),
        (b"garbage", "multipart/form-data"),
        (b"a=1", "application/x-www-form-urlencoded"),
    ],
)
def test_httpapi_garbage_webhook_is_bad_payload(body, content_type):
    with pytest.raises(BadPayload):
        parse_httpapi_webhook(body, content_type)


# ---------------------------------------------------------------------- shared readers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+256701234567", "+256701234567"),
        ("256701234567", "+256701234567"),
        ("256701234567@c.us", "+256701234567"),
        ("9***1", "9***1"),
        ("0701234567", "0701234567"),
        ("", ""),
    ],
)
def test_normalise_phone(value, expected):
    assert normalise_phone(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-06-25T14:36:16.546+05:30", datetime(2022, 6, 25, 9, 6, 16, 546000, tzinfo=UTC)),
        ("2024-07-02 10:00:00", datetime(2024, 7, 2, 10, 0, tzinfo=UTC)),
        ("2024-07-02T10:00:00Z", datetime(2024, 7, 2, 10, 0, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_time_gives_aware_utc(value, expected):
    assert parse_time(value) == expected


# ---------------------------------------------------------------- words nobody listed (providers/README.md)


@pytest.mark.parametrize(("word", "kind"), [
    ("ACCEPTED_BY_OPERATOR", K.SENT), ("Seen", K.READ), ("DELIVERED_TO_HANDSET", K.DELIVERED),
    ("not delivered", K.FAILED), ("REJECTED_BY_CARRIER", K.FAILED), ("vp-expired", K.FAILED),
    ("Undeliverable", K.FAILED), ("TELEPORTED", K.UNKNOWN), ("", K.UNKNOWN), (None, K.UNKNOWN), (17, K.UNKNOWN),
])
def test_a_word_nobody_listed_is_read_by_its_family(word, kind):
    assert word_family(word) == kind


@pytest.mark.parametrize(("word", "kind"), [("enqueued", K.UNKNOWN), ("visited", K.READ), ("cancelled", K.FAILED),
                                            ("vp_expired", K.FAILED), ("Expired_Validity", K.FAILED)])
def test_devino_older_words_end_the_message_in_their_family(word, kind):
    # given a callback with the older API's word (or one nobody listed), in any case
    [update] = parse_devino_callback(devino_item(status=word.upper()))
    # then the message ends in the word's family; a failure keeps the word as its reason
    assert update.kind == kind
    if kind == K.FAILED:
        assert word.lower() in update.reason.lower()


@pytest.mark.parametrize(("code", "outcome"), [("USER_BLOCKED", Outcome.RECIPIENT),
                                               ("not_template_match", Outcome.CONTENT)])
def test_devino_older_word_error_codes_are_classified(code, outcome):
    [update] = parse_devino_callback(devino_item(status="UNDELIVERED", errorCode=code))
    assert (update.kind, update.outcome, update.error_code) == (K.FAILED, outcome, code)


def test_devino_unknown_word_with_a_failure_code_fails():
    [update] = parse_devino_callback(devino_item(status="GONE_WRONG_SOMEHOW", errorCode=2305))
    assert (update.kind, update.outcome) == (K.FAILED, Outcome.RECIPIENT)


@pytest.mark.parametrize("body", [b'[{"messageId": {"a": 1}, "status": "SENT"}]',
                                  b"[" * 100_000 + b"]" * 100_000])
def test_devino_hostile_bodies_are_bad_payload(body):
    with pytest.raises(BadPayload):
        parse_devino_callback(body)


def test_smsglobal_final_word_nobody_listed_fails_with_that_word():
    update = smsglobal_status({"id": 1, "status": "beamed", "state": "final"})
    assert update.kind == K.FAILED and update.error_code == "beamed" and "beamed" in update.reason


def test_smsglobal_pending_word_nobody_listed_changes_nothing_and_a_failure_word_fails():
    assert smsglobal_status({"id": 1, "status": "beamed", "state": "pending"}).kind == K.UNKNOWN
    assert smsglobal_status({"id": 1, "status": "expiredAtCarrier", "state": "pending"}).kind == K.FAILED


def test_httpapi_word_nobody_listed_is_read_by_its_family():
    item = {**HTTPAPI_REPORT_ITEM, "statusMessageInfo": "Seen by user", "statusMessage": 42, "statusInfo": None,
            "status": 42}
    assert httpapi_report_status(item).kind == K.READ


def test_times_with_offsets_and_account_zones():
    from datetime import timedelta, timezone

    assert parse_time("2016-08-16 23:30:05 +1000") == datetime(2016, 8, 16, 13, 30, 5, tzinfo=UTC)
    assert parse_time("2016-08-16 23:30:05 -0500") == datetime(2016, 8, 17, 4, 30, 5, tzinfo=UTC)
    plus_530 = timezone(timedelta(hours=5, minutes=30))
    assert parse_time("2016-08-16 23:30:05", plus_530) == datetime(2016, 8, 16, 18, 0, 5, tzinfo=UTC)
    assert parse_time("2022-05-06T13:25:47.065+05:30") == datetime(2022, 5, 6, 7, 55, 47, 65000, tzinfo=UTC)
