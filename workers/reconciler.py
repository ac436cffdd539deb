"""The reconciler: what the broker forgot is queued again; what a crash left unknown is resolved from the
gateway's own records, never by a blind second send.

- `queued` longer than `queued_timeout_seconds` -> `pending` (the task was lost: broker flushed, worker
  killed before it acknowledged). If the old task does turn up, its claim finds nothing to do.
- `sending` longer than `sending_timeout_seconds` -> `unknown` (the worker died mid-call).
- `unknown` -> resolved where the gateway keeps reports (SMSGlobal, HTTP API): found there, it is
  `submitted` (or further); not there once the send can no longer arrive, `pending` again. Devino's
  callbacks carry our message id, so they resolve it on their own. With no evidence after
  `unknown_timeout_seconds` it is `failed` with code `unknown`: `blast retry ID --reason unknown` resends
  it if the operator chooses.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from campaigns.db import get_engine
from campaigns.models import Campaign, Message, utcnow
from campaigns.settings import get_account, get_settings
from campaigns.states import MessageState
from campaigns.transitions import transition

log = logging.getLogger("blast.reconcile")
M = MessageState
LOST_OUTCOME_CODE = "unknown"


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


def resolve_unknown(engine, now, *, give_up_after: float) -> dict[str, int]:
    """Ask the gateways that keep reports; give up on the others after `give_up_after` seconds."""
    from workers.providers import client_for

    counts = {"found": 0, "not_found": 0, "gave_up": 0}
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.id, Message.phone, Message.updated_at, Campaign.account_name)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(Message.state == M.UNKNOWN)
            .limit(5000)
        ).all()
    by_account: dict[str, list] = {}
    for row in rows:
        by_account.setdefault(row.account_name, []).append(row)
    for account_name, messages in by_account.items():
        account = get_account(account_name)
        client = client_for(account)
        lookup = getattr(client, "find_sent", None)
        for row in messages:
            found = None
            if lookup is not None:
                try:
                    found = lookup(to=row.phone, since=row.updated_at - timedelta(minutes=5))
                except Exception as error:  # a gateway that cannot answer now is asked again next round
                    log.warning("report lookup failed for %s: %s", account_name, type(error).__name__)
                    continue
            with engine.begin() as connection:
                if found is not None:
                    counts["found"] += transition(connection, row.id, expected=M.UNKNOWN, to=M.SUBMITTED, now=now,
                                                  provider_message_id=found.provider_message_id)
                elif lookup is not None and getattr(client, "reports_are_complete", True):
                    counts["not_found"] += transition(connection, row.id, expected=M.UNKNOWN, to=M.PENDING, now=now)
                elif row.updated_at < now - timedelta(seconds=give_up_after):
                    counts["gave_up"] += transition(
                        connection, row.id, expected=M.UNKNOWN, to=M.FAILED, now=now, error_code=LOST_OUTCOME_CODE,
                        error_reason="outcome lost in a crash and the gateway keeps no report; not resent")
    return counts


def reconcile(engine=None) -> dict[str, int]:
    engine = engine or get_engine()
    settings = get_settings()
    now = utcnow()
    with engine.begin() as connection:
        requeued = requeue_forgotten(connection, now, settings.queued_timeout_seconds)
        lost = mark_lost_sends(connection, now, settings.sending_timeout_seconds)
    resolved = resolve_unknown(engine, now, give_up_after=settings.unknown_timeout_seconds)
    result = {"requeued": requeued, "unknown": lost, **resolved}
    if any(result.values()):
        log.info("reconciled %s", result)
    return result
