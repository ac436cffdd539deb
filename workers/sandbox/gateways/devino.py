"""Devino Telecom WhatsApp API (devino.txt), simulated.

POST /whatsapp/messages with `Authorization: Key <key>` and a `messages` array; every message gets its
own result (code OK with a messageId, or REJECTED with reasons key/ref). Statuses come only through each
message's `callbackUrl`: a JSON array of status objects, `callbackData` echoed in `options`, retried until
the receiver answers 200. Going over the rate cap is not refused at the door: the send is accepted and
the callback then says FAILED with errorCode 2301 ("retry the sending"), as Devino does.
"""

from __future__ import annotations

import re

from workers.sandbox.callbacks import DEVINO_RETRY, WEBHOOK_RETRY
from workers.sandbox.gateways.base import SandboxGateway
from workers.sandbox.state import (
    DELIVERED,
    FAILED,
    NOT_ON_WHATSAPP_CODE,
    READ,
    SENT,
    THROTTLED_CODE,
    Account,
    BuiltinAccount,
    Incoming,
    Outgoing,
    e164,
)
from workers.sandbox.web import Request, Response, is_http_url, json_response, text_response

PATH = "/whatsapp/messages"
MAX_MESSAGES = 100  # providers/README.md: the older Devino API took at most 100 messages per call
MAX_TEXT_CHARACTERS = 1000  # "Up to 1000 UTF-8 characters"
MAX_NUMBER_DIGITS = 15  # E.164
# The document's MIME table (its "auidio/ogg" read as audio/ogg; PDF and office documents by their types).
CONTENT_TYPES = frozenset({
    "audio/acc", "audio/aac", "audio/mp4", "audio/amr", "audio/mpeg", "audio/ogg",
    "image/jpeg", "image/png", "video/mp4", "video/3gpp",
    "application/pdf", "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
})
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(_[A-Za-z]{2,4})?")
MIN_LANGUAGE_CODE, MAX_LANGUAGE_CODE = 2, 8  # assumption: "en" .. "zh_Hant"; the document gives no bounds

# The document's error table: key -> description (ref qualifies the key).
DESCRIPTIONS = {
    ("billing.error", None): "Payment is required",
    ("forbidden", None): "Sending is prohibited",
    ("invalid", "to"): "Wrong phone number is provided",
    ("invalid", "validity"): "Wrong lifetime is provided",
    ("invalid", "callbackUrl"): "Wrong URL is provided",
    ("invalid", "contentUrl"): "Wrong content URL is provided",
    ("invalid", "contentType"): "Wrong content type is provided",
    ("invalid", "from"): "Wrong sender is provided",
    ("invalid", "languageCode"): "Wrong language code is provided",
    ("length.too.long", "to"): "The maximum phone number length has been exceeded",
    ("length.too.long", "text"): "The maximum message text length has been exceeded",
    ("length.too.long", "languageCode"): "The language code is too long",
    ("length.too.short", "contentName"): "Content name too short",
    ("length.too.short", "languageCode"): "Language code too short",
    ("must.be.not.null", "to"): "No recipient specified",
    ("must.be.not.null", "messages"): "The 'messages' array cannot be empty",
    ("must.be.not.null", "from"): "No sender specified",
    ("must.be.not.null", ""): "Text and content field not specified",
    ("not.available", "from"): "Invalid sender address",
    ("too.many.messages", "messages"): "The maximum size of the 'messages' array has been exceeded",
}
STATUS_WORDS = {SENT: "SENT", DELIVERED: "DELIVERED", READ: "READ"}


def _reason(key: str, index: int | None = None, field: str | None = None) -> dict:
    """One reasons[] entry; `index`/`field` make the ref, e.g. messages[3].to."""
    if index is None:
        return {"key": key, "ref": field} if field else {"key": key}
    ref = f"messages[{index}]" + (f".{field}" if field else "")
    return {"key": key, "ref": ref}


