"""The pacer: keeps each account's queue a few seconds deep, and no deeper.

Each round, per account: count the messages already queued or being sent for its running campaigns, move
enough `pending` ones to `queued` to hold `rate x pace_depth_seconds` (shared fairly between the campaigns), and
publish one send task per small batch of them. A million-recipient campaign therefore never puts more
than a few seconds of work in the broker, and no task carries a countdown. Messages are moved before
their tasks are published; if publishing fails, the reconciler finds them queued too long and hands them
back to `pending`.

Quiet hours (campaigns.quiet_hours) are checked here, on the selected batch only, for campaigns that have
them: a picked message whose recipient's local time is inside the window is not queued; it and every other
pending message of that campaign in the same zone get `send_at` = the window's end (one UPDATE per zone),
so the next rounds do not pick them again until then. Campaigns without quiet hours pay nothing.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

from sqlalchemy import and_, exists, func, or_, select, text, true, update

from campaigns import canary, failover, quiet_hours
from campaigns.db import get_engine, is_postgres
from campaigns.models import Campaign, Message, utcnow
from campaigns.settings import AccountConfig, ConfigError, get_account, get_settings
from campaigns.states import ACTIVE_STATES, HELD_CODE, CampaignStatus, MessageState
from campaigns.transitions import move_campaigns, transition

# Messages per send task: at most a tenth of a second of the rate, so many threads share an account's rate;
# up to 50, so Celery's and the database's per-task cost (a claim, a record) is spread over many messages.
# Batch gateways (Devino) get one call per task.
MAX_TASK_BATCH = 50


def task_batch_size(account: AccountConfig, rate: float, *, gateway_batch: int = 1) -> int:
    """Messages per send task for an account sending at `rate` messages/s."""
    if gateway_batch > 1:
        # One gateway call per task; at most a tenth of a second of the rate, so a call never bursts.
        return max(1, min(gateway_batch, account.batch_size, int(rate / 10)))
    return max(1, min(MAX_TASK_BATCH, int(rate / 10)))


def start_due_campaigns(connection, now) -> None:
    move_campaigns(connection, where=[Campaign.launch_at <= now], expected=CampaignStatus.SCHEDULED,
                   to=CampaignStatus.RUNNING, started_at=now)


def finish_done_campaigns(connection, now) -> list[int]:
    """Running campaigns with no message left that could still move on its own are finished."""
    moving = [s.value for s in ACTIVE_STATES if s != MessageState.UNKNOWN]
    active = exists().where(Message.campaign_id == Campaign.id, or_(
        Message.state.in_(moving),
        and_(Message.state == MessageState.UNKNOWN,
             or_(Message.error_code.is_(None), Message.error_code != HELD_CODE))))
    done = connection.execute(
        select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING, ~active)
    ).scalars().all()
    if done:
        move_campaigns(connection, where=[Campaign.id.in_(done)], expected=CampaignStatus.RUNNING,
                       to=CampaignStatus.FINISHED, finished_at=now)
    return list(done)


def _lock_account(connection, account_name: str) -> bool:
    """One pacer per account at a time (a second beat, or two pace tasks at once, simply skip)."""
    if is_postgres(connection.engine):
        key = zlib.crc32(f"blast-pacer:{account_name}".encode())
        return bool(connection.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())
    return True  # SQLite: one writer at a time already


def _ready(campaign_id: int, now, until_id: int | None = None):
    """A campaign's messages that may be queued now; with a canary not yet released, only its slice's."""
    return and_(
        Message.campaign_id == campaign_id,
        Message.state == MessageState.PENDING,
        or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
        or_(Message.send_at.is_(None), Message.send_at <= now),
        Message.id <= until_id if until_id is not None else true(),
    )


def _pick(connection, campaign_ids: list[int], room: int, now,
          canaries: dict[int, int] | None = None) -> dict[int, list[int]]:
    """Up to `room` ready messages, shared evenly between the campaigns (leftover share goes round).
    `canaries`: campaign id -> the last message id of its canary slice, for campaigns holding one."""
    canaries = canaries or {}
    picked: dict[int, list[int]] = {cid: [] for cid in campaign_ids}
    hungry = list(campaign_ids)
    while room > 0 and hungry:
        share = max(1, math.ceil(room / len(hungry)))
        still_hungry = []
        for campaign_id in hungry:
            take = min(share, room)
            if take <= 0:
                break
            query = select(Message.id).where(
                _ready(campaign_id, now, canaries.get(campaign_id)),
                Message.id.not_in(picked[campaign_id]) if picked[campaign_id] else True
            ).limit(take).with_for_update(skip_locked=True)
            ids = connection.execute(query).scalars().all()
            picked[campaign_id].extend(ids)
            room -= len(ids)
            if len(ids) == take:
                still_hungry.append(campaign_id)
        hungry = still_hungry
    return {cid: ids for cid, ids in picked.items() if ids}


def pace_account(account_name: str, *, publish, engine=None, limiter=None) -> int:
    """One pacing round for one account; returns how many messages it queued.

    `publish(campaign_id, message_ids)` sends one task; it is called after the commit.
    """
    engine = engine or get_engine()
    account = get_account(account_name)
    rate = limiter.effective_rate(account.name, rate=account.rate) if limiter else account.rate
    depth = max(1, math.ceil(rate * get_settings().pace_depth_seconds))
    batch = task_batch_size(account, rate, gateway_batch=_gateway_batch(account))
    now = utcnow()
    with engine.begin() as connection:
        if not _lock_account(connection, account.name):
            return 0
        campaigns = connection.execute(
            select(Campaign.id, Campaign.quiet_hours, Campaign.canary_until_id)
            .where(failover.current_account() == account.name, Campaign.status == CampaignStatus.RUNNING)
            .order_by(Campaign.id)
        ).all()
        if not campaigns:
            return 0
        campaign_ids = [campaign.id for campaign in campaigns]
        # what workers hold counts too: a claimed message waits in a worker for its slot, and queued on top of
        # it, the account's schedule would run further ahead than a worker waits for a slot (hand-backs)
        in_flight = connection.execute(
            select(func.count()).select_from(Message).where(
                Message.campaign_id.in_(campaign_ids),
                Message.state.in_([MessageState.QUEUED, MessageState.SENDING]))
        ).scalar_one()
        room = depth - in_flight
        if room < min(batch, depth):
            return 0
        canaries = {campaign.id: campaign.canary_until_id for campaign in campaigns
                    if campaign.canary_until_id is not None}
        picked = _pick(connection, list(campaign_ids), room, now, canaries)
        windows = {campaign.id: quiet_hours.parse_window(campaign.quiet_hours)
                   for campaign in campaigns if campaign.quiet_hours and campaign.id in picked}
        if windows:
            picked = hold_quiet_recipients(connection, picked, windows, now)
        for ids in picked.values():
            transition(connection, ids, expected=MessageState.PENDING, to=MessageState.QUEUED, now=now)
    total = 0
    for campaign_id, ids in picked.items():
        for start in range(0, len(ids), batch):
            publish(campaign_id, ids[start:start + batch])
        total += len(ids)
    return total


def hold_quiet_recipients(connection, picked: dict[int, list[int]], windows: dict, now) -> dict[int, list[int]]:
    """Leave out of `picked` the messages whose recipient is inside the campaign's quiet window now, and
    move `send_at` of every pending message of that campaign and zone to the window's end (aware UTC).

    `windows`: campaign id -> QuietWindow. Messages without a stored zone are taken to be in UTC.
    """
    kept: dict[int, list[int]] = {}
    for campaign_id, ids in picked.items():
        window = windows.get(campaign_id)
        if window is None:
            kept[campaign_id] = ids
            continue
        zones = connection.execute(select(Message.id, Message.timezone).where(Message.id.in_(ids))).all()
        ends: dict[str | None, object] = {}
        held = set()
        for message_id, zone in zones:
            if zone not in ends:
                ends[zone] = window.wait_until(zone or quiet_hours.FALLBACK_ZONE, now)
            if ends[zone] is not None:
                held.add(message_id)
        for zone, end in ends.items():
            if end is not None:
                connection.execute(
                    update(Message).where(
                        Message.campaign_id == campaign_id, Message.state == MessageState.PENDING,
                        Message.timezone.is_(None) if zone is None else Message.timezone == zone,
                        or_(Message.send_at.is_(None), Message.send_at < end))
                    .values(send_at=end))
        if remaining := [message_id for message_id in ids if message_id not in held]:
            kept[campaign_id] = remaining
    return kept


def _account_or_none(name: str) -> AccountConfig | None:
    try:
        return get_account(name)
    except ConfigError:
        return None


def _gateway_batch(account: AccountConfig) -> int:
    from workers.providers import client_for

    return getattr(client_for(account), "max_batch", 1)


def accounts_with_running_campaigns(engine=None) -> list[str]:
    engine = engine or get_engine()
    with engine.connect() as connection:
        return list(connection.execute(
            select(failover.current_account()).where(Campaign.status == CampaignStatus.RUNNING).distinct()
        ).scalars())


def pace(*, publish, account_names: Iterable[str] | None = None, engine=None, limiter=None) -> int:
    """A whole pacing round: start due campaigns, finish done ones, fill every account's queue."""
    engine = engine or get_engine()
    now = utcnow()
    with engine.begin() as connection:
        start_due_campaigns(connection, now)
        canary.hold_sent_slices(connection, now)
        released = canary.judge_settled(connection, now, get_settings().canary_settle_seconds, _account_or_none)
        finish_done_campaigns(connection, now)
    names = list(account_names) if account_names else accounts_with_running_campaigns(engine)
    if released and account_names:  # a canary released this round sends this round
        names = sorted(set(names) | set(accounts_with_running_campaigns(engine)))
    return sum(pace_account(name, publish=publish, engine=engine, limiter=limiter) for name in names)
