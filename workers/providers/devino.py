"""Devino Telecom WhatsApp (devino.txt).

POST `/whatsapp/messages` with `Authorization: Key <api_key>` and a `messages` array; the answer's
`result` array has one item per message, in order: `code` OK (with `messageId`) or REJECTED (with
`reasons[].key/ref`). Statuses come later to each message's `callbackUrl` (see events.py).

Kinds: text; media, image, video, document, audio (options `media_url`, `filename`, `content_type`,
`size_bytes`); template (options `template_id`, `params` as a list or {position: value}, `language_code`,
`validity`). Every message carries our id as `callbackData`, which callbacks echo as `options`: an
`unknown` message (an HTTP 500, a body nobody documented, a read timeout) waits for its callback, which
names it by that id, before it is sent again.

Callbacks: a JSON array of statuses posted to `callbackUrl`, retried for 24 hours until answered 200 with an
empty body (providers/README.md); incoming messages come to the account's incoming URL.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from campaigns.events import BadPayload, Inbound, StatusUpdate, id_text
from campaigns.settings import AccountConfig
from campaigns.states import EventKind, Outcome
from workers.providers.base import (
    Deadline,
    GatewayRequest,
    GatewaySpec,
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
from workers.providers.events import (
    from_unix,
    json_items,
    normalise_phone,
    text_or_none,
    undocumented_reason,
    word_family,
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
    # providers/README.md: the older API's errorCode words (the rest are read by their status word)
    "USER_BLOCKED": Rule(A.RECIPIENT, "the recipient has blocked the sender"),
    "NOT_TEMPLATE_MATCH": Rule(A.CONTENT, "the text does not match an approved template"),
    # providers/README.md, "Choices of ours" for Devino: "HTTP 429 or 5xx on the send call means retry";
    # DESIGN.md "Classification": 401 is auth; a 500 may come after the gateway took the messages (ambiguous),
    # 502 and 503 are a proxy or the gateway turning requests away before reading them (transient).
    "HTTP 401": Rule(A.AUTH, "the API key was refused"),
    "HTTP 403": Rule(A.AUTH, "sending is prohibited"),
    "HTTP 429": Rule(A.THROTTLED, "too many requests"),
    "HTTP 500": Rule(A.AMBIGUOUS, "internal server error: the gateway may have taken the messages"),
    "HTTP 502": Rule(A.TRANSIENT, "bad gateway"),
    "HTTP 503": Rule(A.TRANSIENT, "service unavailable"),
    "HTTP 5xx": Rule(A.AMBIGUOUS, "the gateway failed: it may have taken the messages"),
}

# Callback `status` words (providers/README.md: SENT, DELIVERED, READ, UNDELIVERED, FAILED, EXPIRED, read
# case-insensitively), and the older API's words; any other word is read by its family.
STATUSES: dict[str, EventKind] = {
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "undelivered": EventKind.FAILED,
    "failed": EventKind.FAILED,
    "expired": EventKind.FAILED,
    # providers/README.md, the older API
    "enqueued": EventKind.UNKNOWN,  # in progress: changes nothing past our `submitted`
    "visited": EventKind.READ,  # the recipient opened the message's link: it was read
    "cancelled": EventKind.FAILED,
    "vp_expired": EventKind.FAILED,  # validity period expired
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
    """The row of a callback `errorCode` (a number or its text, or an older API's word), or None."""
    key = str(code).strip()
    if key.isascii() and key.isdigit():
        return OUTCOMES.get(key)
    return OUTCOMES.get(key.upper()) if key.replace("_", "").isalpha() else None


class DevinoClient(ProviderClient):
    provider: ClassVar[str] = "devino"
    spec: ClassVar[GatewaySpec] = GatewaySpec(
        credentials=("api_key", "sender"),  # DESIGN.md "Accounts"
        secrets=("api_key",),
        kinds=KINDS,
        composer_kinds=("text", "media"),
        text_limits={
            "text": (1000, "characters"),  # devino.txt, Sending: text "Up to 1000 UTF-8 characters"
            "media": (1000, "characters"),  # same field, sent with contentUrl
            "template": (1000, "characters"),  # the same text field goes with templateId
        },
        batch_size=100,  # providers/README.md: at most 100 messages per call
        webhooks=True,
        echoes_reference=True,  # callbackData comes back as `options`
        # Callbacks come within seconds; an unknown message waits this long for one before a second send.
        report_delay_seconds=120.0,
    )
    wants_callback_url: ClassVar[bool] = True
    webhook_reply: ClassVar[str | None] = None  # providers/README.md: 200 with an empty body

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        # providers/README.md: at most 100 messages per call unless the account configures another size.
        self.max_batch = account.batch_size
        self.headers["Authorization"] = f"Key {account.secret('api_key')}"

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
            whole_call = self.whole_call_error(answer)
            if whole_call is not None:
                return [copy.copy(whole_call) for _ in range(count)]
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

    @classmethod
    def reason_of(cls, error_code: str) -> str | None:
        rule = error_code_rule(error_code)
        return rule.reason if rule is not None else None

    @classmethod
    def parse_webhook(cls, body: bytes, content_type: str) -> list[StatusUpdate | Inbound]:
        """Status callbacks (a JSON array); an incoming message (has `from`, no `messageId`) is read as such."""
        if b'"from"' in body and b'"messageId"' not in body:
            return list(parse_incoming(body))
        return list(parse_callback(body))

    def whole_call_error(self, answer: HttpAnswer) -> SendResult | None:
        """A whole call refused with top-level `reasons` and no `result` (Devino's SMS and Viber SDKs show
        this shape): classified by its first listed reason; None when no reason is listed."""
        reasons = answer.body.get("reasons") if isinstance(answer.body, dict) else None
        for reason in reasons if isinstance(reasons, list) else []:
            if isinstance(reason, dict) and reason.get("key"):
                code, rule = lookup_reason(str(reason["key"]), reason.get("ref"))
                if rule is not None and rule.outcome != Outcome.ACCEPTED:
                    return self.result(rule, code=code, answer=answer,
                                       detail=answer.body.get("description") or rule.reason)
        return None

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

    def send_batch(self, messages: Sequence[Outbound], *, deadline: float | Deadline | None = None) -> list[SendResult]:
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
            answer = self.post(self.build_batch([messages[i] for i in chunk]),
                               deadline=deadline if start == 0 else None)
            if isinstance(answer, SendResult):
                chunk_results = [copy.copy(answer) for _ in chunk]
            else:
                try:
                    chunk_results = self.parse_batch(answer, len(chunk))
                except Exception:  # shaped unlike the document: the gateway may have them
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


# ---------------------------------------------------------------------- callbacks (webhooks)


def parse_callback(body: bytes) -> list[StatusUpdate]:
    """devino.txt "Getting statuses": a JSON array of {messageId, ts, status, errorCode, ..., options}."""
    return [status_update(item) for item in json_items(body)]


def status_update(item: Mapping) -> StatusUpdate:
    message_id = item.get("messageId")
    if message_id is None or message_id == "" or isinstance(message_id, dict | list):
        raise BadPayload("a Devino status without messageId")
    provider_id, problem = id_text(message_id, "messageId")
    raw_word = item.get("status")
    word = str(raw_word or "").strip().lower()
    kind = STATUSES.get(word)
    documented = kind is not None
    if kind is None:
        kind = word_family(word)
    error_code = _error_code(item.get("errorCode"))
    rule = error_code_rule(error_code) if error_code else None
    if rule is not None and rule.outcome == Outcome.THROTTLED:
        kind = EventKind.THROTTLED  # devino.txt 2301: "Too many messages ... Retry the sending"
    elif rule is not None and rule.outcome != Outcome.ACCEPTED and kind == EventKind.UNKNOWN:
        kind = EventKind.FAILED  # a failure code with a word nobody listed: the code says it failed
    reason = None
    if kind in (EventKind.FAILED, EventKind.THROTTLED):
        if rule is not None:
            reason = rule.reason
        elif documented:
            reason = f"{word} (error {error_code})" if error_code else word
        else:
            reason = undocumented_reason(raw_word, kind) + (f" (error {error_code})" if error_code else "")
    elif not documented:
        reason = undocumented_reason(raw_word, kind)
    options = item.get("options")
    return StatusUpdate(
        provider_message_id=provider_id,
        kind=kind,
        error_code=error_code or (word[:64] if kind == EventKind.FAILED and not documented else None),
        reason=reason,
        occurred_at=from_unix(item.get("ts")),
        reference=str(options) if isinstance(options, str | int) and options != "" else None,
        raw=dict(item),
        outcome=rule.outcome if rule is not None and kind in (EventKind.FAILED, EventKind.THROTTLED) else None,
        problem=problem,
    )


def parse_incoming(body: bytes) -> list[Inbound]:
    """devino.txt "Getting incoming messages": one object (or an array) per incoming message."""
    inbound = []
    for item in json_items(body):
        if not item.get("from") or isinstance(item.get("from"), dict | list):
            raise BadPayload("a Devino incoming message without 'from'")
        text = item.get("text") or item.get("contentUrl") or ""
        inbound.append(
            Inbound(
                from_phone=normalise_phone(item["from"]),
                text=str(text),
                received_at=from_unix(item.get("ts")),
                provider_message_id=text_or_none(item.get("incomingMessageId")),
                raw=dict(item),
            )
        )
    return inbound


def _error_code(value: Any) -> str | None:
    """errorCode as text; 0 (the sample's value for no error) and empty mean none."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return None if text in ("", "0") else text  # a code too long to be one is refused by apply_updates
