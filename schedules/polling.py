"""Delivery-report, inbox and balance polling for the gateways whose spec offers them. Polling costs
requests per page, not per message; each gateway's module knows how to page its own reports."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns import delivery, failover
from campaigns.models import Campaign, Message
from campaigns.settings import AccountConfig
from campaigns.states import MessageState

log = logging.getLogger(__name__)
REPORT_WINDOW = timedelta(days=7)  # how far back a poll looks for reports
INBOUND_WINDOW = timedelta(days=1)  # how far back a poll looks for incoming messages
STRAGGLERS_MAX = 50  # provider ids still waiting, offered to gateways that answer one id at a time


def client(account: AccountConfig):
    from workers.providers.base import client_for

    return client_for(account)


def poll_reports(engine: Engine, account: AccountConfig, *, now: datetime | None = None) -> dict[str, int]:
    """Fetch the account's delivery reports and apply them; returns requests made and events applied."""
    gateway = client(account)
    if not gateway.spec.reports:
        return {"requests": 0, "events": 0, "moved": 0}
    now = now or datetime.now(UTC)
    updates, requests = gateway.poll_reports(since=now - REPORT_WINDOW, until=now,
                                             stragglers=_stragglers(engine, account.name))
    counts = delivery.apply_updates(engine, account.name, updates, source="poll")
    return {"requests": requests, "events": len(updates), "moved": counts["moved"]}


def _stragglers(engine: Engine, account_name: str) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(
            select(Message.provider_message_id)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(failover.sent_through(account_name), Message.provider_message_id.is_not(None),
                   Message.state == MessageState.SUBMITTED.value)
            .order_by(Message.submitted_at)
            .limit(STRAGGLERS_MAX * 4)
        ).scalars())


def poll_inbound(engine: Engine, account: AccountConfig, *, now: datetime | None = None) -> int:
    """Incoming messages of the last day; a STOP opts its sender out. Returns numbers newly opted out."""
    gateway = client(account)
    if not gateway.spec.inbound:
        return 0
    now = now or datetime.now(UTC)
    inbound = gateway.poll_inbound(since=now - INBOUND_WINDOW, until=now)
    return delivery.apply_inbound(engine, account.name, inbound, source="poll")


def check_balance(account: AccountConfig) -> dict | None:
    """The gateway's balance words, logged; None where the gateway tells none."""
    gateway = client(account)
    if not gateway.spec.balance:
        return None
    balance = gateway.balance()
    log.info("balance of account %s: %s", account.name, balance)
    return balance
