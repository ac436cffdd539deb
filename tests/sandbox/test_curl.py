"""`blast sandbox` answers hand-written curl commands with the documents' sample shapes (same keys, same
kinds of values), one gateway after another."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.gateway_requests import smsglobal_mac
from tests.support.sandbox import DEVINO_KEY, HTTPAPI_TOKEN, SMSGLOBAL_KEY, SMSGLOBAL_SECRET, SOCNET_KEY
from tests.support.waiting import wait_until
from workers.sandbox.harness import free_port

# The documents' own samples (socnet.txt, devino.txt, httpapi.txt; SMSGlobal's from providers/README.md).
SOCNET_CHANNEL_1 = {"sent": "true", "from": "256701234567@c.us", "message_type": "chat",
                    "messageId": "3EB002BAE9545124A5B7B2", "cost": "90"}
SOCNET_CHANNEL_2 = {"messaging_product": "whatsapp",
                    "contacts": [{"input": "256701234567", "wa_id": "256701234567"}],
                    "messages": [{"id": "message_id", "message_status": "accepted"}], "cost": 0}
SOCNET_WRONG_KEY = {"message": "Invalid user credentials", "status": 401}
DEVINO_OK = {"result": [{"code": "OK", "messageId": "3482512350952730368"}]}
DEVINO_REJECTED = {"result": [{"code": "CODE", "reasons": [{"key": "string", "ref": "string"}],
                               "description": "string"}]}
HTTPAPI_SUCCESS = {"status": "success", "message": "00-Success",
                   "data": {"connStatus": True, "messageIDs": ["62b32db5758e0afb0d3907e1"]},
                   "responsetime": 0.001561498}
HTTPAPI_WRONG_TOKEN = {"status": "error", "message": "invalid object id", "responsetime": 0.00002883}
HTTPAPI_STATUS = json.loads(
    '{"status":"success","message":"00-Success","data":{"messageID":"62*****35","clientID":"5f*****c8",'
    '"instanceID":"5f*****f3","creditID":"","phone":"919*****1","full_push_name":"","text":"test_message",'
    '"link":"","serverSend":false,"isMedia":false,"mediaType":"","mediaPath":"","isLocation":false,'
    '"location":null,"isContact":false,"contact":null,"isButton":false,"button":null,"isList":false,'
    '"list":null,"wacheck":false,"waID":"919***0","waMessageID":"EC***22","status":1,"timedOut":0,'
    '"statusInfo":"Sent","statusMessage":3,"statusMessageInfo":"Delivered","mode":"Panel",'
    '"deliveredAt":"2022-06-25T14:36:16.546+05:30","readAt":null,"createdAt":"2022-06-25T14:36:01.025+05:30",'
    '"updatedAt":"2022-06-25T14:36:01.474+05:30","value":null},"responsetime":0.000954181}')
HTTPAPI_BALANCE = {"status": "success", "message": "00-Success", "data": {
    "backup": None, "expiryDate": "2023-05-04 22:29:59 +0530 IST", "quota": 4300, "status": "active"},
    "responsetime": 0.001125932}
SMSGLOBAL_SENT = {"messages": [{"id": 6746514019161950, "recipient": "61400000000", "status": "sent",
                                "state": "pending", "message": "Hello",
                                "createdDate": "2024-07-02 10:00:00 +0000"}]}


def shape(value):
    """Keys and kinds of a JSON value: dicts by key, lists by their first item, null matches anything."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def same_shape(actual, sample) -> bool:
    if sample is None or actual is None:
        return True  # the samples print null where a value may come later (readAt, deliveredAt)
    if isinstance(sample, dict):
        return isinstance(actual, dict) and set(actual) == set(sample) and all(
            same_shape(actual[key], sample[key]) for key in sample)
    if isinstance(sample, list):
        return isinstance(actual, list) and all(same_shape(item, sample[0]) for item in actual[:1])
    return actual == sample


def assert_shaped_like(actual, *samples) -> None:
    assert any(same_shape(shape(actual), shape(sample)) for sample in samples), (
        f"{json.dumps(actual)} is not shaped like any of {[json.dumps(s) for s in samples]}")


