"""What each outcome of a send means for the message, its account and its campaign (DESIGN.md table).

| outcome   | message                                    | attempt used | account / campaign            |
|-----------|--------------------------------------------|--------------|-------------------------------|
| accepted  | submitted (provider id, cost kept)         | yes          | limiter: clean answer         |
| throttled | pending after the hinted delay             | no           | limiter: effective rate halves|
| transient | pending after backoff; failed at the bound | yes          |                               |
| (read timeout: the request went out, no answer) -> unknown; the reconciler asks the gateway's reports |
| quota     | pending                                    | no           | running campaigns pause (quota)|
| auth      | pending                                    | no           | running campaigns pause (auth) |
| recipient | failed                                     | yes          |                               |
| content   | failed                                     | yes          | repeated: campaign pauses     |
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from campaigns.settings import AccountConfig
from campaigns.states import MessageState, Outcome, PauseReason

# Seconds a throttled message waits when the gateway gives no hint.
DEFAULT_THROTTLE_DELAY = 1.0
# The same content error for this many recipients of one campaign means the template, not the
# recipient, is at fault: the campaign pauses with reason content.
CONTENT_PAUSE_THRESHOLD = 5

USES_ATTEMPT = frozenset({Outcome.ACCEPTED, Outcome.TRANSIENT, Outcome.RECIPIENT, Outcome.CONTENT})
PAUSES_ACCOUNT = {Outcome.QUOTA: PauseReason.QUOTA, Outcome.AUTH: PauseReason.AUTH}


def backoff_seconds(account: AccountConfig, attempts: int, *, rng: random.Random = random) -> float:
    """Exponential backoff with jitter: base x 2^(attempts-1), capped, times a random 0.5..1 factor."""
    ceiling = min(account.retry_max_seconds, account.retry_base_seconds * 2 ** max(0, attempts - 1))
    return ceiling * rng.uniform(0.5, 1.0)


# The client's code for a request that went out but got no answer in time: the gateway may have it.
READ_TIMEOUT_CODE = "timeout"


def next_state(outcome: Outcome, *, attempts_after: int, account: AccountConfig, code: str | None = None
               ) -> MessageState:
    """The state a message in `sending` moves to; `attempts_after` counts this attempt if it used one."""
    if outcome == Outcome.TRANSIENT and code == READ_TIMEOUT_CODE:
        # Sending it again blindly could deliver it twice: the reconciler asks the gateway's reports.
        return MessageState.UNKNOWN
    if outcome == Outcome.ACCEPTED:
        return MessageState.SUBMITTED
    if outcome in (Outcome.RECIPIENT, Outcome.CONTENT):
        return MessageState.FAILED
    if outcome == Outcome.TRANSIENT and attempts_after >= account.max_attempts:
        return MessageState.FAILED
    return MessageState.PENDING


def retry_at(outcome: Outcome, *, now: datetime, attempts_after: int, account: AccountConfig,
             retry_after: float | None) -> datetime | None:
    """When a message handed back to pending may be sent again."""
    if outcome == Outcome.THROTTLED:
        return now + timedelta(seconds=retry_after if retry_after else DEFAULT_THROTTLE_DELAY)
    if outcome == Outcome.TRANSIENT:
        delay = retry_after if retry_after else backoff_seconds(account, attempts_after)
        return now + timedelta(seconds=delay)
    return None
