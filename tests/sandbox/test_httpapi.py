"""The sandbox's WhatsApp HTTP API 2.0.0 against httpapi.txt, over real HTTP (GET and POST)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.support.gateway_requests import httpapi_call
from tests.support.sandbox import HTTPAPI_TOKEN
from tests.support.waiting import wait_until

IST = timezone(timedelta(hours=5, minutes=30))
# campaignStatus's sample, key for key (httpapi.txt 2.1); campaignReport spells clientID "clientId".
RECORD_KEYS = ["messageID", "clientID", "instanceID", "creditID", "phone", "full_push_name", "text", "link",
               "serverSend", "isMedia", "mediaType", "mediaPath", "isLocation", "location", "isContact",
               "contact", "isButton", "button", "isList", "list", "wacheck", "waID", "waMessageID", "status",
               "timedOut", "statusInfo", "statusMessage", "statusMessageInfo", "mode", "deliveredAt",
               "readAt", "createdAt", "updatedAt", "value"]
SENDS = [
    ("sendText", {"message": "Hello *there*"}),
    ("sendFiles", {"link": "https://example.com/brochure.pdf"}),
    ("sendFileWithCaption", {"link": "https://example.com/a.jpg", "message": "caption"}),
    ("sendLocation", {"degreesLatitude": "28.61", "degreesLongitude": "77.20", "name": "India Gate"}),
    ("sendContact", {"contactName": "Asha", "contactPhone": "919812345678"}),
    ("sendTextButton", {"message": "Confirm?", "button1": "Yes", "button2": "No"}),
    ("sendTextButton", {"message": "Call us", "callButtonText": "Call", "callButtonValue": "+919812345678"}),
    ("sendFilesButton", {"link": "https://example.com/a.png", "message": "Look", "button1": "Nice"}),
    ("sendLocationButton", {"degreesLatitude": "28.6", "degreesLongitude": "77.2", "name": "Gate",
                            "message": "Meet here", "button1": "OK"}),
    ("sendList", {"message": "Pick one", "buttonText": "Menu", "rows": ["Food:Pizza:Hot", ":Tea:"]}),
]


def send_text(sandbox, phone: str = "919812345678", **params):
    return httpapi_call(sandbox, "sendText", phone=phone, message="Hello", **params)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("operation", "params"), SENDS)
def test_every_send_operation_answers_00_success(sandbox, operation, params, method):
    answer = httpapi_call(sandbox, operation, method, phone="919812345678", **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"status", "message", "data", "responsetime"}
    assert body["status"] == "success" and body["message"] == "00-Success"
    assert body["data"]["connStatus"] is True and len(body["data"]["messageIDs"][0]) == 24
    assert isinstance(body["responsetime"], float)


def test_a_local_file_can_be_posted_as_form_data(sandbox):
    answer = requests.post(f"{sandbox.base_url('httpapi')}/api/sendFileWithCaption", timeout=10,
                           params={"token": HTTPAPI_TOKEN, "phone": "919812345678"},
                           data={"message": "Invoice"},
                           files={"file": ("invoice.pdf", b"%PDF-1.4 sandbox", "application/pdf")})
    assert answer.status_code == 200 and answer.json()["message"] == "00-Success"


def test_a_wrong_token_is_invalid_object_id(sandbox):
    for token in ("000000000000000000000000", None):
        answer = httpapi_call(sandbox, "sendText", token=token, phone="919812345678", message="x")
        assert answer.status_code == 401
        assert set(answer.json()) == {"status", "message", "responsetime"}
        assert answer.json()["message"] == "invalid object id" and answer.json()["status"] == "error"


@pytest.mark.parametrize(("operation", "params", "message"), [
    ("sendText", {"phone": "919812345678"}, "please check request required message/"),
    ("sendText", {}, "please check request required phone/message/"),
    ("sendFiles", {"phone": "919812345678"}, "please check request required link/"),
    ("sendList", {"phone": "919812345678", "message": "x"},
     "please check request required header/message/buttonText/ at least one row"),
])
def test_missing_parameters_echo_the_request(sandbox, operation, params, message):
    answer = httpapi_call(sandbox, operation, **params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "error" and body["message"] == message
    assert body["request"]["token"] == [HTTPAPI_TOKEN] and set(body) == {"status", "message", "request",
                                                                         "responsetime"}


@pytest.mark.parametrize(("operation", "params", "message"), [
    ("sendText", {"phone": "+919812345678", "message": "x"}, "12-Parsing parameter failed"),
    ("sendText", {"phone": "12345", "message": "x"},
     "04-Phone number not registered on whatsapp or your instance not connected"),
    ("sendText", {"phone": "919812345678", "message": "x" * 2001}, "12-Parsing parameter failed"),
    ("sendFiles", {"phone": "919812345678", "link": "not-a-link"}, "09-Link not valid"),
    ("sendLocation", {"phone": "919812345678", "degreesLatitude": "95", "degreesLongitude": "1", "name": "x"},
     "12-Parsing parameter failed"),
    ("sendTextButton", {"phone": "919812345678", "message": "x", "button1": "a", "button2": "b",
                        "callButtonText": "Call", "callButtonValue": "919812345678"},
     "12-Parsing parameter failed"),
    ("sendList", {"phone": "919812345678", "message": "x", "buttonText": "b", "rows": "no separators"},
     "12-Parsing parameter failed"),
])
def test_malformed_parameters_use_the_documented_error_codes(sandbox, operation, params, message):
    answer = httpapi_call(sandbox, operation, **params)
    assert answer.status_code == 400 and answer.json()["message"] == message


def test_quota_expiry_overload_and_failures(sandbox):
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=1)
    assert send_text(sandbox).status_code == 200
    expired = send_text(sandbox)
    assert expired.status_code == 400 and expired.json()["message"] == "05-Quota expiry"
    assert expired.json()["request"]["phone"] == ["919812345678"]
    balance = httpapi_call(sandbox, "checkBal").json()
    assert balance["data"]["quota"] == 0
    assert set(balance["data"]) == {"backup", "expiryDate", "quota", "status"}
    assert sandbox.account_stats("httpapi")["rejected"] == {"quota": 1}
    # a fresh second (reset forgets the acceptance above) and a cap of one message a second
    sandbox.reset()
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=None, rate_cap=1)
    assert send_text(sandbox).status_code == 200
    overloaded = send_text(sandbox)
    assert overloaded.status_code == 502 and overloaded.text == "502 Bad Gateway"
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, rate_cap=None, fail_fraction=1.0)
    assert send_text(sandbox).status_code == 503
    assert sandbox.account_stats("httpapi")["rejected"] == {"rate_cap": 1, "fail_fraction": 1}


def test_campaign_status_progresses_and_the_webhook_hears_each_step(sandbox, receiver):
    # given an instance whose webhook is the receiver and statuses that move every 50 ms
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, webhook_url=receiver.url + "/hook", progress_seconds=0.05)
    message_id = send_text(sandbox).json()["data"]["messageIDs"][0]
    # when the delivery reports have come: Sent (1), Delivered (3), Read (4), each once (POSTed by
    # concurrent senders 50 ms apart, they may arrive out of order, as a real gateway's may)
    reports = receiver.wait_for(lambda posts: len(posts) >= 3 and [p["body"] for p in posts],
                                what="three delivery webhooks")
    heard = sorted((r["status"], r["statusInfo"]) for r in reports)
    assert heard == [(1, "Sent"), (3, "Delivered"), (4, "Read")]
    assert all(r["reportType"] == "delivery" and r["messageID"] == message_id and r["phone"] == "919812345678"
               for r in reports)
    assert set(reports[0]) == {"clientID", "createdAt", "instanceID", "messageID", "phone", "reportType",
                               "status", "statusInfo", "waID", "waMessageID"}
    # then campaignStatus shows the same message, read, in the sample's shape
    status = httpapi_call(sandbox, "campaignStatus", msg_id=message_id).json()
    assert status["message"] == "00-Success" and list(status["data"]) == RECORD_KEYS
    record = status["data"]
    assert (record["status"], record["statusInfo"], record["statusMessage"], record["statusMessageInfo"]) \
        == (1, "Sent", 4, "Read")
    assert datetime.fromisoformat(record["createdAt"]).utcoffset() == timedelta(hours=5, minutes=30)
    assert record["deliveredAt"] and record["readAt"]


def test_a_number_not_on_whatsapp_is_accepted_then_failed(sandbox):
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, not_on_whatsapp=["919800000000"])
    message_id = send_text(sandbox, phone="919800000000").json()["data"]["messageIDs"][0]
    record = httpapi_call(sandbox, "campaignStatus", msg_id=message_id).json()["data"]
    assert (record["statusMessage"], record["statusMessageInfo"]) == (5, "Failed")


def test_campaign_report_lists_the_last_days_newest_first_with_a_limit(sandbox):
    ids = [send_text(sandbox, phone=f"91981234567{i}").json()["data"]["messageIDs"][0] for i in range(3)]
    today = datetime.now(IST).strftime("%d-%m-%Y")
    report = httpapi_call(sandbox, "campaignReport", start_date=today, end_date=today, limit=2).json()
    assert report["status"] == "success" and (report["total"], report["limit"]) == (3, 2)
    assert [r["messageID"] for r in report["data"]] == [ids[2], ids[1]]
    assert "clientId" in report["data"][0] and "clientID" not in report["data"][0]
    everything = httpapi_call(sandbox, "campaignReport").json()
    assert [r["messageID"] for r in everything["data"]] == ids[::-1]
    old = httpapi_call(sandbox, "campaignReport", start_date="01-01-2020", end_date="02-01-2020")
    assert old.status_code == 400 and old.json()["message"] == "14-Data not found"
    bad_date = httpapi_call(sandbox, "campaignReport", start_date="2020-01-01", end_date="2020-01-02")
    assert bad_date.status_code == 400
    assert httpapi_call(sandbox, "campaignStatus", msg_id="ffffffffffffffffffffffff").status_code == 500


def test_inbound_messages_reach_the_webhook_and_the_inbox_reports(sandbox, receiver):
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, webhook_url=receiver.url)
    first = sandbox.inbound("httpapi", HTTPAPI_TOKEN, "919811111111", "Hello")
    second = sandbox.inbound("httpapi", HTTPAPI_TOKEN, "919822222222", "STOP")
    assert first["pushed"] and second["pushed"]
    pushed = receiver.wait_for(lambda posts: len(posts) >= 2 and [p["body"] for p in posts], what="two inbox")
    assert {(p["reportType"], p["type"], p["value"], p["phone"]) for p in pushed} == {
        ("inbox", "text", "Hello", "919811111111"), ("inbox", "text", "STOP", "919822222222")}
    assert pushed[0]["waID"].endswith("@s.whatsapp.net") and pushed[0]["statusInfo"] == "Delivered"
    inbox = httpapi_call(sandbox, "inboxReport", limit=1).json()
    assert inbox["total"] == 2 and [m["text"] for m in inbox["data"]] == ["STOP"]
    assert {"webhookURL", "webhookStatus", "clientId"} <= set(inbox["data"][0])
    after = httpapi_call(sandbox, "inboxReportOffset", offset=first["id"]).json()
    assert [m["messageID"] for m in after["data"]] == [second["id"]]
    def newest_webhook_status():
        return httpapi_call(sandbox, "inboxReport").json()["data"][0]["webhookStatus"]

    webhook_status = wait_until(newest_webhook_status, timeout=15, interval=0.02,
                                message="the webhook status to be recorded")
    assert webhook_status == 200


def test_instance_operations(sandbox):
    qr = httpapi_call(sandbox, "qrCode").json()
    assert qr["message"] == "00-Success" and qr["data"]["info"]["Connected"] is True
    assert HTTPAPI_TOKEN not in str(qr["data"])  # the instance id is not the token
    assert httpapi_call(sandbox, "qrCodeLink").status_code == 200
    balance = httpapi_call(sandbox, "checkBal").json()
    assert balance["data"]["status"] == "active" and balance["data"]["expiryDate"].endswith("+0530 IST")
    assert httpapi_call(sandbox, "groups").status_code == 400  # no one has written yet: 14-Data not found
    sandbox.inbound("httpapi", HTTPAPI_TOKEN, "919811111111", "Hi")
    contacts = httpapi_call(sandbox, "contacts").json()
    assert contacts["data"] == [{"id": "919811111111", "name": "919811111111"}]
    assert httpapi_call(sandbox, "noSuchOperation").status_code == 404


def test_the_daily_limit_is_the_instance_status_quota_limit_and_holds_sends(sandbox):
    # given an instance that takes 2 messages a day
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, daily_limit=2)
    before = httpapi_call(sandbox, "qrCode").json()["data"]
    # when three messages are sent today
    answers = [send_text(sandbox, phone=f"91981234567{i}") for i in range(3)]
    after = httpapi_call(sandbox, "qrCode").json()["data"]
    # then the status shows the limit and today's usage, and the third is refused as the quota answer
    assert (before["quotaLimit"], before["todayUsage"]) == (2, 0)
    assert (after["quotaLimit"], after["todayUsage"]) == (2, 2)
    assert [a.status_code for a in answers] == [200, 200, 400]
    assert answers[2].json()["message"] == "05-Quota expiry"
    assert sandbox.account_stats("httpapi")["rejected"] == {"daily_limit": 1}
    # and without the knob there is no limit, as the document's 0 says
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, daily_limit=None)
    assert httpapi_call(sandbox, "qrCode").json()["data"]["quotaLimit"] == 0
    assert send_text(sandbox).status_code == 200
