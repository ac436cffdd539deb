"""The sandbox's SMSGlobal gateway against smsglobal.txt and providers/README.md, over real HTTP with
MAC-signed requests built here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.gateway_requests import smsglobal_call, smsglobal_mac
from tests.support.sandbox import SMSGLOBAL_KEY
from tests.support.waiting import wait_until
from workers.sandbox.gateways.smsglobal import mac_signature

MESSAGE_KEYS = {"id", "recipient", "status", "state", "message", "createdDate"}


def send(sandbox, to, message="Hello from the sandbox test"):
    return smsglobal_call(sandbox, "POST", "/v2/whatsapp", body={"to": to, "message": message})


def test_the_signature_matches_the_documented_test_vector():
    # given providers/README.md's test vector
    signed = ("secret12345", "1325376000", "abc123", "POST", "/v2/sms", "api.smsglobal.com")
    expected = "zJs/JU7wVjPEvHniKcYYrIOPQAeSyaHUFmzbjIV9Vus="
    # then the tests' signer and the sandbox's checker both give the documented MAC
    assert smsglobal_mac(*signed, 443) == expected
    assert mac_signature(*signed, "443") == expected


def test_a_send_answers_one_message_object_per_recipient(sandbox):
    # given two recipients and a text message object
    answer = send(sandbox, ["61400000001", "+61400000002"], {"type": "text", "text": "Hi there"})
    # then each gets a message object in the README's shape, sent and still pending
    assert answer.status_code == 200
    messages = answer.json()["messages"]
    assert [set(m) for m in messages] == [MESSAGE_KEYS, MESSAGE_KEYS]
    assert [m["recipient"] for m in messages] == ["61400000001", "61400000002"]
    assert all(isinstance(m["id"], int) and m["status"] == "sent" and m["state"] == "pending"
               and m["message"] == "Hi there" for m in messages)
    datetime.strptime(messages[0]["createdDate"], "%Y-%m-%d %H:%M:%S %z")
    per_recipient = sandbox.account_stats("smsglobal")["accepted_per_recipient"]
    assert per_recipient == {"+61400000001": 1, "+61400000002": 1}


@pytest.mark.parametrize("message", [
    "a bare string is text",
    {"type": "template", "template_name": "appointment", "params": ["Amina", "Monday"]},
    {"type": "image", "url": "https://example.com/a.png", "caption": "A picture"},
    {"type": "video", "url": "https://example.com/a.mp4"},
    {"type": "document", "url": "https://example.com/a.pdf", "filename": "a.pdf"},
    {"type": "audio", "url": "http://example.com/a.ogg"},
    {"type": "location", "lat": -33.86, "lng": 151.2, "name": "Sydney"},
])
def test_every_documented_message_type_is_accepted(sandbox, message):
    answer = send(sandbox, ["61400000001"], message)
    assert answer.status_code == 200, answer.text
    assert answer.json()["messages"][0]["status"] == "sent"


@pytest.mark.parametrize(("body", "field"), [
    ({"message": "hi"}, "to"),
    ({"to": [], "message": "hi"}, "to"),
    ({"to": ["not-a-number"], "message": "hi"}, "to[0]"),
    ({"to": ["61400000001"]}, "message"),
    ({"to": ["61400000001"], "message": {"type": "sticker", "url": "https://e.com/s.webp"}}, "message.type"),
    ({"to": ["61400000001"], "message": {"type": "text"}}, "message.text"),
    ({"to": ["61400000001"], "message": {"type": "template"}}, "message.template_name"),
    ({"to": ["61400000001"], "message": {"type": "image", "url": "ftp://e.com/a.png"}}, "message.url"),
    ({"to": ["61400000001"], "message": {"type": "location", "lat": 91, "lng": 0}}, "message.lat"),
])
def test_invalid_sends_are_400_naming_the_field(sandbox, body, field):
    answer = smsglobal_call(sandbox, "POST", "/v2/whatsapp", body=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == 400 and field in answer.json()["errors"]
    assert sandbox.account_stats("smsglobal")["accepted"] == 0


@pytest.mark.parametrize("tamper", ["wrong secret", "unknown key", "no header", "other path"])
def test_a_bad_signature_is_401(sandbox, tamper):
    if tamper == "wrong secret":
        answer = smsglobal_call(sandbox, "GET", "/v2/whatsapp", secret="not-the-secret")
    elif tamper == "unknown key":
        answer = smsglobal_call(sandbox, "GET", "/v2/whatsapp", key="someone-else")
    elif tamper == "no header":
        answer = requests.get(sandbox.base_url("smsglobal") + "/v2/whatsapp", timeout=10)
    else:  # signed for one path, sent to another
        good = smsglobal_call(sandbox, "GET", "/v2/whatsapp")
        answer = requests.get(sandbox.base_url("smsglobal") + "/v2/user/credit-balance", timeout=10,
                              headers={"Authorization": good.request.headers["Authorization"]})
    assert answer.status_code == 401


def test_a_signed_query_string_is_part_of_the_uri(sandbox):
    send(sandbox, ["61400000001", "61400000002", "61400000003"])
    answer = smsglobal_call(sandbox, "GET", "/v2/whatsapp", query={"offset": 2, "limit": 1})
    assert answer.status_code == 200
    page = answer.json()
    assert (page["total"], page["offset"], page["limit"]) == (3, 2, 1)
    assert [m["recipient"] for m in page["messages"]] == ["61400000002"]


def test_the_outgoing_list_filters_by_date_destination_and_text(sandbox):
    send(sandbox, ["61400000001"], "first reminder")
    send(sandbox, ["61400000002"], "second reminder")
    now = datetime.now(UTC)
    window = {"startDate": (now - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S"),
              "endDate": (now + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")}
    listed = smsglobal_call(sandbox, "GET", "/v2/whatsapp", query={**window, "destination": "61400000002"})
    assert [m["message"] for m in listed.json()["messages"]] == ["second reminder"]
    searched = smsglobal_call(sandbox, "GET", "/v2/whatsapp", query={"search": "first"})
    assert [m["recipient"] for m in searched.json()["messages"]] == ["61400000001"]
    past = {"startDate": "2020-01-01 00:00:00", "endDate": "2020-01-02 00:00:00"}
    assert smsglobal_call(sandbox, "GET", "/v2/whatsapp", query=past).json()["total"] == 0


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1001}, {"offset": 0},
                                   {"offset": 9990, "limit": 20}, {"startDate": "01-02-2024"}])
def test_paging_outside_the_documented_bounds_is_400(sandbox, query):
    assert smsglobal_call(sandbox, "GET", "/v2/whatsapp", query=query).status_code == 400


def test_statuses_progress_to_read_and_final_when_polled(sandbox):
    # given statuses that move every 50 ms
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, progress_seconds=0.05)
    message_id = send(sandbox, ["61400000001"]).json()["messages"][0]["id"]

    # when the client polls the message by id
    def seen():
        answer = smsglobal_call(sandbox, "GET", f"/v2/whatsapp/{message_id}").json()
        statuses.append(answer["status"])
        return answer if answer["state"] == "final" else None

    statuses: list[str] = []
    final = wait_until(seen, timeout=15, interval=0.02, message="the message to become final")
    # then it went sent -> delivered -> read, and read is final
    assert final["status"] == "read" and set(final) == MESSAGE_KEYS
    assert set(statuses) <= {"sent", "delivered", "read"}
    assert smsglobal_call(sandbox, "GET", "/v2/whatsapp/999").status_code == 404


def test_a_number_not_on_whatsapp_is_invalid_number_and_capability_says_so(sandbox):
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, not_on_whatsapp=["61400000009"])
    messages = send(sandbox, ["61400000001", "61400000009"]).json()["messages"]
    assert [(m["status"], m["state"]) for m in messages] == [("sent", "pending"), ("invalidNumber", "final")]
    capability = smsglobal_call(sandbox, "POST", "/v2/whatsapp/capability",
                                body={"numbers": ["61400000001", "61400000009"]}).json()
    assert capability == {"capabilities": [
        {"name": "", "number": "61400000001", "capable": True, "blacklist": False},
        {"name": "", "number": "61400000009", "capable": False, "blacklist": False}]}


def test_no_credit_is_402_and_over_the_rate_is_429_with_retry_after(sandbox):
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, quota=1)
    assert send(sandbox, ["61400000001", "61400000002"]).status_code == 402
    assert send(sandbox, ["61400000001"]).status_code == 200
    balance = smsglobal_call(sandbox, "GET", "/v2/user/credit-balance").json()
    assert balance == {"balance": 0.0, "currency": "AUD"}
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, quota=None, rate_cap=2)
    over = send(sandbox, ["61400000001", "61400000002", "61400000003"])
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    assert sandbox.account_stats("smsglobal")["rejected"] == {"quota": 2, "rate_cap": 3}


def test_inbound_messages_are_listed_and_fetched_by_id(sandbox):
    injected = sandbox.inbound("smsglobal", SMSGLOBAL_KEY, "+61400000005", "STOP")
    assert injected["pushed"] is False
    listed = smsglobal_call(sandbox, "GET", "/v2/whatsapp-incoming").json()
    assert listed["total"] == 1
    incoming = listed["messages"][0]
    assert set(incoming) == {"id", "from", "to", "message", "createdDate"}
    assert incoming["from"] == "61400000005" and incoming["message"] == "STOP"
    one = smsglobal_call(sandbox, "GET", f"/v2/whatsapp-incoming/{incoming['id']}").json()
    assert one == incoming


def test_opt_ins_are_kept_and_shown(sandbox):
    added = smsglobal_call(sandbox, "POST", "/v2/whatsapp/opt-in",
                           body={"opt-in": [{"name": "Amina", "number": "61400000001"}]})
    assert added.json() == {"optIn": [{"name": "Amina", "number": "61400000001", "capable": True,
                                       "blacklist": False}]}
    assert smsglobal_call(sandbox, "GET", "/v2/whatsapp/opt-in").json() == added.json()
    refused = smsglobal_call(sandbox, "POST", "/v2/whatsapp/opt-in", body={"opt-in": [{"name": "x"}]})
    assert refused.status_code == 400


def test_methods_media_types_and_paths_follow_the_general_codes(sandbox):
    assert smsglobal_call(sandbox, "DELETE", "/v2/whatsapp").status_code == 405
    assert smsglobal_call(sandbox, "GET", "/v2/nothing-here").status_code == 404
    assert smsglobal_call(sandbox, "GET", "/v2/whatsapp", headers={"Accept": "text/html"}).status_code == 406
    as_text = smsglobal_call(sandbox, "POST", "/v2/whatsapp", headers={"Content-Type": "text/plain"},
                             body="to=61400000001")
    assert as_text.status_code == 415
