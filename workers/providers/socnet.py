"""Socnet Solutions (Uganda), WhatsApp Messaging API v1.01 (socnet.txt).

One URL takes every call: POST JSON `{api_key, msisdn, msg, template?}`. The send answer is final (Socnet
offers no delivery reports) and comes in one of two shapes, "channel 1" or "channel 2", chosen by the
gateway per message. With no reports and no callbacks, an `unknown` message (an HTTP 500, a body nobody
documented, a read timeout) cannot be looked up: the account's `on_unknown` decides (hold or resend).

Kinds: text, template (options `template`: the approved template's name), otp (an OTP template: `msg` is
only the code; the gateway writes the rest of the text).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from campaigns.states import Outcome
from workers.providers.base import (
    GatewayRequest,
    GatewaySpec,
    HttpAnswer,
    InvalidMessage,
    Outbound,
    ProviderClient,
    Rule,
    SendResult,
    check_length,
    check_text,
    money,
    require_e164,
)

PATH = "/projects/bulk/whatsapp/api.php"  # socnet.txt "Request Submission URL"
KINDS = ("text", "template", "otp")

# msisdn is N12 and "Start with 256" (socnet.txt "Message Sending", request parameters).
MSISDN = re.compile(r"^256\d{9}$")
# socnet.txt "Message Sending": with an OTP template "the msg should contain only the OTP and no other
# text". The code's shape is not stated; assumption: WhatsApp's own rule for authentication codes, at most
# 15 letters or digits.
OTP_CODE = re.compile(r"^[A-Za-z0-9]{1,15}$")
# Assumption: template names follow WhatsApp's rule (at most 512 characters); the document is silent.
TEMPLATE_NAME_MAX = 512

A = Outcome
# Every answer socnet.txt lists, by the body's `status` (or `sent`, or the channel-2 shape); a body that is
# not JSON is looked up by its HTTP status, which the document says carries the same code.
OUTCOMES: dict[str, Rule] = {
    "0": Rule(A.ACCEPTED, "OK"),  # "Status Codes" 0; "General Success Response"
    "true": Rule(A.ACCEPTED, "sent"),  # "Success Response - channel 1": {"sent": "true", "messageId", "cost"}
    "channel 2": Rule(A.ACCEPTED, "accepted"),  # "Success Response - channel 2": messages[].id
    "1": Rule(A.CONTENT, "FAIL - something wrong with the request"),  # "Status Codes" 1
    "400": Rule(A.CONTENT, "a required field is missing"),  # "Failed Response - Missing parameters"
    # "Status Codes" 401; "Failed Response - Wrong credentials"
    "401": Rule(A.AUTH, "invalid user credentials"),
    "403": Rule(A.QUOTA, "insufficient credit on account"),  # "Status Codes" 403; "Insufficient credits"
    # "Status Codes" 404 ("There is no text in the image"); "Resource not found"
    "404": Rule(A.CONTENT, "resource not found / no text in the image"),
    # "General Failure Response", method not allowed: no message can pass; the account's URL is wrong
    "405": Rule(A.AUTH, "method is not allowed for the requested route: check the account's base_url"),
    "422": Rule(A.CONTENT, "a field is missing or in the wrong format"),  # "General Failure Response"
    # "Status Codes" 500; "Server error": it may come after the message was taken (a crash after the
    # gateway's commit, a proxy's timeout), so it is never sent again blindly.
    "500": Rule(A.AMBIGUOUS, "internal server error: the gateway may have taken the message"),
    "503": Rule(A.TRANSIENT, "service unavailable"),  # "Status Codes" 503
    "invalid": Rule(A.RECIPIENT, "the number is not registered on WhatsApp"),  # "Unregistered Phone Number"
}


class SocnetClient(ProviderClient):
    provider: ClassVar[str] = "socnet"
    spec: ClassVar[GatewaySpec] = GatewaySpec(
        credentials=("api_key",),  # DESIGN.md "Accounts"
        secrets=("api_key",),
        kinds=KINDS,
        composer_kinds=("text",),  # templates and OTPs need names approved at the gateway
    )

    def validate(self, message: Outbound) -> None:
        if message.kind not in KINDS:
            raise InvalidMessage(
                f"socnet: message kind {message.kind!r} is not offered (kinds: {', '.join(KINDS)})"
            )
        msisdn = require_e164(message.to)
        if not MSISDN.match(msisdn):
            raise InvalidMessage(
                f"socnet: msisdn must be 12 digits starting with 256 (a Ugandan number), got {message.to!r}"
            )
        template = message.options.get("template")
        if message.kind in ("template", "otp"):
            check_length(
                "socnet", "template name (options 'template')", template, TEMPLATE_NAME_MAX, required=True
            )
        if message.kind == "otp":
            code = (message.text or "").strip()
            if not OTP_CODE.match(code):
                raise InvalidMessage(
                    "socnet: with an OTP template the message must be only the code "
                    f"(1 to 15 letters or digits), got {message.text!r}"
                )
        else:
            check_text("socnet", "text", message.text)

    def build_payload(self, message: Outbound) -> GatewayRequest:
        body: dict[str, Any] = {
            "api_key": self.account.secret("api_key"),
            "msisdn": require_e164(message.to),
            "msg": message.text.strip() if message.kind == "otp" else message.text,
        }
        if message.options.get("template"):
            body["template"] = message.options["template"]
        return GatewayRequest("POST", PATH, json=body)

    def parse_result(self, answer: HttpAnswer, message: Outbound) -> SendResult:
        body = answer.body
        if not isinstance(body, dict):
            rule = OUTCOMES.get(str(answer.status))
            if rule is None:
                return self.undocumented(answer)
            return self.result(rule, code=f"HTTP {answer.status}", answer=answer)
        code, rule = classify(body)
        if rule is None:
            return self.undocumented(answer)
        if rule.outcome == Outcome.ACCEPTED:
            return self.result(
                rule,
                code=None,
                answer=answer,
                provider_message_id=message_id_of(body),
                cost=money(body.get("cost")),
            )
        return self.result(rule, code=code, answer=answer, detail=body.get("message") or None)


def classify(body: dict) -> tuple[str | None, Rule | None]:
    """The table key of a JSON answer and its row (None when the document does not list it)."""
    if "sent" in body:
        key = str(body["sent"]).strip().lower()
        return key, OUTCOMES.get(key) if key == "true" else None
    if "messaging_product" in body or "messages" in body:
        return ("channel 2", OUTCOMES["channel 2"]) if message_id_of(body) else (None, None)
    if "status" in body:
        key = str(body["status"]).strip().lower()
        return key, OUTCOMES.get(key)
    return None, None


def message_id_of(body: dict) -> str | None:
    """Channel 1 `messageId`, or channel 2 `messages[0].id`."""
    if body.get("messageId"):
        return str(body["messageId"])
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and messages[0].get("id"):
        return str(messages[0]["id"])
    return None
