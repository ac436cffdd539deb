"""The sandbox's Devino gateway against devino.txt, over real HTTP; callbacks land on a receiver here."""

from __future__ import annotations

import pytest
import requests

from tests.support.gateway_requests import devino_message, devino_post
from tests.support.hooks import Receiver
from tests.support.sandbox import DEVINO_KEY

STATUS_KEYS = {"messageId", "ts", "status", "errorCode", "ip", "browser", "os", "userAgent", "options"}


def statuses_for(message_id: str):
    """A predicate over received POSTs: every status object about `message_id`, in arrival order."""
    def found(posts):
        return [item for post in posts for item in post["body"] if str(item["messageId"]) == message_id]
    return found


def test_a_send_answers_ok_with_a_message_id_per_message(sandbox):
    answer = devino_post(sandbox, [devino_message("79034567890"), devino_message("+79034567891")])
    assert answer.status_code == 200
    result = answer.json()["result"]
    assert [set(r) for r in result] == [{"code", "messageId"}] * 2
    assert all(r["code"] == "OK" and r["messageId"].isdigit() for r in result)
    assert result[0]["messageId"] != result[1]["messageId"]


def test_statuses_arrive_at_the_callback_url_with_callback_data_echoed(sandbox, receiver):
    # given statuses that move every 50 ms and a callback URL on each message
    sandbox.knobs("devino", DEVINO_KEY, progress_seconds=0.05)
    message = devino_message(callbackUrl=receiver.url + "/hooks/devino", callbackData="campaign-7:msg-42")
    message_id = devino_post(sandbox, [message]).json()["result"][0]["messageId"]
    # when the statuses have all come (POSTed by concurrent senders 50 ms apart: in any order, as Devino's may)
    steps = {"SENT", "DELIVERED", "READ"}
    statuses = receiver.wait_for(lambda posts: (found := statuses_for(message_id)(posts)) and
                                 {s["status"] for s in found} >= steps and found, what="SENT, DELIVERED, READ")
    # then each came once, as a JSON array of status objects shaped as the document's sample
    assert sorted(s["status"] for s in statuses) == sorted(steps)
    assert all(set(s) == STATUS_KEYS and s["options"] == "campaign-7:msg-42" and s["errorCode"] == 0
               and s["messageId"] == int(message_id) for s in statuses)
    assert all(isinstance(post["body"], list) for post in receiver.posts)
    assert receiver.posts[0]["path"] == "/hooks/devino"


def test_over_the_rate_cap_the_send_is_ok_then_the_callback_says_2301(sandbox, receiver):
    # given a cap of 2 messages a second
    sandbox.knobs("devino", DEVINO_KEY, rate_cap=2, progress_seconds=None)
    # when one request carries 3 messages
    messages = [devino_message(f"7903456789{i}", callbackUrl=receiver.url) for i in range(3)]
    result = devino_post(sandbox, messages).json()["result"]
    # then all three are OK at the door, and the third is throttled by callback
    assert [r["code"] for r in result] == ["OK", "OK", "OK"]
    throttled = receiver.wait_for(statuses_for(result[2]["messageId"]), what="the 2301 callback")
    assert throttled[0]["status"] == "FAILED" and throttled[0]["errorCode"] == 2301
    stats = sandbox.account_stats("devino")
    assert stats["accepted"] == 2 and stats["peak_per_second"] == 2 and stats["rejected"] == {"rate_cap": 1}


def test_a_number_not_on_whatsapp_gets_2305(sandbox, receiver):
    sandbox.knobs("devino", DEVINO_KEY, not_on_whatsapp=["79030000000"])
    result = devino_post(sandbox, [devino_message("79030000000", callbackUrl=receiver.url)]).json()["result"]
    assert result[0]["code"] == "OK"
    status = receiver.wait_for(statuses_for(result[0]["messageId"]), what="the 2305 callback")[0]
    assert status["status"] == "UNDELIVERED" and status["errorCode"] == 2305


def test_a_callback_is_retried_until_the_receiver_answers_200(sandbox):
    # given a receiver that fails twice
    with Receiver(statuses=[500, 503]) as flaky:
        sandbox.knobs("devino", DEVINO_KEY, progress_seconds=None)
        answer = devino_post(sandbox, [devino_message(callbackUrl=flaky.url)])
        message_id = answer.json()["result"][0]["messageId"]
        # then the same SENT status comes a third time, and that one is answered 200
        posts = flaky.wait_for(lambda posts: len(posts) >= 3 and posts, what="the third try")
    assert [p["answered"] for p in posts[:3]] == [500, 503, 200]
    assert all(p["body"][0]["messageId"] == int(message_id) and p["body"][0]["status"] == "SENT"
               for p in posts[:3])


