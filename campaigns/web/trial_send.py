"""A test send: one rendered message to a number the operator types, through the account's real gateway
client, before launching. It takes a slot from the account's rate limiter like any send, and writes no
message row, so campaign tallies never count it."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from campaigns.errors import BlastError
from campaigns.ingest.phones import check_region, normalise
from campaigns.settings import AccountConfig
from campaigns.states import Outcome
from campaigns.web.compose import Extras

log = logging.getLogger("blast.web.trial")
# Seconds a test send waits for a slot of the account's rate limiter before giving up.
LIMITER_WAIT_SECONDS = 5.0
# The message id a test send carries where a gateway echoes ours back (no message row has it).
TRIAL_MESSAGE_ID = 0


class TrialProblem(BlastError):
    """The test send could not be made (bad number, no slot from the limiter); the text says why."""


@dataclass(frozen=True)
class TrialResult:
    to: str  # E.164
    accepted: bool
    outcome: str  # campaigns.states.Outcome
    code: str | None  # the gateway's own code or word
    detail: str | None  # the gateway's reason, credentials masked by the client
    provider_message_id: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def recipient(raw: str, region: str) -> str:
    """The operator's number in E.164 (national numbers read in `region`), else TrialProblem."""
    phone, reason = normalise((raw or "").strip(), check_region(region))
    if phone is None:
        raise TrialProblem(f"{raw!r} is not a phone number ({reason})")
    return phone


def send_trial(account: AccountConfig, *, to: str, text: str, extras: Extras,
               limiter_wait: float = LIMITER_WAIT_SECONDS) -> TrialResult:
    """Send `text` to `to` (E.164) through the account's gateway, synchronously; the gateway's verdict."""
    from workers.providers import Outbound, client_for
    from workers.rate_limits import get_limiter

    try:
        limiter = get_limiter()
        granted = limiter.acquire(account.name, rate=account.rate, max_wait=limiter_wait)
    except Exception as error:  # Redis unreachable: sending past the shared limiter could trip the gateway
        raise TrialProblem(f"the rate limiter cannot be reached ({type(error).__name__}); try again") from None
    if not granted:
        raise TrialProblem(f"account {account.name} is sending at its full rate; no slot within "
                           f"{limiter_wait:g} s, try again")
    answer = client_for(account).send(Outbound(message_id=TRIAL_MESSAGE_ID, to=to, text=text, kind=extras.kind,
                                               options=extras.outbound_options()))
    if answer.outcome == Outcome.THROTTLED:
        limiter.throttled(account.name, rate=account.rate)
    log.info("test send through account %s: %s %s", account.name, answer.outcome, answer.code or "")
    return TrialResult(to=to, accepted=answer.outcome == Outcome.ACCEPTED, outcome=str(answer.outcome),
                       code=answer.code, detail=answer.detail, provider_message_id=answer.provider_message_id)
