"""The one status vocabulary: every gateway's delivery reports, callbacks and webhooks become
`StatusUpdate`s (and inbound messages `Inbound`s), with the gateway's item kept as received.

A status word nobody documented becomes EventKind.UNKNOWN, never an error; a body that cannot be read
at all raises BadPayload (the web app answers 400).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs

import python_multipart

from campaigns.states import EventKind, Outcome
from workers.providers import devino

K = EventKind


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One message's new status, as a gateway reported it."""

    provider_message_id: str
    kind: EventKind
    error_code: str | None = None
    reason: str | None = None  # human words for a failure (from the document's table)
    occurred_at: datetime | None = None  # aware UTC
    reference: str | None = None  # our message id when the gateway echoes it (Devino callbackData/options)
    raw: Mapping = field(default_factory=dict)  # the gateway's item as received
    # What the failure means for sending, where the gateway's code says (Devino errorCode table): e.g.
    # QUOTA for 2005, THROTTLED for 2301, RECIPIENT for 2305. None when the document does not say.
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message a recipient sent to the account's number."""

    from_phone: str  # E.164 when it can be normalised, else as received
    text: str
    received_at: datetime | None
    provider_message_id: str | None
    raw: Mapping


class BadPayload(ValueError):
    """A webhook body that is not what the gateway sends: not JSON, or an item without its id."""


# ---------------------------------------------------------------------- status words, one table per gateway

# providers/README.md, "Choices of ours" (Devino callbacks): read case-insensitively; errorCode 2301 wins.
DEVINO_STATUSES: dict[str, EventKind] = {
    "sent": K.SENT,
    "delivered": K.DELIVERED,
    "read": K.READ,
    "undelivered": K.FAILED,
    "failed": K.FAILED,
    "expired": K.FAILED,
}

# providers/README.md, SMSGlobal outgoing `status` (its SDKs add `scheduled`). queued and scheduled are
# not progress past our `submitted`: they change nothing (UNKNOWN) and are reported so.
SMSGLOBAL_STATUSES: dict[str, tuple[EventKind, str | None, Outcome | None]] = {
    "queued": (K.UNKNOWN, "queued at the gateway", None),
    "scheduled": (K.UNKNOWN, "scheduled at the gateway", None),
    "sent": (K.SENT, None, None),
    "delivered": (K.DELIVERED, None, None),
    "read": (K.READ, None, None),
    "undelivered": (K.FAILED, "undelivered", None),
    "rejected": (K.FAILED, "rejected by the gateway", Outcome.CONTENT),
    "nocredits": (K.FAILED, "no credits left on the account", Outcome.QUOTA),
    "invalidnumber": (K.FAILED, "invalid number", Outcome.RECIPIENT),
}

# providers/README.md, "WhatsApp HTTP API 2.0.0 report codes": words first, numbers second. Pending is
# not progress past our `submitted`: it changes nothing (UNKNOWN).
HTTPAPI_WORDS: dict[str, EventKind] = {
    "pending": K.UNKNOWN,
    "sent": K.SENT,
    "delivered": K.DELIVERED,
    "read": K.READ,
    "failed": K.FAILED,
}
HTTPAPI_NUMBERS: dict[int, EventKind] = {
    0: K.UNKNOWN,
    1: K.SENT,
    2: K.SENT,
    3: K.DELIVERED,
    4: K.READ,
    5: K.FAILED,
}


# ---------------------------------------------------------------------- Devino (callbackUrl, incoming URL)


def parse_devino_callback(body: bytes) -> list[StatusUpdate]:
    """devino.txt "Getting statuses": a JSON array of {messageId, ts, status, errorCode, ..., options}."""
    return [devino_status(item) for item in _json_items(body)]


def devino_status(item: Mapping) -> StatusUpdate:
    message_id = item.get("messageId")
    if message_id is None or message_id == "":
        raise BadPayload("a Devino status without messageId")
    word = str(item.get("status") or "").strip().lower()
    kind = DEVINO_STATUSES.get(word, K.UNKNOWN)
    error_code = _error_code(item.get("errorCode"))
    rule = devino.error_code_rule(error_code) if error_code else None
    if rule is not None and rule.outcome == Outcome.THROTTLED:
        kind = K.THROTTLED  # devino.txt 2301: "Too many messages ... Retry the sending"
    reason = None
    if kind in (K.FAILED, K.THROTTLED):
        reason = rule.reason if rule is not None else (f"{word} (error {error_code})" if error_code else word)
    elif kind == K.UNKNOWN:
        reason = f"status {item.get('status')!r} is not documented"
    options = item.get("options")
    return StatusUpdate(
        provider_message_id=str(message_id),
        kind=kind,
        error_code=error_code,
        reason=reason,
        occurred_at=_from_unix(item.get("ts")),
        reference=str(options) if options not in (None, "") else None,
        raw=dict(item),
        outcome=rule.outcome if rule is not None and kind in (K.FAILED, K.THROTTLED) else None,
    )


