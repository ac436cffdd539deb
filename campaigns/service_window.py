"""WhatsApp's customer-service window, for gateways that enforce it (Meta's Cloud API: metacloud.md s6): for
24 hours after a number last wrote to an account, the account may send it anything; outside that window only an
approved template. Every inbound message (webhooks, polled inboxes) is recorded here per account and number;
a free-form campaign on such a gateway skips, at ingest, every number outside its window, with SKIP_REASON.

The window's length is the gateway's (`GatewaySpec.service_window_hours`); None means the gateway has no such
rule and nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from campaigns.models import ServiceWindow, aware, utcnow
from campaigns.settings import AccountConfig

# The message kinds that are not free-form: they may go outside the window.
TEMPLATE_KINDS = frozenset({"template"})


def skip_reason(hours: float) -> str:
    return f"outside the {hours:g}-hour window (no message from this number): only a template may be sent"


def window_hours(account: AccountConfig, kind: str) -> float | None:
    """The window a campaign of `kind` on this account must respect, in hours; None when it need not."""
    from campaigns.dispatch import gateway_spec

    hours = gateway_spec(account.provider).service_window_hours
    return None if hours is None or kind in TEMPLATE_KINDS else hours


def record(connection, account_name: str, inbound: Iterable[tuple[str, datetime | None]]) -> int:
    """Note that these numbers (E.164) wrote to the account (at these times; None: now). A later time wins."""
    latest: dict[str, datetime] = {}
    now = utcnow()
    for phone, at in inbound:
        at = min(aware(at) or now, now)
        if phone not in latest or at > latest[phone]:
            latest[phone] = at
    if not latest:
        return 0
    rows = [{"account_name": account_name, "phone": phone, "last_inbound_at": at} for phone, at in latest.items()]
    insert = postgres_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(ServiceWindow).values(rows)
    newer = statement.excluded.last_inbound_at
    connection.execute(statement.on_conflict_do_update(
        index_elements=["account_name", "phone"], set_={"last_inbound_at": newer},
        where=ServiceWindow.last_inbound_at < newer))
    return len(rows)


def open_numbers(engine: Engine | None, account_name: str, hours: float) -> frozenset[str]:
    """Every number that wrote to the account within the last `hours` (E.164). Empty without a database."""
    if engine is None:
        return frozenset()
    since = utcnow() - timedelta(hours=hours)
    with engine.connect() as connection:
        return frozenset(connection.execute(
            select(ServiceWindow.phone).where(ServiceWindow.account_name == account_name,
                                              ServiceWindow.last_inbound_at >= since)).scalars())


def for_ingest(engine: Engine | None, account: AccountConfig, kind: str) -> tuple[frozenset[str], str] | None:
    """(the numbers inside the window, the reason to skip the others) for a campaign of `kind` on the account;
    None when every number may be sent to."""
    hours = window_hours(account, kind)
    if hours is None:
        return None
    return open_numbers(engine, account.name, hours), skip_reason(hours)
