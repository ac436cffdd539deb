"""The closed vocabularies: message states, campaign states, pause reasons, gateway outcomes, events.

DESIGN.md's message state machine is `ALLOWED`; every change of a message's state goes through
`campaigns.transitions.transition`, which refuses any pair not listed here.
"""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENDING = "sending"
    SUBMITTED = "submitted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


M = MessageState

# (from, to) pairs a message may take. Anything else is a bug or a stale/duplicated event.
ALLOWED: frozenset[tuple[MessageState, MessageState]] = frozenset(
    {
        (M.PENDING, M.QUEUED),  # pacer publishes a send task
        (M.PENDING, M.SKIPPED),  # opted out (or otherwise rejected) after ingest, before sending
        (M.PENDING, M.CANCELLED),
        (M.QUEUED, M.SENDING),  # a worker claims it
        (M.QUEUED, M.PENDING),  # reconciler: the broker forgot it; or the campaign was paused
        (M.QUEUED, M.CANCELLED),
        (M.SENDING, M.SUBMITTED),  # gateway accepted it
        (M.SENDING, M.PENDING),  # throttled, transient, quota, auth: try again later
        (M.SENDING, M.FAILED),  # permanent: recipient or content
        (M.SENDING, M.UNKNOWN),  # worker died mid-call: outcome lost
        (M.SENDING, M.CANCELLED),  # not sent (throttled, handed back...) and its campaign was cancelled
        (M.SUBMITTED, M.SENT),
        (M.SUBMITTED, M.DELIVERED),
        (M.SUBMITTED, M.READ),
        (M.SUBMITTED, M.FAILED),  # delivery report says it failed
        (M.SUBMITTED, M.PENDING),  # gateway reported throttling after accepting (Devino 2301)
        (M.SENT, M.DELIVERED),
        (M.SENT, M.READ),
        (M.SENT, M.FAILED),
        (M.SENT, M.PENDING),  # Devino 2301 arriving after a SENT callback
        (M.DELIVERED, M.READ),
        (M.FAILED, M.PENDING),  # operator's `blast retry`
        (M.UNKNOWN, M.SUBMITTED),  # resolved from the gateway's reports
        (M.UNKNOWN, M.SENT),
        (M.UNKNOWN, M.DELIVERED),
        (M.UNKNOWN, M.READ),
        (M.UNKNOWN, M.FAILED),
        (M.UNKNOWN, M.PENDING),  # the gateway's reports show it never arrived
    }
)

# States a message can still leave by itself: a campaign with any of these is not finished (an `unknown`
# message held for the operator, error code HELD_CODE, does not keep it open).
ACTIVE_STATES = (M.PENDING, M.QUEUED, M.SENDING, M.UNKNOWN)
# The error code of an `unknown` message that waits for the operator: its gateway cannot be asked and the
# account's `on_unknown` is `hold` (`blast retry ID --reason unknown` sends it again).
HELD_CODE = "held"
# The gateway has it: the message counts as sent for the campaign.
ACCEPTED_STATES = (M.SUBMITTED, M.SENT, M.DELIVERED, M.READ)
# Progress of delivery, lowest first; events never move a message backwards along it.
DELIVERY_RANK = {M.SUBMITTED: 0, M.SENT: 1, M.DELIVERED: 2, M.READ: 3}


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


C = CampaignStatus

# (from, to) pairs a campaign may take, and who takes each. campaigns/transitions.py `move_campaigns` is the
# only writer of a campaign's status, and refuses anything else.
CAMPAIGN_MOVES: frozenset[tuple[CampaignStatus, CampaignStatus]] = frozenset(
    {
        (C.DRAFT, C.RUNNING),  # launched now
        (C.DRAFT, C.SCHEDULED),  # launched for later
        (C.SCHEDULED, C.RUNNING),  # the pacer: its launch time came
        (C.RUNNING, C.PAUSED),  # the operator, or an answer that pauses (PauseReason)
        (C.SCHEDULED, C.PAUSED),  # the operator
        (C.PAUSED, C.RUNNING),  # the operator resumes
        (C.RUNNING, C.FINISHED),  # the pacer: no message left that can move by itself
        (C.FINISHED, C.RUNNING),  # a retry, or a late throttling report, gives it messages to send again
        (C.DRAFT, C.CANCELLED),
        (C.SCHEDULED, C.CANCELLED),
        (C.RUNNING, C.CANCELLED),
        (C.PAUSED, C.CANCELLED),
    }
)


class IngestStatus(StrEnum):
    """An ingest job's (campaigns.ingest.jobs): queued for a worker, running under a lease, done (the campaign
    launched), failed (with its reason; the operator retries or discards it), discarded (its draft cancelled)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DISCARDED = "discarded"


class PauseReason(StrEnum):
    USER = "user"
    QUOTA = "quota"
    AUTH = "auth"
    CONTENT = "content"
    GATEWAY_CHANGED = "gateway_changed"  # undocumented answers in a row: the gateway changed its API
    ERROR_RATE = "error_rate"  # failures, throttling or opt-outs over the account's thresholds (campaigns.spikes)
    CANARY = "canary"  # its first slice is sent: held for the operator, or released by itself (campaigns.canary)


class Outcome(StrEnum):
    """What a gateway's answer to one send means for us (DESIGN.md, "Classification")."""

    ACCEPTED = "accepted"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    # The gateway may have taken the message (HTTP 500, a 2xx body nobody documented, a read timeout, a
    # connection dropped after the request was written): never sent again before the gateway is asked.
    AMBIGUOUS = "ambiguous"
    QUOTA = "quota"
    AUTH = "auth"
    RECIPIENT = "recipient"
    CONTENT = "content"


class EventKind(StrEnum):
    """The one vocabulary every gateway's delivery report or webhook is turned into."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    THROTTLED = "throttled"  # accepted, then dropped for rate (Devino 2301): send again
    UNKNOWN = "unknown"  # a status word nobody documented: kept, changes nothing