@pytest.fixture(scope="module")
def blast_sandbox():
    """`blast sandbox --port <free>`: the console script itself, as an operator would start it."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = Path(sys.executable).with_name("blast")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "campaigns.cli"]
    port = free_port()
    process = subprocess.Popen([*command, "sandbox", "--port", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers():
        assert process.poll() is None, "blast sandbox exited"
        try:
            return requests.get(f"{url}/_sandbox/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(answers, timeout=30, interval=0.02, message="blast sandbox to answer")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def curl(*args: str) -> tuple[int, dict]:
    """Run curl; return the HTTP status and the JSON body."""
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                          timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_socnet_by_curl(blast_sandbox):
    url = f"{blast_sandbox}/socnet/projects/bulk/whatsapp/api.php"
    status, body = curl("-X", "POST", url, "-H", "Content-Type: application/json",
                        "-d", json.dumps({"api_key": SOCNET_KEY, "msisdn": "256701234567", "msg": "Hello"}))
    assert status == 200
    assert_shaped_like(body, SOCNET_CHANNEL_1, SOCNET_CHANNEL_2)
    status, body = curl("-X", "POST", url, "-d", '{"api_key": "wrong", "msisdn": "256701234567", "msg": "x"}')
    assert (status, body) == (401, SOCNET_WRONG_KEY)


def test_devino_by_curl(blast_sandbox):
    # devino.txt's own curl example, with the sandbox's key and sender
    request = json.dumps({"messages": [{"from": "Blast", "to": "79034567890", "text": "Code: 1234"}]})
    status, body = curl("-X", "POST", f"{blast_sandbox}/devino/whatsapp/messages",
                        "-H", f"Authorization: Key {DEVINO_KEY}", "-H", "Content-Type: application/json",
                        "-H", "Accept: application/json", "-d", request)
    assert status == 200
    assert_shaped_like(body, DEVINO_OK)
    status, body = curl("-X", "POST", f"{blast_sandbox}/devino/whatsapp/messages",
                        "-H", f"Authorization: Key {DEVINO_KEY}", "-d", '{"messages": [{"from": "Blast"}]}')
    assert status == 200
    assert_shaped_like(body, DEVINO_REJECTED)


def test_httpapi_by_curl(blast_sandbox):
    base = f"{blast_sandbox}/httpapi/api"
    status, body = curl(f"{base}/sendText?token={HTTPAPI_TOKEN}&phone=919812345678&message=Hello%20there")
    assert status == 200
    assert_shaped_like(body, HTTPAPI_SUCCESS)
    message_id = body["data"]["messageIDs"][0]
    status, body = curl(f"{base}/campaignStatus?token={HTTPAPI_TOKEN}&msg_id={message_id}")
    assert status == 200
    assert_shaped_like(body, HTTPAPI_STATUS)
    status, body = curl(f"{base}/checkBal?token={HTTPAPI_TOKEN}")
    assert_shaped_like(body, HTTPAPI_BALANCE)
    status, body = curl("-X", "POST", f"{base}/sendText",
                        "-d", "token=000000000000000000000000&phone=1&message=x")
    assert status == 401
    assert_shaped_like(body, HTTPAPI_WRONG_TOKEN)


def test_smsglobal_by_curl(blast_sandbox):
    path = "/smsglobal/v2/whatsapp"
    ts, nonce = str(int(time.time())), "curl-test-nonce"
    port = blast_sandbox.rsplit(":", 1)[1]
    mac = smsglobal_mac(SMSGLOBAL_SECRET, ts, nonce, "POST", path, "127.0.0.1", int(port))
    authorization = f'MAC id="{SMSGLOBAL_KEY}", ts="{ts}", nonce="{nonce}", mac="{mac}"'
    request = json.dumps({"to": ["61400000000"], "message": {"type": "text", "text": "Hello"}})
    status, body = curl("-X", "POST", f"{blast_sandbox}{path}", "-H", f"Authorization: {authorization}",
                        "-H", "Content-Type: application/json", "-H", "Accept: application/json",
                        "-d", request)
    assert status == 200
    assert_shaped_like(body, SMSGLOBAL_SENT)
