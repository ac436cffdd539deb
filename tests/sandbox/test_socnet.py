"""The sandbox's Socnet gateway against socnet.txt, over real HTTP."""

from __future__ import annotations

import pytest
import requests

from tests.support.gateway_requests import SOCNET_PATH, socnet_post
from tests.support.sandbox import SOCNET_KEY

CHANNEL_1_KEYS = {"sent", "from", "message_type", "messageId", "cost"}
CHANNEL_2_KEYS = {"messaging_product", "contacts", "messages", "cost"}


def test_a_send_is_answered_in_one_of_the_two_documented_channel_shapes(sandbox):
    # given the built-in Socnet account
    shapes = set()
    # when it sends to different Ugandan numbers until both channels have answered
    for i in range(60):
        answer = socnet_post(sandbox, {"api_key": SOCNET_KEY, "msisdn": f"2567012345{i:02d}", "msg": "Hello"})
        assert answer.status_code == 200
        body = answer.json()
        if "sent" in body:
            # then channel 1: sent "true", from <msisdn>@c.us, a message id, a cost
            assert set(body) == CHANNEL_1_KEYS
            assert body["sent"] == "true" and body["from"] == f"2567012345{i:02d}@c.us"
            assert body["message_type"] == "chat" and body["messageId"] and body["cost"] == "90"
            shapes.add(1)
        else:
            # or channel 2: the Cloud API's shape
            assert set(body) == CHANNEL_2_KEYS
            assert body["messaging_product"] == "whatsapp"
            assert body["contacts"] == [{"input": f"2567012345{i:02d}", "wa_id": f"2567012345{i:02d}"}]
            assert body["messages"][0]["message_status"] == "accepted" and body["messages"][0]["id"]
            assert body["cost"] == 0
            shapes.add(2)
        if shapes == {1, 2}:
            break
    assert shapes == {1, 2}
    # and the sandbox counted every send against the recipient
    stats = sandbox.account_stats("socnet")
    assert stats["accepted"] == i + 1 and stats["duplicates"] == 0


def test_the_key_alone_checks_the_credentials(sandbox):
    answer = socnet_post(sandbox, {"api_key": SOCNET_KEY})
    assert answer.status_code == 200 and answer.json() == {"status": "valid"}


@pytest.mark.parametrize("api_key", ["wrong-key-0123456789abcdefghijkl", "x"])
def test_a_wrong_key_is_refused_with_the_documented_body(sandbox, api_key):
    answer = socnet_post(sandbox, {"api_key": api_key, "msisdn": "256701234567", "msg": "Hello"})
    assert answer.status_code == 401
    assert answer.json() == {"message": "Invalid user credentials", "status": 401}
    assert sandbox.account_stats("socnet")["accepted"] == 0


def test_a_missing_key_is_a_missing_parameter(sandbox):
    answer = socnet_post(sandbox, {"msisdn": "256701234567", "msg": "Hello"})
    assert answer.status_code == 400
    assert answer.json() == {"data": None, "message": "The api_key field is required.", "status": 400}


@pytest.mark.parametrize(("body", "message", "reason"), [
    ({"msg": "Hello"}, "The msisdn field is required.", "missing:msisdn"),
    ({"msisdn": "256701234567"}, "The msg field is required.", "missing:msg"),
    ({"msisdn": "256701234567", "msg": ""}, "The msg field is required.", "missing:msg"),
    ({"msisdn": "0701234567", "msg": "Hello"}, "The msisdn field must be 12 digits starting with 256.",
     "invalid:msisdn"),
    ({"msisdn": "+256701234567", "msg": "Hello"}, "The msisdn field must be 12 digits starting with 256.",
     "invalid:msisdn"),
    ({"msisdn": "256701234567", "msg": 42}, "The msg field must be a string.", "invalid:msg"),
])
def test_missing_and_malformed_parameters_are_422(sandbox, body, message, reason):
    answer = socnet_post(sandbox, {"api_key": SOCNET_KEY, **body})
    assert answer.status_code == 422
    assert answer.json() == {"message": message, "status": 422}
    assert sandbox.account_stats("socnet")["rejected"] == {reason: 1}


def test_a_number_not_on_whatsapp_is_invalid(sandbox):
    sandbox.knobs("socnet", SOCNET_KEY, not_on_whatsapp=["+256 701 234 567"])
    answer = socnet_post(sandbox, {"api_key": SOCNET_KEY, "msisdn": "256701234567", "msg": "Hello"})
    assert answer.status_code == 200 and answer.json() == {"status": "invalid"}
    assert sandbox.account_stats("socnet")["rejected"] == {"not_on_whatsapp": 1}


def test_no_credit_is_403_and_going_over_the_rate_is_503(sandbox):
    sandbox.knobs("socnet", SOCNET_KEY, quota=0)
    answer = socnet_post(sandbox, {"api_key": SOCNET_KEY, "msisdn": "256701234567", "msg": "Hello"})
    assert answer.status_code == 403
    assert answer.json() == {"message": "Insufficient credit (0) for transaction charge of 90", "status": 403}
    sandbox.knobs("socnet", SOCNET_KEY, quota=None, rate_cap=1)
    first = socnet_post(sandbox, {"api_key": SOCNET_KEY, "msisdn": "256701234567", "msg": "Hello"})
    second = socnet_post(sandbox, {"api_key": SOCNET_KEY, "msisdn": "256701234568", "msg": "Hello"})
    assert first.status_code == 200
    assert second.status_code == 503 and second.json() == {"message": "Service unavailable", "status": 503}


def test_other_methods_and_paths_answer_as_documented(sandbox):
    wrong_method = requests.get(sandbox.base_url("socnet") + SOCNET_PATH, timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"message": "Method is not allowed for the requested route", "status": 405}
    unknown = requests.post(sandbox.base_url("socnet") + "/projects/other.php", json={}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["data"] is None


def test_the_charge_knob_is_the_cost_channel_1_reports(sandbox):
    # given a charge of 120 a message
    sandbox.knobs("socnet", SOCNET_KEY, charge=120)
    costs = set()
    # when sends go until channel 1 has answered
    for i in range(60):
        body = socnet_post(sandbox, {"api_key": SOCNET_KEY, "msisdn": f"2567012346{i:02d}", "msg": "Hi"}).json()
        costs.add(body["cost"])
        if "120" in costs:
            break
    # then channel 1 reports it as its sample writes a cost (a string), channel 2 still 0
    assert costs <= {"120", 0} and "120" in costs

