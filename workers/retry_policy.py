"""What each outcome of a send means for the message, its account and its campaign (DESIGN.md table).

| outcome   | message                                    | attempt used | account / campaign            |
|-----------|--------------------------------------------|--------------|-------------------------------|
| accepted  | submitted (provider id, cost kept)         | yes          | limiter: clean answer         |
| throttled | pending after the hinted delay             | no           | limiter: effective rate halves|
| transient | pending after backoff; failed at the bound | yes          |                               |
| ambiguous | unknown: the reconciler asks the gateway   | yes          | undocumented answers in a row:|
|           | (reports, callbacks) or follows on_unknown |              | campaigns pause (gateway_changed)|
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

# This many undocumented answers in a row on one account (across its campaigns and workers) mean the gateway
# changed its API: its running campaigns pause (reason gateway_changed) rather than burn through the list.
# A batch call's answer counts once.
GATEWAY_CHANGED_AFTER = 5

USES_ATTEMPT = frozenset({Outcome.ACCEPTED, Outcome.TRANSIENT, Outcome.AMBIGUOUS, Outcome.RECIPIENT,
                          Outcome.CONTENT})
PAUSES_ACCOUNT = {Outcome.QUOTA: PauseReason.QUOTA, Outcome.AUTH: PauseReason.AUTH}


def backoff_seconds(account: AccountConfig, attempts: int, *, rng: random.Random = random) -> float:
    """Exponential backoff with jitter: base x 2^(attempts-1), capped, times a random 0.5..1 factor."""
    ceiling = min(account.retry_max_seconds, account.retry_base_seconds * 2 ** max(0, attempts - 1))
    return ceiling * rng.uniform(0.5, 1.0)


def uses_attempt(outcome: Outcome, *, held: bool = False) -> bool:
    """Whether an answer counts as one of the message's attempts: not one refusing the campaign's template, which
    the gateway holds for now (`held`, SendResult.template_held)."""
    return outcome in USES_ATTEMPT and not held


def next_state(outcome: Outcome, *, attempts_after: int, account: AccountConfig, code: str | None = None,
               held: bool = False) -> MessageState:
    """The state a message in `sending` moves to; `attempts_after` counts this attempt if it used one. A message
    whose template the gateway holds (`held`: Meta 132015) waits for it, pending."""
    if held:
        return MessageState.PENDING
    if outcome == Outcome.AMBIGUOUS:
        # Sending it again blindly could deliver it twice: the reconciler asks the gateway first.
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
