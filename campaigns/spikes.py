"""Pauses on spikes: a running campaign whose recent messages fail, are throttled or opt out at a rate at or over
its account's thresholds pauses (reason `error_rate`), the rate and the window named in its detail; the
outbound `campaign.paused` event tells the customer's systems.

- The window is the campaign's last `pause_window` messages (blast.toml, per account; default 100) since it
  started or was last resumed, so a resume starts a fresh window and is not paused again by what came before.
- The failure rate: of the last `pause_window` gateway answers, those that failed the recipient or the content
  (Outcome RECIPIENT, CONTENT: not on WhatsApp, a blocked number, a template the gateway refuses). The
  throttling rate: of the same answers, the throttled ones (the limiter already halves the account's rate on
  each; a window where they stay this common means the gateway's real limit is far below blast.toml's).
  Judged when a batch's answers hold one of them: a clean batch costs no query.
- The opt-out rate: of the campaign's last `pause_window` messages the gateway took, those whose recipient has
  replied STOP since the campaign started. Judged when a STOP arrives (campaigns.delivery.apply_inbound).
- A rate is judged on a full window only: a small campaign, or one just resumed, is never paused on a handful.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from campaigns.models import Attempt, Campaign, Message, OptOut
from campaigns.settings import AccountConfig
from campaigns.states import ACCEPTED_STATES, CampaignStatus, Outcome, PauseReason
from campaigns.transitions import move_campaigns

FAILURES = (Outcome.RECIPIENT.value, Outcome.CONTENT.value)


@dataclass(frozen=True, slots=True)
class Spike:
    """A rate at or over its threshold: `rate` a name ("failure", "throttling", "opt-out"), `share` and
    `threshold` fractions (0..1), `window` the messages it was measured over."""

    rate: str
    share: float
    threshold: float
    window: int

    @property
    def detail(self) -> str:
        return (f"{self.rate} rate {self.share:.0%} over the last {self.window} messages "
                f"(the account pauses at {self.threshold:.0%})")


def _since(connection, campaign_id: int):
    return connection.execute(select(func.coalesce(Campaign.resumed_at, Campaign.started_at))
                              .where(Campaign.id == campaign_id)).scalar_one_or_none()


def answers_spike(connection, campaign_id: int, account: AccountConfig) -> Spike | None:
    """The failure or throttling rate over the campaign's last `pause_window` answers, when one is over its
    threshold; None otherwise, or while the window is not full."""
    window = account.pause_window
    query = (select(Attempt.outcome).join(Message, Message.id == Attempt.message_id)
             .where(Message.campaign_id == campaign_id).order_by(Attempt.id.desc()).limit(window))
    if (since := _since(connection, campaign_id)) is not None:
        query = query.where(Attempt.at >= since)
    outcomes = connection.execute(query).scalars().all()
    if len(outcomes) < window:
        return None
    for rate, counted, threshold in (("failure", FAILURES, account.pause_failure_rate),
                                     ("throttling", (Outcome.THROTTLED.value,), account.pause_throttle_rate)):
        share = sum(outcome in counted for outcome in outcomes) / window
        if share >= threshold:
            return Spike(rate, share, threshold, window)
    return None


def optouts_spike(connection, campaign_id: int, account: AccountConfig) -> Spike | None:
    """The opt-out rate over the campaign's last `pause_window` messages the gateway took, when over its
    threshold; None otherwise, or while the window is not full."""
    window = account.pause_window
    started = connection.execute(select(Campaign.started_at).where(Campaign.id == campaign_id)).scalar_one_or_none()
    recent = (select(Message.phone).where(Message.campaign_id == campaign_id,
                                          Message.state.in_([state.value for state in ACCEPTED_STATES]))
              .order_by(Message.id.desc()).limit(window).subquery())
    opted = OptOut.phone == recent.c.phone
    if started is not None:
        opted = opted & (OptOut.created_at >= started)
    sent, stopped = connection.execute(
        select(func.count(), func.count(OptOut.phone)).select_from(recent.outerjoin(OptOut, opted))).one()
    if sent < window:
        return None
    share = stopped / window
    return Spike("opt-out", share, account.pause_optout_rate, window) if share >= account.pause_optout_rate else None


def pause(connection, campaign_id: int, spike: Spike) -> bool:
    """The campaign pauses (reason error_rate) if it is still running; True if it did."""
    return move_campaigns(connection, where=[Campaign.id == campaign_id], expected=CampaignStatus.RUNNING,
                          to=CampaignStatus.PAUSED, reason=PauseReason.ERROR_RATE, detail=spike.detail) > 0