def _described_field(ref: str | None) -> str | None:
    """The DESCRIPTIONS key for a ref: messages[3].to -> "to", messages[3] -> "", messages -> "messages"."""
    if ref is None:
        return None
    if "." in ref:
        return ref.rsplit(".", 1)[1]
    return "messages" if ref == "messages" else ""


def _rejected(reasons: list[dict]) -> dict:
    descriptions = [DESCRIPTIONS.get((r["key"], _described_field(r.get("ref"))), "Unknown error")
                    for r in reasons]
    return {"code": "REJECTED", "reasons": reasons, "description": "; ".join(descriptions)}


def _reason_name(reason: dict) -> str:
    """A stats key for a rejection: the key and the ref with the message index as [i]."""
    ref = re.sub(r"\[\d+\]", "[i]", reason.get("ref") or "")
    return f"{reason['key']} {ref}".strip()


class DevinoGateway(SandboxGateway):
    provider = "devino"
    builtin = BuiltinAccount("sandbox-devino-key", sender="Blast")
    default_sender = "Blast"  # devino.txt: every message names its sender


    async def handle(self, request: Request, path: str) -> Response:
        if path != PATH:
            return text_response(404, "Not Found")
        if request.method != "POST":
            return text_response(405, "Method Not Allowed")
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        account = self.runtime.sandbox.account(self.provider, key.strip()) if scheme == "Key" else None
        if account is None:
            return json_response(401, {"result": [_rejected([_reason("forbidden")])]})
        account.stats.requests += 1
        try:
            body = request.json()
        except ValueError:
            body = None
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return self._refuse_request(account, "must.be.not.null")
        if len(messages) > MAX_MESSAGES:
            return self._refuse_request(account, "too.many.messages")
        runtime = self.runtime
        await runtime.delay_send(account)
        if runtime.fails_at_random(account, len(messages)):
            return text_response(503, "Service Unavailable")
        if runtime.lost_at_random(account, len(messages)):
            return text_response(500, "Internal Server Error")
        results = [self._one(account, i, m) for i, m in enumerate(messages)]
        garbled = runtime.garbled_answer(account)
        if garbled == "ambiguous":
            return text_response(500, "Internal Server Error")
        if garbled == "undocumented":
            return json_response(200, {"accepted": [r.get("messageId") for r in results]})
        return json_response(200, {"result": results})

    @staticmethod
    def _refuse_request(account: Account, key: str) -> Response:
        """A problem with the `messages` array itself: one REJECTED result for the whole request."""
        account.reject(f"{key} messages")
        return json_response(400, {"result": [_rejected([_reason(key, field="messages")])]})

    def _one(self, account: Account, index: int, message: object) -> dict:
        reasons = _problems(account, index, message)
        if reasons:
            account.reject(_reason_name(reasons[0]))  # one rejected message, counted under its first reason
            return _rejected(reasons)
        assert isinstance(message, dict)
        refused = account.refusal()
        if refused == "quota":
            account.reject("quota")
            return _rejected([_reason("billing.error")])
        runtime = self.runtime
        recipient = e164(message["to"])
        record = Outgoing(str(runtime.sandbox.numeric_id()), recipient,
                          message.get("text") or message.get("contentUrl") or "",
                          callback_url=message.get("callbackUrl"), callback_data=message.get("callbackData"))
        if refused == "rate_cap":
            record.status, record.error_code = FAILED, THROTTLED_CODE
            account.keep(record)
            account.reject("rate_cap")
        elif runtime.not_on_whatsapp(account, recipient):
            record.status, record.error_code = FAILED, NOT_ON_WHATSAPP_CODE
            account.keep(record)
            account.reject("not_on_whatsapp")
        else:
            account.accept(record)
        runtime.progress.start(account, record)
        return {"code": "OK", "messageId": record.id}

    def on_status(self, account: Account, message: Outgoing) -> None:
        if not message.callback_url:
            return
        if message.status == FAILED:
            # Assumption: a throttled message is reported FAILED, a number not on WhatsApp UNDELIVERED.
            word = "FAILED" if message.error_code == THROTTLED_CODE else "UNDELIVERED"
        else:
            word = STATUS_WORDS[message.status]
        word = self.runtime.word(account, message.status, word)
        item = {
            "messageId": int(message.id), "ts": int(message.updated), "status": word,
            "errorCode": message.error_code or 0, "ip": "", "browser": "", "os": "", "userAgent": "",
            "options": message.callback_data,
        }
        url = message.callback_url
        self.runtime.push(account, lambda: self.runtime.callbacks.post_in_batch(url, item, DEVINO_RETRY))

    def on_inbound(self, account: Account, incoming: Incoming) -> bool:
        """Devino sends inbound messages to a URL agreed with its support: here the `webhook_url` knob."""
        url = account.knobs.webhook_url
        if not url:
            return False
        self.runtime.callbacks.post(url, {
            "incomingMessageId": int(incoming.id), "to": account.sender, "from": incoming.sender.lstrip("+"),
            "text": incoming.text, "ts": int(incoming.created),
        }, WEBHOOK_RETRY)
        return True


