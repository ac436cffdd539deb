"""The sandbox's Meta Cloud API against metacloud.md, over real HTTP, without Blast's client: the send answer,
Graph errors, templates with statuses and cursor paging, the 24-hour window, and webhooks signed with the app
secret over the exact bytes posted (non-ASCII escaped)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests

from tests.support.sandbox import METACLOUD_APP_SECRET, METACLOUD_TOKEN
from workers.sandbox.gateways.metacloud import PHONE_NUMBER_ID, WABA_ID

TO = "+256701234567"


def send(sandbox, body: dict, *, token: str = METACLOUD_TOKEN, number: str = PHONE_NUMBER_ID) -> requests.Response:
    return requests.post(f"{sandbox.base_url('metacloud')}/v21.0/{number}/messages", timeout=10,
                         json={"messaging_product": "whatsapp", "to": TO, **body},
                         headers={"Authorization": f"Bearer {token}"})


def template(name: str, *components, language: str = "en_US") -> dict:
    body = {"name": name, "language": {"code": language}}
    if components:
        body["components"] = list(components)
    return {"type": "template", "template": body}


def body_of(*values: str) -> dict:
    return {"type": "body", "parameters": [{"type": "text", "text": value} for value in values]}


def error_code(answer: requests.Response) -> int:
    return answer.json()["error"]["code"]


def test_an_approved_template_is_accepted_with_a_wamid(sandbox):
    answer = send(sandbox, template("appointment_reminder", body_of("Asha", "Friday")))
    assert answer.status_code == 200
    body = answer.json()
    assert body["contacts"] == [{"input": TO, "wa_id": TO[1:]}]
    assert body["messages"][0]["id"].startswith("wamid.") and body["messages"][0]["message_status"] == "accepted"


@pytest.mark.parametrize(("message", "status", "code"), [
    (template("appointment_reminder", body_of("Asha")), 400, 132000),  # one parameter short
    (template("no_such"), 404, 132001),
    (template("new_offer", body_of("x")), 404, 132001),  # pending: not sendable
    (template("spring_sale", {"type": "header", "parameters": [{"type": "text", "text": "x"}]}, body_of("A")),
     400, 132012),  # a text where the image goes
    ({"type": "text", "text": {"body": "hi"}}, 400, 131047),  # the number never wrote
])
def test_meta_refuses_what_its_document_refuses(sandbox, message, status, code):
    answer = send(sandbox, message)
    assert (answer.status_code, error_code(answer)) == (status, code)
    assert set(answer.json()["error"]) >= {"message", "type", "code", "error_data", "fbtrace_id"}


def test_paused_and_disabled_templates_have_their_codes(sandbox):
    sandbox.knobs("metacloud", template_status={"welcome": "PAUSED", "appointment_reminder": "DISABLED"})
    assert error_code(send(sandbox, template("welcome"))) == 132015
    assert error_code(send(sandbox, template("appointment_reminder", body_of("a", "b")))) == 132016


def test_token_and_number_are_checked(sandbox):
    assert send(sandbox, template("welcome"), token="nope").status_code == 401
    wrong = send(sandbox, template("welcome"), number="123")
    assert (error_code(wrong), wrong.json()["error"]["error_subcode"]) == (100, 33)


def test_an_inbound_message_opens_the_24_hour_window(sandbox):
    sandbox.inbound("metacloud", None, TO, "hi")
    assert send(sandbox, {"type": "text", "text": {"body": "Hello back"}}).status_code == 200


def test_templates_come_in_pages_with_cursors(sandbox):
    url = f"{sandbox.base_url('metacloud')}/v21.0/{WABA_ID}/message_templates"
    headers = {"Authorization": f"Bearer {METACLOUD_TOKEN}"}
    first = requests.get(url, params={"limit": 3}, headers=headers, timeout=10).json()
    second = requests.get(url, params={"limit": 3, "after": first["paging"]["cursors"]["after"]}, headers=headers,
                          timeout=10).json()
    names = [(t["name"], t["language"], t["status"]) for t in first["data"] + second["data"]]
    assert len(names) == 6 and len(set(names)) == 6 and "next" in first["paging"]
    assert {"id", "name", "language", "status", "category", "components"} <= set(first["data"][0])


def test_error_knobs_answer_once_each_then_go_through(sandbox):
    sandbox.knobs("metacloud", error_codes={TO: [131056, 130429]})
    assert [error_code(send(sandbox, template("welcome"))) for _ in range(2)] == [131056, 130429]
    assert send(sandbox, template("welcome")).status_code == 200


def test_webhooks_are_signed_with_the_app_secret_over_the_bytes_posted(sandbox, receiver):
    # given statuses posted to a receiver, and a reply with non-ASCII text
    sandbox.knobs("metacloud", progress_seconds=0.05, webhook_url=receiver.url)
    wamid = send(sandbox, {**template("welcome"), "biz_opaque_callback_data": "42"}).json()["messages"][0]["id"]
    sandbox.inbound("metacloud", None, TO, "Grüße")
    # when they have come
    posts = receiver.wait_for(lambda posts: len(posts) >= 4 and posts, what="three statuses and a message")
    # then each is a Graph notification signed with the app secret over its raw bytes, non-ASCII escaped
    for post in posts:
        headers = {name.lower(): value for name, value in post["headers"].items()}
        expected = hmac.new(METACLOUD_APP_SECRET.encode(), post["raw"], hashlib.sha256).hexdigest()
        assert headers["x-hub-signature-256"] == f"sha256={expected}"
        assert post["raw"].isascii()
    values = [json.loads(p["raw"])["entry"][0]["changes"][0]["value"] for p in posts]
    statuses = [s for v in values for s in v.get("statuses", [])]
    assert {s["status"] for s in statuses} == {"sent", "delivered", "read"}
    assert {(s["id"], s["biz_opaque_callback_data"]) for s in statuses} == {(wamid, "42")}
    [message] = [m for v in values for m in v.get("messages", [])]
    assert (message["from"], message["text"]["body"]) == (TO[1:], "Grüße")
