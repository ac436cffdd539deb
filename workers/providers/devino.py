"""Devino Telecom WhatsApp (devino.txt).

POST `/whatsapp/messages` with `Authorization: Key <api_key>` and a `messages` array; the answer's
`result` array has one item per message, in order: `code` OK (with `messageId`) or REJECTED (with
`reasons[].key/ref`). Statuses come later to each message's `callbackUrl` (see events.py).

Kinds: text; media, image, video, document, audio (options `media_url`, `filename`, `content_type`,
`size_bytes`); template (options `template_id`, `params` as a list or {position: value}, `language_code`,
`validity`). Every message carries our id as `callbackData`, which callbacks echo as `options`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from campaigns.settings import AccountConfig
from campaigns.states import Outcome
from workers.providers.base import (
    GatewayRequest,
    HttpAnswer,
    InvalidMessage,
    Outbound,
    ProviderClient,
    Rule,
    SendResult,
    check_length,
    check_size,
    check_text,
    check_url,
    content_type_of,
    file_name_of,
    require_e164,
)

PATH = "/whatsapp/messages"  # devino.txt "Sending"
KINDS = ("text", "media", "image", "video", "document", "audio", "template")
MEDIA_KINDS = ("media", "image", "video", "document", "audio")
CONTENT_NAME_MAX = 100  # devino.txt "Sending": contentName "Up to 100 characters"
# devino.txt "Sending" (languageCode, "by default set 'EN'"): the accepted lengths are not stated
# ("length.too.long/too.short languageCode"); assumption: an ISO 639 code, optionally with a region.
LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z]{2,4})?$")
MB = 1024 * 1024

# devino.txt "MIMEType": supported content types and sizes per media. "audio/acc" is the document's
# spelling of audio/aac; both are accepted. Office documents are named by extension only (.do*, .xl, .ppt,
# .sx*, .od*): these are their MIME types.
MEDIA: dict[str, tuple[frozenset[str], int]] = {
    "audio": (
        frozenset({"audio/aac", "audio/acc", "audio/mp4", "audio/amr", "audio/mpeg", "audio/ogg"}),
        16 * MB,
    ),
    "document": (
        frozenset(
            {
                "application/pdf",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.oasis.opendocument.text",
                "application/vnd.oasis.opendocument.spreadsheet",
                "application/vnd.oasis.opendocument.presentation",
                "application/vnd.sun.xml.writer",
                "application/vnd.sun.xml.calc",
                "application/vnd.sun.xml.impress",
            }
        ),
        100 * MB,
    ),
    "image": (frozenset({"image/jpeg", "image/png"}), 16 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp", "video/3gpp2"}), 5 * MB),
}

A = Outcome
# One table for every word devino.txt gives: the send answer's `code`, the REJECTED reasons (key, or key and
# ref with the index written [i]), the callback `errorCode`s, and the HTTP statuses the notes name.
OUTCOMES: dict[str, Rule] = {
    # "Response parameters": code
    "OK": Rule(A.ACCEPTED, "processed successfully"),
    # "Error codes" (send answer reasons)
    "billing.error": Rule(A.QUOTA, "payment is required"),
    "forbidden": Rule(A.AUTH, "sending is prohibited"),
    "unknown": Rule(A.TRANSIENT, "unknown error"),
    "invalid messages[i].to": Rule(A.RECIPIENT, "wrong phone number is provided"),
    "invalid messages[i].validity": Rule(A.CONTENT, "wrong lifetime is provided"),
    "invalid messages[i].callbackUrl": Rule(A.CONTENT, "wrong URL is provided"),
    "invalid messages[i].contentUrl": Rule(A.CONTENT, "wrong content URL is provided"),
    "invalid messages[i].contentType": Rule(A.CONTENT, "wrong content type is provided"),
    "invalid messages[i].from": Rule(A.AUTH, "wrong sender is provided"),
    "invalid messages[i].languageCode": Rule(A.CONTENT, "wrong language code is provided"),
    "length.too.long messages[i].to": Rule(A.RECIPIENT, "the maximum phone number length has been exceeded"),
    "length.too.long messages[i].text": Rule(A.CONTENT, "the maximum message text length has been exceeded"),
    "length.too.long messages[i].languageCode": Rule(A.CONTENT, "the language code is too long"),
    "length.too.short messages[i].contentName": Rule(A.CONTENT, "content name too short"),
    "length.too.short messages[i].languageCode": Rule(A.CONTENT, "language code too short"),
    "must.be.not.null messages[i].to": Rule(A.RECIPIENT, "no recipient specified"),
    "must.be.not.null messages": Rule(A.CONTENT, "the 'messages' array cannot be empty"),
    "must.be.not.null messages[i].from": Rule(A.AUTH, "no sender specified"),
    "must.be.not.null messages[i]": Rule(A.CONTENT, "text and content field not specified"),
    "not.available messages[i].from": Rule(A.AUTH, "invalid sender address"),
    "too.many.messages messages": Rule(A.CONTENT, "the 'messages' array is over its maximum size"),
    # "Getting statuses", "Error codes" (callback errorCode)
    "2000": Rule(A.RECIPIENT, "the recipient operator is not defined"),
    "2001": Rule(A.CONTENT, "rejected as spam"),
    "2002": Rule(A.QUOTA, "billing error"),
    "2003": Rule(A.QUOTA, "billing error"),
    "2004": Rule(A.QUOTA, "billing error"),
    "2005": Rule(A.QUOTA, "not enough money"),
    "2006": Rule(A.QUOTA, "billing error"),
    "2007": Rule(A.QUOTA, "billing error"),
    "2008": Rule(A.QUOTA, "billing error"),
    "2009": Rule(A.RECIPIENT, "rejected as duplicate"),
    "2010": Rule(A.RECIPIENT, "expired time of life"),
    "2011": Rule(A.RECIPIENT, "expired time of life"),
    "2012": Rule(A.QUOTA, "billing error"),
    "2017": Rule(A.CONTENT, "rejected as spam"),
    "2300": Rule(A.CONTENT, "the text message length limit has been exceeded"),
    "2301": Rule(A.THROTTLED, "too many messages were sent in a short period of time; retry the sending"),
    "2302": Rule(A.CONTENT, "rejected as spam"),
    "2303": Rule(A.CONTENT, "the MIME type is not supported or the image is too large (5 MB or more)"),
    "2304": Rule(A.CONTENT, "exceeded the text message length limit"),
    "2305": Rule(A.RECIPIENT, "user has not used or is no longer using WhatsApp"),
    "2307": Rule(A.RECIPIENT, "the recipient is the business account's own number"),
    "2308": Rule(A.CONTENT, "the number of template parameters does not match the expected number"),
    "2309": Rule(A.CONTENT, "the template does not exist for the specified language or locale"),
    "2310": Rule(A.CONTENT, "the template does not exist for the specified language or locale"),
    "2311": Rule(A.CONTENT, "a template parameter is too long"),
    "2312": Rule(A.CONTENT, "sent out of the dialogue without a template"),
    "2313": Rule(A.TRANSIENT, "unknown error"),
    # providers/README.md, "Choices of ours" for Devino: "HTTP 429 or 5xx on the send call means retry";
    # DESIGN.md "Classification": 401 is auth.
    "HTTP 401": Rule(A.AUTH, "the API key was refused"),
    "HTTP 403": Rule(A.AUTH, "sending is prohibited"),
    "HTTP 429": Rule(A.THROTTLED, "too many requests"),
    "HTTP 5xx": Rule(A.TRANSIENT, "the gateway failed or is unavailable"),
}

_INDEX = re.compile(r"\[\d+\]")


def reason_key(key: str, ref: str | None) -> str:
    """The table key of a REJECTED reason: "key ref" with the message index written [i]."""
    return f"{key} {_INDEX.sub('[i]', ref)}" if ref else key


def lookup_reason(key: str, ref: str | None) -> tuple[str, Rule | None]:
    """(code, row) for a reason; a key listed with other refs falls back to the key alone."""
    code = reason_key(key, ref)
    return code, OUTCOMES.get(code) or OUTCOMES.get(key)


def error_code_rule(code: Any) -> Rule | None:
    """The row of a callback `errorCode` (a number or its text), or None."""
    key = str(code).strip()
    return OUTCOMES.get(key) if key.isdigit() else None


class DevinoClient(ProviderClient):
    provider: ClassVar[str] = "devino"
    wants_callback_url: ClassVar[bool] = True

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        # providers/README.md: at most 100 messages per call unless the account configures another size.
        self.max_batch = account.batch_size
        self.session.headers["Authorization"] = f"Key {account.secret('api_key')}"

    # ------------------------------------------------------------------ checks and payload

    def validate(self, message: Outbound) -> None:
        self.message_body(message)

    def message_body(self, message: Outbound) -> dict[str, Any]:
        """One item of the `messages` array; InvalidMessage when a stated limit is broken."""
        if message.kind not in KINDS:
            raise InvalidMessage(
                f"devino: message kind {message.kind!r} is not offered (kinds: {', '.join(KINDS)})"
            )
        if not self.account.sender:
            raise InvalidMessage("devino: the account has no sender name")
        options = message.options
        item: dict[str, Any] = {"from": self.account.sender, "to": require_e164(message.to)}
        # devino.txt "Error codes", must.be.not.null messages[i]: "Text and content field not specified"
        text = check_text("devino", message.kind, message.text, required=message.kind not in MEDIA_KINDS)
        if text:
            item["text"] = text
        if message.kind in MEDIA_KINDS:
            item.update(self.content(message.kind, options))
        if message.kind == "template":
            item.update(self.template(options))
        elif options.get("validity") is not None:
            raise InvalidMessage("devino: validity is only given with a template (devino.txt, 'Sending')")
        if message.callback_url:
            item["callbackUrl"] = check_url("devino", "callbackUrl", message.callback_url)
        item["callbackData"] = str(message.message_id)  # echoed in callbacks as `options`
        return item

    def content(self, kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
        url = check_url("devino", "media_url", options.get("media_url"))
        name = options.get("filename") or file_name_of(url)
        content_type = content_type_of(options, options.get("filename"), url)
        media = kind if kind != "media" else media_of(content_type)
        if media is not None and content_type is not None:
            allowed, limit = MEDIA[media]
            if content_type not in allowed:
                raise InvalidMessage(
                    f"devino: {content_type} is not a supported {media} type "
                    f"(supported: {', '.join(sorted(allowed))})"
                )
            check_size("devino", f"the {media}", options.get("size_bytes"), limit)
        body = {"contentUrl": url}
        if name:
            body["contentName"] = check_length("devino", "contentName", name, CONTENT_NAME_MAX)
        if content_type:
            body["contentType"] = content_type
        return body

    def template(self, options: Mapping[str, Any]) -> dict[str, Any]:
        template_id = options.get("template_id") or options.get("template")
        if not template_id:
            raise InvalidMessage("devino: a template message needs options 'template_id'")
        body: dict[str, Any] = {"templateId": str(template_id)}
        params = options.get("params")
        if params:
            body["templateParams"] = template_params(params)
        language = options.get("language_code")
        if language:
            if not isinstance(language, str) or not LANGUAGE_CODE.match(language):
                raise InvalidMessage(
                    f"devino: language_code {language!r} is not a language code like 'EN' or 'pt_BR'"
                )
            body["languageCode"] = language
        validity = options.get("validity")
        if validity is not None:
            if isinstance(validity, bool) or not isinstance(validity, int) or validity <= 0:
                raise InvalidMessage(f"devino: validity must be a positive whole number, got {validity!r}")
            body["validity"] = validity
        return body

    def build_batch(self, messages: Sequence[Outbound]) -> GatewayRequest:
        if not messages:
            raise InvalidMessage("devino: the 'messages' array cannot be empty")
        if len(messages) > self.max_batch:
            raise InvalidMessage(
                f"devino: {len(messages)} messages in one call, over the limit of {self.max_batch}"
            )
        return GatewayRequest("POST", PATH, json={"messages": [self.message_body(m) for m in messages]})

    def build_payload(self, message: Outbound) -> GatewayRequest:
        return self.build_batch([message])

    # ------------------------------------------------------------------ answers

    def parse_result(self, answer: HttpAnswer, message: Outbound) -> SendResult:
        return self.parse_batch(answer, 1)[0]

    def parse_batch(self, answer: HttpAnswer, count: int) -> list[SendResult]:
        """One result per message of the call, from the `result` array item by item."""
        items = answer.body.get("result") if isinstance(answer.body, dict) else None
        if not isinstance(items, list):
            rule = OUTCOMES.get(f"HTTP {answer.status}")
            if rule is None and answer.status >= 500:
                rule = OUTCOMES["HTTP 5xx"]
            if rule is None:
                return [self.undocumented(answer) for _ in range(count)]
            return [self.result(rule, code=f"HTTP {answer.status}", answer=answer) for _ in range(count)]
        if len(items) == 1 and count > 1 and not 200 <= answer.status < 300:
            # a whole call refused (e.g. a wrong key: 401 with one `forbidden` item): it is every message's
            return [self.item_result(items[0], answer) for _ in range(count)]
        return [
            self.item_result(items[index] if index < len(items) else None, answer) for index in range(count)
        ]

    def item_result(self, item: Any, answer: HttpAnswer) -> SendResult:
        if not isinstance(item, dict):
            return self.undocumented(answer, "the answer has no result for this message")
        code = str(item.get("code", "")).strip().upper()
        if code == "OK" and item.get("messageId") is not None:
            return self.result(
                OUTCOMES["OK"], code=None, raw=item, provider_message_id=str(item["messageId"])
            )
        if code == "REJECTED":
            for reason in item.get("reasons") or []:
                if not isinstance(reason, dict) or not reason.get("key"):
                    continue
                reason_code, rule = lookup_reason(str(reason["key"]), reason.get("ref"))
                if rule is not None:
                    return self.result(
                        rule, code=reason_code, raw=item, detail=item.get("description") or rule.reason
                    )
        result = self.undocumented(answer, "a result item the document does not list")
        result.raw = self.redact(item)
        return result

    def send_batch(self, messages: Sequence[Outbound]) -> list[SendResult]:
        """Up to max_batch messages per call; a message that breaks a limit gets its CONTENT result and
        is left out of the call."""
        results: list[SendResult | None] = [None] * len(messages)
        valid: list[int] = []
        for index, message in enumerate(messages):
            try:
                self.validate(message)
                valid.append(index)
            except InvalidMessage as error:
                results[index] = SendResult(Outcome.CONTENT, code="invalid", detail=str(error))
        for start in range(0, len(valid), self.max_batch):
            chunk = valid[start : start + self.max_batch]
            answer = self.post(self.build_batch([messages[i] for i in chunk]))
            if isinstance(answer, SendResult):
                chunk_results = [copy.copy(answer) for _ in chunk]
            else:
                try:
                    chunk_results = self.parse_batch(answer, len(chunk))
                except Exception:  # shaped unlike the document: retry later, keep what came
                    chunk_results = [self.undocumented(answer) for _ in chunk]
            for index, result in zip(chunk, chunk_results, strict=True):
                results[index] = result
        return results  # type: ignore[return-value]


def media_of(content_type: str | None) -> str | None:
    """Which of devino.txt's media rows a content type belongs to (None when unknown)."""
    if content_type is None:
        return None
    for media, (allowed, _limit) in MEDIA.items():
        if content_type in allowed:
            return media
    return content_type.split("/")[0] if content_type.split("/")[0] in MEDIA else "document"


def template_params(params: Any) -> dict[str, str]:
    """templateParams: "the key is the position number of the value"; a list is numbered from 1."""
    if isinstance(params, Mapping):
        pairs = list(params.items())
    elif isinstance(params, list | tuple):
        pairs = [(str(position), value) for position, value in enumerate(params, start=1)]
    else:
        raise InvalidMessage(
            f"devino: params must be a list or a mapping of position to value, got {params!r}"
        )
    result = {}
    for position, value in pairs:
        if not str(position).isdigit() or int(position) < 1:
            raise InvalidMessage(f"devino: template parameter key {position!r} is not a position number")
        result[str(position)] = str(value)
    return result