@pytest.mark.parametrize(("message", "reasons"), [
    ({"from": "Blast", "text": "hi"}, [{"key": "must.be.not.null", "ref": "messages[0].to"}]),
    ({"to": "79034567890", "text": "hi"}, [{"key": "must.be.not.null", "ref": "messages[0].from"}]),
    ({"from": "Someone", "to": "79034567890", "text": "hi"},
     [{"key": "not.available", "ref": "messages[0].from"}]),
    ({"from": "Blast", "to": "7903-ABC", "text": "hi"}, [{"key": "invalid", "ref": "messages[0].to"}]),
    ({"from": "Blast", "to": "7903456789012345", "text": "hi"},
     [{"key": "length.too.long", "ref": "messages[0].to"}]),
    ({"from": "Blast", "to": "79034567890"}, [{"key": "must.be.not.null", "ref": "messages[0]"}]),
    ({"from": "Blast", "to": "79034567890", "text": "x" * 1001},
     [{"key": "length.too.long", "ref": "messages[0].text"}]),
    ({"from": "Blast", "to": "79034567890", "text": "hi", "callbackUrl": "not a url"},
     [{"key": "invalid", "ref": "messages[0].callbackUrl"}]),
    ({"from": "Blast", "to": "79034567890", "contentUrl": "https://e.com/a.gif", "contentType": "image/gif"},
     [{"key": "invalid", "ref": "messages[0].contentType"}]),
    ({"from": "Blast", "to": "79034567890", "text": "hi", "languageCode": "e"},
     [{"key": "length.too.short", "ref": "messages[0].languageCode"}]),
    ({"from": "Blast", "to": "79034567890", "text": "hi", "validity": 0},
     [{"key": "invalid", "ref": "messages[0].validity"}]),
])
def test_each_invalid_message_is_rejected_with_its_key_and_ref(sandbox, message, reasons):
    answer = devino_post(sandbox, [message])
    assert answer.status_code == 200
    result = answer.json()["result"][0]
    assert result["code"] == "REJECTED" and result["reasons"] == reasons and result["description"]
    assert "messageId" not in result


def test_one_bad_message_does_not_spoil_the_others(sandbox):
    result = devino_post(sandbox, [devino_message(), {"from": "Blast"}, devino_message("79034567899")]).json()
    assert [r["code"] for r in result["result"]] == ["OK", "REJECTED", "OK"]
    assert result["result"][1]["reasons"][0]["ref"] == "messages[1].to"


@pytest.mark.parametrize(("messages", "key"), [([], "must.be.not.null"),
                                               ([devino_message()] * 101, "too.many.messages")])
def test_an_empty_or_oversized_array_is_rejected_whole(sandbox, messages, key):
    answer = devino_post(sandbox, messages)
    assert answer.status_code == 400
    assert answer.json()["result"][0]["reasons"] == [{"key": key, "ref": "messages"}]


def test_a_wrong_key_is_401_forbidden(sandbox):
    answer = devino_post(sandbox, [devino_message()], key="not-a-key")
    assert answer.status_code == 401
    assert answer.json()["result"][0]["reasons"] == [{"key": "forbidden"}]
    no_header = requests.post(sandbox.base_url("devino") + "/whatsapp/messages", timeout=10,
                              json={"messages": [devino_message()]})
    assert no_header.status_code == 401


def test_no_credit_is_billing_error(sandbox):
    sandbox.knobs("devino", DEVINO_KEY, quota=1)
    result = devino_post(sandbox, [devino_message("79034567890"), devino_message("79034567891")]).json()
    assert result["result"][0]["code"] == "OK"
    assert result["result"][1] == {"code": "REJECTED", "reasons": [{"key": "billing.error"}],
                                   "description": "Payment is required"}


def test_inbound_messages_go_to_the_webhook_url(sandbox, receiver):
    sandbox.knobs("devino", DEVINO_KEY, webhook_url=receiver.url + "/incoming")
    injected = sandbox.inbound("devino", DEVINO_KEY, "+79034567890", "Hello back")
    assert injected["pushed"] is True
    incoming = receiver.wait_for(lambda posts: posts and posts[0]["body"], what="the inbound message")
    assert incoming["incomingMessageId"] == injected["id"]
    assert (incoming["from"], incoming["to"], incoming["text"]) == ("79034567890", "Blast", "Hello back")
