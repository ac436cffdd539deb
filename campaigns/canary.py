"""A canary start (`blast launch --canary N|P% [--canary-auto]`): the campaign sends its first slice, then
pauses with reason `canary` until the operator releases it (`blast resume ID`, the page's resume button, or
`POST /api/v1/campaigns/{id}/resume`).

- The slice is the first N messages to send, in the list's order (a percentage of the valid recipients,
  rounded up); it is fixed when the campaign starts, as the id of its last message (`canary_until_id`): the
  pacer queues nothing after it until the campaign is released.
- When none of the slice is left to send (pending, queued, sending, or unknown and not held), the campaign
  pauses (reason canary) with the slice's numbers in its detail.
- With `--canary-auto`, once `BLAST_CANARY_SETTLE_SECONDS` (default 60) have passed for delivery reports and
  STOP replies to come in, the slice is judged against the account's thresholds (campaigns.spikes' settings):
  its failure rate (not on WhatsApp among them) under `pause_failure_rate` and its opt-out rate under
  `pause_optout_rate` release it by itself; otherwise it stays paused for the operator, the numbers and the
  threshold crossed in its detail.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update

from campaigns.errors import BlastError
from campaigns.models import Campaign, Message, OptOut
from campaigns.settings import AccountConfig
from campaigns.states import ACTIVE_STATES, HELD_CODE, CampaignStatus, MessageState, PauseReason
from campaigns.transitions import move_campaigns

_SPEC = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*")
# A gateway's reason for a recipient who has no WhatsApp, in the words the clients give it (their tables).
NOT_ON_WHATSAPP = "%whatsapp%"


def check_spec(spec: str | None, *, auto: bool = False, names: tuple[str, str] = ("--canary", "--canary-auto")
               ) -> str | None:
    """`--canary`: a count ("50") or a percentage of the valid recipients ("5%"); `auto` (`--canary-auto`) only
    with one. BlastError otherwise, naming the options as the caller's user knows them (`names`)."""
    if spec is None:
        if auto:
            raise BlastError(f"{names[1]} goes with {names[0]} N or {names[0]} P%")
        return None
    match = _SPEC.fullmatch(spec)
    if match is None or float(match.group(1)) <= 0 or (match.group(2) and float(match.group(1)) >= 100) or (
            not match.group(2) and not match.group(1).isdigit()):
        raise BlastError(f"{names[0]} {spec!r}: give a count of recipients (50) or a percentage under 100 (5%)")
    return spec.strip()


def slice_size(spec: str, valid: int) -> int:
    """The slice's size for `valid` recipients: the count, or the percentage rounded up (at least 1)."""
    number, percent = _SPEC.fullmatch(spec).groups()
    return max(1, math.ceil(valid * float(number) / 100)) if percent else int(number)


def set_slice(connection, campaign_id: int, spec: str, *, auto: bool) -> int:
    """Fix the campaign's slice (its last message's id) before it starts; returns the slice's size. A slice as
    big as the list sets nothing: the campaign simply sends it all."""
    to_send = select(Message.id).where(Message.campaign_id == campaign_id, Message.state == MessageState.PENDING)
    valid = connection.execute(select(func.count()).select_from(to_send.subquery())).scalar_one()
    size = slice_size(spec, valid)
    if size >= valid:
        return valid
    last = connection.execute(to_send.order_by(Message.id).offset(size - 1).limit(1)).scalar_one()
    connection.execute(update(Campaign).where(Campaign.id == campaign_id)
                       .values(canary_until_id=last, canary_auto=auto, canary_done_at=None))
    return size


def still_to_send(campaign):
    """Messages of `campaign` (a Campaign row or alias) within its slice that may still go out."""
    moving = [state.value for state in ACTIVE_STATES if state != MessageState.UNKNOWN]
    return exists().where(
        Message.campaign_id == campaign.id, Message.id <= campaign.canary_until_id,
        or_(Message.state.in_(moving), and_(Message.state == MessageState.UNKNOWN,
                                            or_(Message.error_code.is_(None), Message.error_code != HELD_CODE))))


@dataclass(frozen=True, slots=True)
class SliceFigures:
    sent: int  # the slice's messages, skipped ones left out
    failed: int
    not_on_whatsapp: int
    opted_out: int

    def share(self, count: int) -> float:
        return count / self.sent if self.sent else 0.0

    @property
    def words(self) -> str:
        return (f"canary of {self.sent}: {self.share(self.failed):.0%} failed ({self.not_on_whatsapp} not on "
                f"WhatsApp), {self.share(self.opted_out):.0%} opted out")


