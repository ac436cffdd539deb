"""Delivery-report, inbox and balance polling for the gateways that offer them. Polling costs requests
per page, not per message: SMSGlobal's outgoing list pages through a date range; the HTTP API's
campaignReport covers the last 7 days in one request, and campaignStatus asks only for stragglers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns import delivery
from campaigns.models import Campaign, Message
from campaigns.settings import AccountConfig
from campaigns.states import MessageState

log = logging.getLogger(__name__)
REPORT_WINDOW = timedelta(days=7)  # httpapi.txt 2.2: the report covers the last 7 days
STRAGGLERS_MAX = 50  # HTTP API messages asked one by one per poll (campaignStatus), oldest first
PAGES_MAX = 200  # SMSGlobal pages per poll, a bound on one poll's requests


def client(account: AccountConfig):
    from workers.providers.base import client_for

    return client_for(account)


def poll_reports(engine: Engine, account: AccountConfig, *, now: datetime | None = None) -> dict[str, int]:
    """Fetch the account's delivery reports and apply them; returns requests made and events applied."""
    now = now or datetime.now(UTC)
    requests, updates = 0, []
    if account.provider == "smsglobal":
        requests = _smsglobal_window(client(account), now - REPORT_WINDOW, now, updates)
    elif account.provider == "httpapi":
        gateway = client(account)
        # Without dates the report covers the gateway's last 7 days; dates would be its local days.
        updates.extend(gateway.campaign_report())
        requests += 1
        reported = {update.provider_message_id for update in updates}
        for provider_id in _stragglers(engine, account.name, exclude=reported):
            found = gateway.campaign_status(provider_id)
            requests += 1
            if found is not None:
                updates.append(found)
    else:
        return {"requests": 0, "events": 0, "moved": 0}
    counts = delivery.apply_updates(engine, account.name, updates, source="poll")
    return {"requests": requests, "events": len(updates), "moved": counts["moved"]}


def _smsglobal_window(gateway, start: datetime, end: datetime, updates: list, requests: int = 0) -> int:
    """Pages through [start, end]; a window holding more than the list can page (offset + limit at most
    10,000, smsglobal.txt) is split in halves. Returns the requests made."""
    from workers.providers.smsglobal import OFFSET_PLUS_LIMIT_MAX, PAGE_LIMIT_MAX

    offset = 1
    while requests < PAGES_MAX:
        limit = min(PAGE_LIMIT_MAX, OFFSET_PLUS_LIMIT_MAX - offset)
        page, total = gateway.list_outgoing(start=start, end=end, offset=offset, limit=limit)
        requests += 1
        if offset == 1 and total >= OFFSET_PLUS_LIMIT_MAX and end - start > timedelta(seconds=2):
            middle = start + (end - start) / 2
            requests = _smsglobal_window(gateway, start, middle, updates, requests)
            return _smsglobal_window(gateway, middle, end, updates, requests)
        updates.extend(page)
        offset += len(page)
        if not page or offset > total or offset >= OFFSET_PLUS_LIMIT_MAX:
            break
    return requests


def _stragglers(engine: Engine, account_name: str, *, exclude: set[str]) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.provider_message_id)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(Campaign.account_name == account_name, Message.provider_message_id.is_not(None),
                   Message.state.in_([MessageState.SUBMITTED.value, MessageState.UNKNOWN.value]))
            .order_by(Message.submitted_at)
            .limit(STRAGGLERS_MAX + len(exclude))
        ).scalars().all()
    return [row for row in rows if row not in exclude][:STRAGGLERS_MAX]


def poll_inbound(engine: Engine, account: AccountConfig, *, now: datetime | None = None) -> int:
    """Incoming messages of the last day; a STOP opts its sender out. Returns numbers newly opted out."""
    now = now or datetime.now(UTC)
    if account.provider == "smsglobal":
        inbound, _total = client(account).list_incoming(start=now - timedelta(days=1), end=now)
    elif account.provider == "httpapi":
        # A day either side: the gateway's dates are its local days (India, +05:30, in its samples).
        inbound = client(account).inbox_report(start_date=(now - timedelta(days=1)).date(),
                                               end_date=(now + timedelta(days=1)).date())
    else:
        return 0
    return delivery.apply_inbound(engine, account.name, inbound, source="poll")


def check_balance(account: AccountConfig) -> dict | None:
    """The gateway's balance words (HTTP API checkBal, SMSGlobal credit balance), logged; None elsewhere."""
    if account.provider == "httpapi":
        balance = client(account).check_balance()
    elif account.provider == "smsglobal":
        balance = client(account).credit_balance()
    else:
        return None
    log.info("balance of account %s: %s", account.name, balance)
    return balance