def parse_devino_incoming(body: bytes) -> list[Inbound]:
    """devino.txt "Getting incoming messages": one object (or an array) per incoming message."""
    inbound = []
    for item in _json_items(body):
        if not item.get("from"):
            raise BadPayload("a Devino incoming message without 'from'")
        text = item.get("text") or item.get("contentUrl") or ""
        inbound.append(
            Inbound(
                from_phone=normalise_phone(item["from"]),
                text=str(text),
                received_at=_from_unix(item.get("ts")),
                provider_message_id=_text_or_none(item.get("incomingMessageId")),
                raw=dict(item),
            )
        )
    return inbound


def _error_code(value: Any) -> str | None:
    """errorCode as text; 0 (the sample's value for no error) and empty mean none."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "0") else text


# ---------------------------------------------------------------------- SMSGlobal (polled)


def smsglobal_status(item: Mapping) -> StatusUpdate:
    """One outgoing message of the SMSGlobal list: {id, recipient, status, state, message, createdDate}."""
    if item.get("id") is None:
        raise BadPayload("an SMSGlobal message without id")
    word = str(item.get("status") or "")
    kind, reason, outcome = SMSGLOBAL_STATUSES.get(word.strip().lower(), (K.UNKNOWN, None, None))
    if kind == K.UNKNOWN and reason is None:
        reason = f"status {word!r} is not documented"
    return StatusUpdate(
        provider_message_id=str(item["id"]),
        kind=kind,
        error_code=word if kind == K.FAILED else None,
        reason=reason,
        occurred_at=None,  # createdDate is when the message was made, not when its status changed
        raw=dict(item),
        outcome=outcome,
    )


def smsglobal_inbound(item: Mapping) -> Inbound:
    """One incoming message of the SMSGlobal list: {id, from, to, message, createdDate}."""
    return Inbound(
        from_phone=normalise_phone(item.get("from") or ""),
        text=str(item.get("message") or ""),
        received_at=parse_time(item.get("createdDate")),
        provider_message_id=_text_or_none(item.get("id")),
        raw=dict(item),
    )


# ---------------------------------------------------------------------- WhatsApp HTTP API 2.0.0


def httpapi_kind(words: tuple[Any, ...], numbers: tuple[Any, ...]) -> EventKind | None:
    """The first known word, else the first known number; None when none says."""
    for word in words:
        if isinstance(word, str) and word.strip().lower() in HTTPAPI_WORDS:
            return HTTPAPI_WORDS[word.strip().lower()]
    for number in numbers:
        try:
            if number is not None and number != "" and int(number) in HTTPAPI_NUMBERS:
                return HTTPAPI_NUMBERS[int(number)]
        except (TypeError, ValueError):
            continue
    return None


def httpapi_report_status(item: Mapping) -> StatusUpdate:
    """One message of campaignStatus / campaignReport (httpapi.txt 2.1, 2.2): the words `statusMessageInfo`
    then `statusInfo` first, the numbers `statusMessage` then `status` second (providers/README.md)."""
    message_id = item.get("messageID") or item.get("messageId")
    if not message_id:
        raise BadPayload("an HTTP API report item without messageID")
    kind = httpapi_kind(
        (item.get("statusMessageInfo"), item.get("statusInfo")),
        (item.get("statusMessage"), item.get("status")),
    )
    word = item.get("statusMessageInfo") or item.get("statusInfo")
    return _httpapi_update(str(message_id), kind, item, word)


def _httpapi_update(message_id: str, kind: EventKind | None, item: Mapping, word: Any) -> StatusUpdate:
    """`kind` None: neither the word nor the number is documented."""
    reason = None
    if kind is None:
        kind, reason = K.UNKNOWN, f"status {word!r} is not documented"
    elif kind == K.UNKNOWN:
        reason = "pending at the gateway"
    elif kind == K.FAILED:
        reason = str(word or "failed")
    when = {K.READ: "readAt", K.DELIVERED: "deliveredAt"}.get(kind)
    occurred = parse_time(item.get(when)) if when else None
    occurred = occurred or parse_time(item.get("updatedAt")) or parse_time(item.get("createdAt"))
    return StatusUpdate(
        provider_message_id=message_id,
        kind=kind,
        reason=reason,
        occurred_at=occurred,
        error_code="failed" if kind == K.FAILED else None,
        raw=dict(item),
    )


def httpapi_inbound(item: Mapping) -> Inbound:
    """An incoming message: the webhook's inbox event or an inboxReport item (httpapi.txt 4.1, 8)."""
    value = item.get("value")
    if isinstance(value, Mapping):
        text = value.get("caption") or ""
    else:
        text = item.get("text") if item.get("text") not in (None, "") else (value or "")
    return Inbound(
        from_phone=normalise_phone(item.get("phone") or item.get("waID") or ""),
        text=str(text),
        received_at=parse_time(item.get("createdAt")),
        provider_message_id=_text_or_none(item.get("messageID") or item.get("waMessageID")),
        raw=dict(item),
    )


