"""The reconciler: what the broker forgot is queued again; what may have reached a gateway is resolved
from the gateway's own records, never by a blind second send.

- `queued` longer than `queued_timeout_seconds` -> `pending` (the task was lost: broker flushed, worker
  killed before it acknowledged). If the old task does turn up, its claim finds nothing to do.
- `sending` longer than `sending_timeout_seconds` -> `unknown` (the worker died mid-call).
- `unknown` (that, or an ambiguous answer: HTTP 500, a body nobody documented, a read timeout), by what the
  gateway offers (its GatewaySpec):
  - it keeps reports (SMSGlobal, HTTP API): asked first. A match must be this message: its number, its
    text, made after this attempt began, and not a message already recorded for another of ours. Found:
    `submitted` with its provider id, and its reported status applied. Not there once the reports have had
    `unknown_wait_seconds`: sent again, once (`pending`).
  - its callbacks echo our id (Devino): the callback resolves it (campaigns.delivery); none within
    `unknown_wait_seconds`: sent again, once.
  - neither (Socnet): the account's `on_unknown`. `hold` (the default) keeps it `unknown` with error code
    `held` for the operator (`blast retry ID --reason unknown`); the campaign can finish around it.
    `resend` sends it again.
  A message sent again counts the ambiguous attempt; at `max_attempts` it fails with code `unknown`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from campaigns import failover
from campaigns.db import get_engine
from campaigns.models import Campaign, Message, aware, utcnow
from campaigns.settings import AccountConfig, ConfigError, get_account, get_settings
from campaigns.states import HELD_CODE, CampaignStatus, MessageState
from campaigns.transitions import transition

log = logging.getLogger("blast.reconcile")
M = MessageState
LOST_OUTCOME_CODE = "unknown"
UNKNOWN_BATCH = 5000  # unknown messages looked at per round


def requeue_forgotten(connection, now, timeout: float) -> int:
    stale = connection.execute(
        select(Message.id).where(Message.state == M.QUEUED, Message.updated_at < now - timedelta(seconds=timeout))
    ).scalars().all()
    return transition(connection, stale, expected=M.QUEUED, to=M.PENDING, now=now) if stale else 0


def mark_lost_sends(connection, now, timeout: float) -> int:
    stale = connection.execute(
        select(Message.id).where(Message.state == M.SENDING, Message.updated_at < now - timedelta(seconds=timeout))
    ).scalars().all()
    return transition(connection, stale, expected=M.SENDING, to=M.UNKNOWN, now=now) if stale else 0


def resolve_unknown(engine, now: datetime) -> dict[str, int]:
    """One round over the `unknown` messages not held for the operator, account by account."""
    counts = {"found": 0, "resent": 0, "held": 0, "failed": 0}
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.id, Message.phone, Message.body, Message.attempts, Message.queued_at,
                   Message.updated_at, Message.campaign_id, failover.message_account().label("account_name"),
                   Campaign.status)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(Message.state == M.UNKNOWN, or_(Message.error_code.is_(None), Message.error_code != HELD_CODE))
            .order_by(Message.id)
            .limit(UNKNOWN_BATCH)
        ).all()
    by_account: dict[str, list] = defaultdict(list)
    cancelled = [row.id for row in rows if row.status == CampaignStatus.CANCELLED]
    if cancelled:  # never sent again for a cancelled campaign: held, for the record
        counts["held"] += _hold(engine, cancelled, now)
    for row in rows:
        if row.status != CampaignStatus.CANCELLED:
            by_account[row.account_name].append(row)
    for account_name, messages in by_account.items():
        try:
            account = get_account(account_name)
        except ConfigError as error:
            log.warning("unknown messages of account %s wait: %s", account_name, error)
            continue
        for key, value in _resolve_account(engine, account, messages, now).items():
            counts[key] += value
    return counts


def _resolve_account(engine, account: AccountConfig, messages: list, now: datetime) -> dict[str, int]:
    from workers.providers.base import SentQuery, client_for

    client = client_for(account)
    spec = client.spec
    wait = account.unknown_wait_seconds if account.unknown_wait_seconds is not None else spec.report_delay_seconds
    settled = [row for row in messages if aware(row.updated_at) <= now - timedelta(seconds=wait)]
    if spec.reports:
        queries = [SentQuery(row.id, row.phone, row.body, aware(row.queued_at or row.updated_at))
                   for row in messages if row.phone]
        try:
            candidates = client.find_sent(queries)
        except Exception as error:  # a gateway that cannot answer now is asked again next round
            log.warning("report lookup failed for %s: %s", account.name, type(error).__name__)
            return {}
        found = _record_found(engine, account, messages, candidates, now)
        return {"found": len(found), **_resend(engine, account, [r for r in settled if r.id not in found], now)}
    if spec.echoes_reference:
        from campaigns import delivery

        with engine.begin() as connection:  # callbacks that came while the ambiguous answer was recorded
            adopted = delivery.adopt_waiting_references(connection)
        if adopted:
            delivery.apply_waiting(engine)
        return {"found": adopted, **_resend(engine, account, settled, now)}  # no callback named the rest
    if account.on_unknown == "resend":
        return _resend(engine, account, messages, now)
    return {"held": _hold(engine, [row.id for row in messages], now)}


def _record_found(engine, account: AccountConfig, messages: list, candidates: dict, now: datetime) -> set[int]:
    """Each unknown message takes its oldest candidate that no other message of ours carries; then the
    status the report gave is applied. Returns the ids resolved."""
    from campaigns import delivery

    if not candidates:
        return set()
    provider_ids = {update.provider_message_id for updates in candidates.values() for update in updates}
    with engine.connect() as connection:
        taken = set(connection.execute(
            select(Message.provider_message_id).join(Campaign, Campaign.id == Message.campaign_id)
            .where(failover.sent_through(account.name), Message.provider_message_id.in_(sorted(provider_ids)))
        ).scalars())
    resolved: set[int] = set()
    updates = []
    for row in messages:
        choice = next((u for u in candidates.get(row.id, []) if u.provider_message_id not in taken), None)
        if choice is None:
            continue
        with engine.begin() as connection:
            moved = transition(connection, row.id, expected=M.UNKNOWN, to=M.SUBMITTED, now=now,
                               provider_message_id=choice.provider_message_id, error_code=None, error_reason=None)
        if moved:
            taken.add(choice.provider_message_id)
            resolved.add(row.id)
            updates.append(choice)
    if updates:
        delivery.apply_updates(engine, account.name, updates, source="lookup")
    return resolved


def _resend(engine, account: AccountConfig, rows: list, now: datetime) -> dict[str, int]:
    """Sent again, once: the gateway's records do not have them (or it cannot be asked and the account says
    resend). At the account's max_attempts they fail instead."""
    again = [row.id for row in rows if row.attempts < account.max_attempts]
    spent = [row.id for row in rows if row.attempts >= account.max_attempts]
    with engine.begin() as connection:
        resent = transition(connection, again, expected=M.UNKNOWN, to=M.PENDING, now=now, next_attempt_at=now,
                            error_code=None, error_reason=None) if again else 0
        failed = transition(connection, spent, expected=M.UNKNOWN, to=M.FAILED, now=now,
                            error_code=LOST_OUTCOME_CODE,
                            error_reason="the gateway's answers were ambiguous on every attempt") if spent else 0
    return {"resent": resent, "failed": failed}


def _hold(engine, message_ids: list[int], now: datetime) -> int:
    """Kept `unknown` for the operator: the gateway may have them and cannot be asked."""
    with engine.begin() as connection:
        return connection.execute(
            update(Message)
            .where(Message.id.in_(message_ids), Message.state == M.UNKNOWN)
            .values(error_code=HELD_CODE, updated_at=now,
                    error_reason="the gateway may have it and cannot be asked: held for the operator "
                                 "(blast retry ID --reason unknown sends it again)")
        ).rowcount


def reconcile(engine=None) -> dict[str, int]:
    engine = engine or get_engine()
    settings = get_settings()
    now = utcnow()
    with engine.begin() as connection:
        requeued = requeue_forgotten(connection, now, settings.queued_timeout_seconds)
        lost = mark_lost_sends(connection, now, settings.sending_timeout_seconds)
    resolved = resolve_unknown(engine, now)
    result = {"requeued": requeued, "unknown": lost, **resolved}
    if any(result.values()):
        log.info("reconciled %s", result)
    return result