def figures(connection, campaign_id: int, until_id: int, since: datetime | None) -> SliceFigures:
    in_slice = and_(Message.campaign_id == campaign_id, Message.id <= until_id,
                    Message.state != MessageState.SKIPPED)
    failed = Message.state == MessageState.FAILED
    opted = OptOut.phone == Message.phone
    if since is not None:
        opted = and_(opted, OptOut.created_at >= since)
    sent, failed_count, not_on_whatsapp = connection.execute(select(
        func.count(), func.count().filter(failed),
        func.count().filter(and_(failed, Message.error_reason.ilike(NOT_ON_WHATSAPP)))).where(in_slice)).one()
    opted_out = connection.execute(select(func.count()).select_from(Message).join(OptOut, opted)
                                   .where(in_slice)).scalar_one()
    return SliceFigures(sent, failed_count, not_on_whatsapp, opted_out)


def hold_sent_slices(connection, now: datetime) -> list[int]:
    """Running campaigns whose slice has all gone out pause (reason canary); returns their ids."""
    held = []
    holding = connection.execute(select(Campaign.id, Campaign.canary_until_id, Campaign.canary_auto,
                                        Campaign.started_at)
                                 .where(Campaign.status == CampaignStatus.RUNNING,
                                        Campaign.canary_until_id.is_not(None),
                                        Campaign.canary_done_at.is_(None))).all()
    # Asked campaign by campaign, once there is one: every pacing round asks, and a query joining the slices'
    # messages into the campaigns' would let the planner scan every message to find none.
    for campaign in holding:
        if connection.execute(select(still_to_send(Campaign)).where(Campaign.id == campaign.id)).scalar():
            continue
        numbers = figures(connection, campaign.id, campaign.canary_until_id, campaign.started_at)
        then = ("judged by itself after the settle time" if campaign.canary_auto
                else f"release it with blast resume {campaign.id}")
        if move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.RUNNING,
                          to=CampaignStatus.PAUSED, reason=PauseReason.CANARY, detail=f"{numbers.words}; {then}",
                          canary_done_at=now):
            held.append(campaign.id)
    return held


def judge_settled(connection, now: datetime, settle_seconds: float, account_of) -> list[int]:
    """Campaigns held for an automatic canary whose settle time has passed: released when the slice is clean,
    else left paused for the operator with the numbers and the threshold crossed. `account_of(name)` gives an
    account's settings (None when blast.toml no longer names it). Returns the released ids."""
    released = []
    for campaign in connection.execute(select(Campaign.id, Campaign.account_name, Campaign.canary_until_id,
                                              Campaign.started_at)
                                       .where(Campaign.status == CampaignStatus.PAUSED,
                                              Campaign.pause_reason == PauseReason.CANARY.value,
                                              Campaign.canary_auto.is_(True),
                                              Campaign.canary_done_at <= now - timedelta(seconds=settle_seconds))
                                       ).all():
        account: AccountConfig | None = account_of(campaign.account_name)
        numbers = figures(connection, campaign.id, campaign.canary_until_id, campaign.started_at)
        crossed = _crossed(numbers, account)
        if crossed is None:
            if move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.PAUSED,
                              to=CampaignStatus.RUNNING, resumed_at=now, **RELEASED):
                released.append(campaign.id)
        else:
            connection.execute(update(Campaign).where(Campaign.id == campaign.id).values(
                canary_auto=False, pause_detail=f"{numbers.words}: {crossed}; held: release it with "
                                                f"blast resume {campaign.id}"))
    return released


def _crossed(numbers: SliceFigures, account: AccountConfig | None) -> str | None:
    if account is None:
        return "its account is no longer in blast.toml"
    if numbers.share(numbers.failed) >= account.pause_failure_rate:
        return f"failures at or over the account's {account.pause_failure_rate:.0%}"
    if numbers.share(numbers.opted_out) >= account.pause_optout_rate:
        return f"opt-outs at or over the account's {account.pause_optout_rate:.0%}"
    return None


# What a release sets: the whole list may go out now.
RELEASED = {"canary_until_id": None, "canary_auto": False}