def _problems(account: Account, index: int, message: object) -> list[dict]:
    """Every reason devino.txt's table gives for rejecting this one message."""
    if not isinstance(message, dict):
        return [_reason("must.be.not.null", index)]
    reasons = []
    sender = message.get("from")
    if sender in (None, ""):
        reasons.append(_reason("must.be.not.null", index, "from"))
    elif not isinstance(sender, str):
        reasons.append(_reason("invalid", index, "from"))
    elif sender != account.sender:
        reasons.append(_reason("not.available", index, "from"))
    to = message.get("to")
    if to in (None, ""):
        reasons.append(_reason("must.be.not.null", index, "to"))
    elif isinstance(to, bool) or not isinstance(to, str | int) or not re.fullmatch(r"\+?\d{8,}", str(to)):
        reasons.append(_reason("invalid", index, "to"))
    elif len(str(to).lstrip("+")) > MAX_NUMBER_DIGITS:
        reasons.append(_reason("length.too.long", index, "to"))
    text, content_url = message.get("text"), message.get("contentUrl")
    if text in (None, "") and content_url in (None, ""):
        reasons.append(_reason("must.be.not.null", index))
    if text not in (None, "") and (not isinstance(text, str) or len(text) > MAX_TEXT_CHARACTERS):
        reasons.append(_reason("length.too.long", index, "text"))
    if content_url not in (None, "") and not is_http_url(content_url):
        reasons.append(_reason("invalid", index, "contentUrl"))
    content_type = message.get("contentType")
    if content_type is not None and content_type not in CONTENT_TYPES:
        reasons.append(_reason("invalid", index, "contentType"))
    content_name = message.get("contentName")
    if content_name is not None and (not isinstance(content_name, str) or not content_name.strip()):
        reasons.append(_reason("length.too.short", index, "contentName"))
    callback_url = message.get("callbackUrl")
    if callback_url is not None and not is_http_url(callback_url):
        reasons.append(_reason("invalid", index, "callbackUrl"))
    validity = message.get("validity")
    if validity is not None and (isinstance(validity, bool) or not isinstance(validity, int) or validity < 1):
        reasons.append(_reason("invalid", index, "validity"))
    language = message.get("languageCode")
    if language is not None:
        if not isinstance(language, str):
            reasons.append(_reason("invalid", index, "languageCode"))
        elif len(language) < MIN_LANGUAGE_CODE:
            reasons.append(_reason("length.too.short", index, "languageCode"))
        elif len(language) > MAX_LANGUAGE_CODE:
            reasons.append(_reason("length.too.long", index, "languageCode"))
        elif not LANGUAGE_CODE.fullmatch(language):
            reasons.append(_reason("invalid", index, "languageCode"))
    return reasons

