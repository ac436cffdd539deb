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
