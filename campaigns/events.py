"""The one status vocabulary, in the domain: every gateway's delivery reports, callbacks and webhooks
become `StatusUpdate`s, and inbound messages `Inbound`s, with the gateway's item kept as received. Each
gateway's module (workers/providers/<gateway>.py) turns its own words into these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from campaigns.states import EventKind, Outcome


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One message's new status, as a gateway reported it."""

    provider_message_id: str
    kind: EventKind
    error_code: str | None = None
    reason: str | None = None  # human words for a failure (from the document's table, or the word itself)
    occurred_at: datetime | None = None  # aware UTC
    reference: str | None = None  # our message id when the gateway echoes it (Devino callbackData/options)
    raw: Mapping = field(default_factory=dict)  # the gateway's item as received
    # What the failure means for sending, where the gateway's code says (Devino errorCode table): e.g.
    # QUOTA for 2005, THROTTLED for 2301, RECIPIENT for 2305. None when the document does not say.
    outcome: Outcome | None = None
    # Why the update cannot be applied although it was read (a field out of range: an id too long, of the
    # wrong type or with control characters, an error code that cannot be one): it is stored raw for a
    # human (statusevent, kind "rejected") and changes no message. None for an update that may apply.
    problem: str | None = None
    # The gateway's id of the business number the update is about, where one callback address serves several
    # numbers (Meta: `metadata.phone_number_id`); None where the address names the account.
    number_id: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message a recipient sent to the account's number."""

    from_phone: str  # E.164 when it can be normalised, else as received
    text: str
    received_at: datetime | None
    provider_message_id: str | None
    raw: Mapping
    number_id: str | None = None  # as StatusUpdate.number_id: the business number it was sent to


class BadPayload(ValueError):
    """A webhook body that is not what the gateway sends: not JSON, nested too deep, or an item without its
    id (a 400). A body that is read but holds a field out of range is not one: see StatusUpdate.problem."""


# What an event's fields may hold before they reach the database (statusevent, message).
ID_MAX = 100  # statusevent.provider_message_id, message.provider_message_id
CODE_MAX = 64  # statusevent.error_code, message.error_code
REASON_MAX = 500
# Our ids are 64-bit integers; a gateway's numeric id beyond that is not an id any gateway issues.
_ID_INT_RANGE = range(-(2**63), 2**64)


def printable_problem(name: str, text: str, limit: int) -> str | None:
    """Why `text` cannot be stored as `name` (too long, or holding a control, format or unpaired surrogate
    character: NUL is refused by Postgres, a lone surrogate cannot be encoded), or None."""
    if len(text) > limit:
        return f"{name} longer than {limit} characters"
    if not text.isprintable():
        return f"{name} holds a control or unprintable character"
    return None


def id_text(value: object, name: str = "messageId") -> tuple[str, str | None]:
    """A gateway's message id as text, and why it cannot be one (None when it can): a string or an
    integer, not blank, at most ID_MAX printable characters. The text is only for the record."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "", f"{name} is a {type(value).__name__}, not a string or an integer"
    if isinstance(value, int):
        if value not in _ID_INT_RANGE:
            return "", f"{name} is a number out of range"
        return str(value), None
    if not value.strip():
        return "", f"{name} is blank"
    return value, printable_problem(name, value, ID_MAX)


def clean_text(value: object, limit: int) -> str | None:
    """Free text (a reason, an inbound message) as a column can hold it: control and unprintable characters
    (NUL, lone surrogates) dropped, newlines and tabs kept as spaces, at most `limit` characters."""
    if value is None:
        return None
    text = str(value)[: limit * 2]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " if ch in "\t\r\n" else "" for ch in text)
    return text[:limit]
