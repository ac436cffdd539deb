"""What every gateway module shares to read reports, callbacks and webhooks: JSON items, times, phone
numbers, and the family of a status word nobody listed. The event types themselves live in the domain
(campaigns.events); each gateway's own words are in its module.

A status word nobody documented never leaves a message waiting forever and never raises: it is kept raw
and read by its family (`word_family`); a body that cannot be read at all raises BadPayload (400).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

import orjson

from campaigns.events import BadPayload, Inbound, StatusUpdate
from campaigns.states import EventKind

__all__ = ["BadPayload", "Inbound", "StatusUpdate", "word_family"]

K = EventKind

# Stems of status words, by family, for words no table lists (Devino's older API, a gateway that adds a
# word). Failure is looked for first: "undelivered" holds "deliver".
FAILURE_STEMS = ("undeliver", "fail", "reject", "expire", "cancel", "error", "block", "invalid", "refuse",
                 "drop", "bounce", "denied", "unreach")
READ_STEMS = ("read", "seen", "visit", "open", "click")
DELIVERED_STEMS = ("deliver",)
SENT_STEMS = ("sent", "submit", "accept", "dispatch")


def word_family(word: Any) -> EventKind:
    """The family of a status word no table lists: FAILED, READ, DELIVERED, SENT, or in progress (UNKNOWN,
    which changes nothing). Case and separators do not matter ("VP_EXPIRED", "Not Delivered")."""
    text = re.sub(r"[^a-z]", "", str(word or "").lower())
    if text.startswith(("not", "un", "no")) and any(stem in text for stem in DELIVERED_STEMS + SENT_STEMS):
        return K.FAILED
    for stems, kind in ((FAILURE_STEMS, K.FAILED), (READ_STEMS, K.READ), (DELIVERED_STEMS, K.DELIVERED),
                        (SENT_STEMS, K.SENT)):
        if any(stem in text for stem in stems):
            return kind
    return K.UNKNOWN


def undocumented_reason(word: Any, kind: EventKind) -> str:
    """The reason kept with an event read from an undocumented word: the word itself, for a failure."""
    if kind == K.FAILED:
        return str(word).strip()[:200] or "failed"
    return f"status {word!r} is not documented; read as {kind.value if kind != K.UNKNOWN else 'in progress'}"


# ---------------------------------------------------------------------- shared readers


# How deep a gateway's JSON may nest (arrays and objects): the documented bodies nest a few levels. orjson
# refuses past 1024 levels by itself; this bound is checked without recursion before any reader (or
# json.dumps of the raw item) walks the document recursively in Python.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(document: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit` in `document` (iterative: no recursion)."""
    stack = [(document, 1)] if isinstance(document, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def json_document(body: bytes | str) -> Any:
    """A JSON document (UTF-8, an optional BOM), nested at most MAX_JSON_DEPTH; BadPayload for anything else
    (not JSON, a lone surrogate, NaN or a number too large for a double, nesting too deep)."""
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).removeprefix(b"\xef\xbb\xbf")
    elif isinstance(body, str):
        body = body.removeprefix("\ufeff")
    else:
        raise BadPayload("the body is not JSON")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "depth" in str(error):
            raise BadPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
        raise BadPayload("the body is not JSON") from None
    if json_depth_exceeds(document):
        raise BadPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def json_items(body: bytes | str) -> list[Mapping]:
    """A JSON object or an array of objects; BadPayload for anything else (nesting too deep included)."""
    document = json_document(body)
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


_OFFSET_TAIL = re.compile(r"\s*([+-])(\d{2}):?(\d{2})(?:\s+[A-Za-z]{2,5})?$")


def parse_time(value: Any, zone: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 time (or "Y-m-d H:i:s", or "Y-m-d H:i:s +1000") as aware UTC. A time without an offset
    is read in `zone` (the account's time zone), else as UTC. The placeholder year 1
    ("0001-01-01T00:00:00Z") and garbage give None."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    match = _OFFSET_TAIL.search(text)
    if match:
        text = text[:match.start()] + f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    try:
        moment = datetime.fromisoformat(text)
        if moment.year < 1971:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone or UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # garbage, or a time the offset moves past year 9999
        return None


def offset_of(value: Any) -> timezone | None:
    """The UTC offset a gateway printed in a timestamp ("2016-08-16 23:30:05 +1000"), or None."""
    if not isinstance(value, str):
        return None
    match = _OFFSET_TAIL.search(value.strip())
    if not match:
        return None
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return timezone(timedelta(minutes=-minutes if match.group(1) == "-" else minutes))


def from_unix(value: Any) -> datetime | None:
    """UNIX time in seconds; a value too large for seconds is taken as milliseconds (the document says only
    "UNIX time"). 0 (the sample's placeholder) gives None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        return None
    if number <= 0:
        return None
    if number > 1e11:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def dd_mm_yyyy(day: date) -> str:
    """The HTTP API's date format (httpapi.txt 2.2, 4.1)."""
    return day.strftime("%d-%m-%Y")