def parse_httpapi_webhook(body: bytes, content_type: str) -> list[StatusUpdate | Inbound]:
    """httpapi.txt 8: JSON, or multipart/form-data with the JSON in the `json` field (media arrive as
    files, which are not kept). reportType "delivery" is a status, "inbox" an incoming message; other
    report types are ignored."""
    events = []
    for item in _httpapi_webhook_items(body, content_type or ""):
        report = str(item.get("reportType") or "").strip().lower()
        if report == "delivery":
            message_id = item.get("messageID") or item.get("messageId")
            if not message_id:
                raise BadPayload("an HTTP API delivery report without messageID")
            kind = httpapi_kind((item.get("statusInfo"),), (item.get("status"),))
            events.append(_httpapi_update(str(message_id), kind, item, item.get("statusInfo")))
        elif report == "inbox":
            events.append(httpapi_inbound(item))
    return events


def _httpapi_webhook_items(body: bytes, content_type: str) -> list[Mapping]:
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        return _json_items(_multipart_field(body, content_type, "json"))
    if media == "application/x-www-form-urlencoded":
        try:
            values = parse_qs(body.decode("utf-8"), strict_parsing=True).get("json")
        except (UnicodeDecodeError, ValueError):
            raise BadPayload("not a readable form body") from None
        if not values:
            raise BadPayload("a form body without the 'json' field")
        return _json_items(values[0].encode("utf-8"))
    return _json_items(body)


def _multipart_field(body: bytes, content_type: str, name: str) -> bytes:
    found: dict[str, bytes] = {}

    def on_field(part) -> None:
        if part.field_name and part.field_name.decode("utf-8", "replace") == name:
            found[name] = part.value or b""

    try:
        python_multipart.parse_form(
            {"Content-Type": content_type.encode("latin-1"), "Content-Length": str(len(body)).encode()},
            BytesIO(body),
            on_field,
            lambda _file: None,
        )
    except Exception:
        raise BadPayload("not a readable multipart body") from None
    if name not in found:
        raise BadPayload(f"a multipart body without the '{name}' field")
    return found[name]


# ---------------------------------------------------------------------- shared readers


def _json_items(body: bytes | str) -> list[Mapping]:
    """A JSON object or an array of objects; BadPayload for anything else."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        raise BadPayload("the body is not JSON") from None
    items = document if isinstance(document, list) else [document]
    if not all(isinstance(item, Mapping) for item in items):
        raise BadPayload("expected a JSON object or an array of objects")
    return items


_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


def normalise_phone(value: Any) -> str:
    """ "+" and the digits when `value` is a whole international number (also "256...@c.us" WhatsApp ids),
    else `value` as received."""
    text = str(value).strip()
    digits = _PHONE_PUNCTUATION.sub("", text.split("@", 1)[0])
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.isdigit() and 7 <= len(digits) <= 15 and digits[0] != "0":
        return "+" + digits
    return text


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (or "Y-m-d H:i:s") as aware UTC; a time without a zone is taken as UTC (assumption:
    the account's timezone is UTC). The placeholder year 1 ("0001-01-01T00:00:00Z") and garbage give None."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00").replace(" +", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.year < 1971:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_unix(value: Any) -> datetime | None:
    """UNIX time in seconds; a value too large for seconds is taken as milliseconds (the document says only
    "UNIX time"). 0 (the sample's placeholder) gives None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number <= 0:
        return None
    if number > 1e11:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def dd_mm_yyyy(day: date) -> str:
    """The HTTP API's date format (httpapi.txt 2.2, 4.1)."""
    return day.strftime("%d-%m-%Y")
