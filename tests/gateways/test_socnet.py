"""The Socnet client: the request it builds for each kind, the limits it checks before sending, and every
kind and error path against the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from campaigns.states import Outcome
from tests.support.sandbox import account
from workers.providers import InvalidMessage, Outbound, SocnetClient

KEY = "sandbox-socnet-key-0123456789abc"
UGANDA = "+256701234567"


def client(**overrides) -> SocnetClient:
    return SocnetClient(account("socnet", **overrides))


# ---------------------------------------------------------------------- requests


def test_text_request_is_the_documents_json():
    request = client().build_payload(Outbound(message_id=7, to=UGANDA, text="Hello Aisha"))
    assert (request.method, request.path) == ("POST", "/projects/bulk/whatsapp/api.php")
    assert request.json == {"api_key": KEY, "msisdn": "256701234567", "msg": "Hello Aisha"}


def test_template_request_names_the_template():
    message = Outbound(message_id=7, to=UGANDA, text="Your order shipped", kind="template",
                       options={"template": "order_update"})
    assert client().build_payload(message).json["template"] == "order_update"


def test_otp_request_sends_only_the_code():
    message = Outbound(message_id=7, to=UGANDA, text=" 1234 ", kind="otp", options={"template": "otp_login"})
    assert client().build_payload(message).json == {"api_key": KEY, "msisdn": "256701234567", "msg": "1234",
                                                    "template": "otp_login"}


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (Outbound(message_id=1, to="+254701234567", text="hi"), "must be 12 digits starting with 256"),
        (Outbound(message_id=1, to="+25670123456", text="hi"), "must be 12 digits starting with 256"),
        (Outbound(message_id=1, to="+2567012345678", text="hi"), "must be 12 digits starting with 256"),
        (Outbound(message_id=1, to="0701234567", text="hi"), "E.164"),
        (Outbound(message_id=1, to=UGANDA, text=""), "text is required"),
        (Outbound(message_id=1, to=UGANDA, text="x" * 4097), "4097 characters, over the limit of 4096"),
        (Outbound(message_id=1, to=UGANDA, text="1234 is your code", kind="otp", options={"template": "otp"}),
         "must be only the code"),
        (Outbound(message_id=1, to=UGANDA, text="1234", kind="otp"), "template name"),
        (Outbound(message_id=1, to=UGANDA, text="hi", kind="template"), "template name"),
        (Outbound(message_id=1, to=UGANDA, text="hi", kind="image", options={"media_url": "https://x/y.png"}),
         "kind 'image' is not offered"),
    ],
)
def test_limits_are_checked_before_sending_with_a_clear_error(message, words):
    with pytest.raises(InvalidMessage) as error:
        client().validate(message)
    assert words in str(error.value)


# ---------------------------------------------------------------------- against the sandbox


@pytest.fixture
def socnet(sandbox):
    gateway = SocnetClient(sandbox.account("socnet"))
    yield gateway
    gateway.close()


@pytest.mark.parametrize(
    "message",
    [
        Outbound(message_id=1, to=UGANDA, text="Hello Aisha"),
        Outbound(message_id=2, to=UGANDA, text="Your order shipped", kind="template",
                 options={"template": "order_update"}),
        Outbound(message_id=3, to=UGANDA, text="493817", kind="otp", options={"template": "otp_login"}),
    ],
    ids=["text", "template", "otp"],
)
def test_each_kind_is_accepted_with_an_id(sandbox, socnet, message):
    # when the message is sent to the sandbox
    result = socnet.send(message)
    # then it is accepted with the gateway's id (either channel), and the gateway saw it once
    assert result.outcome == Outcome.ACCEPTED, result
    assert result.provider_message_id
    assert result.cost is not None
    assert sandbox.account_stats("socnet")["accepted_per_recipient"] == {UGANDA: 1}


def test_wrong_key_is_auth(sandbox):
    gateway = SocnetClient(sandbox.account("socnet", api_key="x" * 32))
    result = gateway.send(Outbound(message_id=1, to=UGANDA, text="hi"))
    assert result.outcome == Outcome.AUTH and result.code in ("401", "HTTP 401")


def test_quota_exhausted_is_quota(sandbox, socnet):
    sandbox.knobs("socnet", quota=1)
    first = socnet.send(Outbound(message_id=1, to=UGANDA, text="hi"))
    second = socnet.send(Outbound(message_id=2, to="+256701234568", text="hi"))
    assert first.outcome == Outcome.ACCEPTED
    assert (second.outcome, second.code) == (Outcome.QUOTA, "403")
    assert "credit" in second.detail.lower()


def test_number_not_on_whatsapp_is_recipient(sandbox, socnet):
    sandbox.knobs("socnet", not_on_whatsapp=[UGANDA])
    result = socnet.send(Outbound(message_id=1, to=UGANDA, text="hi"))
    assert (result.outcome, result.code) == (Outcome.RECIPIENT, "invalid")
    assert result.raw == {"status": "invalid"}


def test_gateway_failure_is_transient(sandbox, socnet):
    sandbox.knobs("socnet", fail_fraction=1.0)
    result = socnet.send(Outbound(message_id=1, to=UGANDA, text="hi"))
    assert result.outcome == Outcome.TRANSIENT and "503" in result.code


def test_over_the_rate_cap_is_transient_503(sandbox, socnet):
    # given a cap of one message a second; when five go at once
    sandbox.knobs("socnet", rate_cap=1)
    results = [socnet.send(Outbound(message_id=n, to=f"+25670123450{n}", text="hi")) for n in range(5)]
    # then the gateway's 503 for the ones over the cap is transient (socnet.txt offers no throttling code)
    outcomes = [r.outcome for r in results]
    assert Outcome.ACCEPTED in outcomes and Outcome.TRANSIENT in outcomes
    assert all(r.code.endswith("503") for r in results if r.outcome == Outcome.TRANSIENT)


def test_invalid_message_never_reaches_the_gateway(sandbox, socnet):
    result = socnet.send(Outbound(message_id=1, to="+254701234567", text="hi"))
    assert result.outcome == Outcome.CONTENT
    assert sandbox.account_stats("socnet").get("requests", 0) == 0


def test_both_channels_answers_are_accepted(sandbox, socnet):
    # socnet.txt: "The API will automatically choose one of the two channels ... expect any of the two"
    shapes: set[str] = set()
    for n in range(40):
        result = socnet.send(Outbound(message_id=n, to=f"+2567012345{n:02d}", text="hi"))
        assert result.outcome == Outcome.ACCEPTED and result.provider_message_id
        shapes.add("channel 1" if "sent" in result.raw else "channel 2")
        if len(shapes) == 2:
            break
    assert shapes == {"channel 1", "channel 2"}
