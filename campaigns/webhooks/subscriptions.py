"""Who wants which events: `blast webhooks add|list|remove`, the admin page, and the outbox's question "does
anyone want this event?".

The secret. A subscription's secret (`whsec_` and 32 random bytes in base64) is shown once, by `add`. Unlike an
API key it cannot be kept as a hash: every POST is signed with it (HMAC), so the database keeps it, in
`webhooksubscription.secret`, as blast.toml keeps the gateways' credentials: the database is already where
everything a subscriber receives comes from, and whoever reads it reads the events too. Nothing else holds it:
`listing`, the page, the exports and the delivery log never select the column; Celery tasks get the
subscription's id and read the secret in the worker (`target`); the signer's repr masks it.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from campaigns import audit
from campaigns.errors import BlastError, NotFound
from campaigns.models import WebhookDelivery, WebhookSubscription, aware, utcnow
from campaigns.webhooks.signing import new_secret

MESSAGE_STATUS = "message.status"
CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_PAUSED = "campaign.paused"
CAMPAIGN_FINISHED = "campaign.finished"
OPTOUT_ADDED = "optout.added"
CAMPAIGN_FAILOVER = "campaign.failover"  # its account stopped and it goes on through a fallback (campaigns.failover)
EVENT_TYPES = (MESSAGE_STATUS, CAMPAIGN_STARTED, CAMPAIGN_PAUSED, CAMPAIGN_FINISHED, OPTOUT_ADDED, CAMPAIGN_FAILOVER)
TEST_EVENT = "webhook.test"  # what `blast webhooks test` and the page's test button send; never subscribed to

# How long a process trusts its list of who wants what (seconds): the send path asks on every transition, so
# the answer is kept; a subscription added by another process is heard of within this long (in this process at
# once). With no subscription, the send path pays a dictionary look-up for outbound webhooks, nothing more.
WANTED_TTL_SECONDS = 2.0

_wanted: dict[Engine, tuple[float, dict[str, tuple[int, ...]]]] = {}
_wanted_lock = threading.Lock()


def check_events(events: str | list[str]) -> list[str]:
    names = [name.strip() for name in (events.split(",") if isinstance(events, str) else events)]
    names = sorted({name for name in names if name})
    unknown = [name for name in names if name not in EVENT_TYPES]
    if unknown or not names:
        raise BlastError(f"unknown event type {', '.join(unknown) or '(none given)'}: use some of "
                         f"{', '.join(EVENT_TYPES)}")
    return names


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise BlastError(f"{url!r} is not an http(s) URL")
    return url


def add(engine: Engine, url: str, events: str | list[str]) -> tuple[int, str]:
    """A new subscription; returns its id and its secret (shown once by the caller, kept to sign)."""
    secret = new_secret()
    with engine.begin() as connection:
        names = check_events(events)
        subscription_id = connection.execute(WebhookSubscription.__table__.insert().values(
            url=check_url(url), events=",".join(names), secret=secret, created_at=utcnow(),
        ).returning(WebhookSubscription.id)).scalar_one()
        audit.record(connection, "webhook.add", "webhook", subscription_id,
                     {"url": audit.shown_url(url), "events": names})
    forget()
    return subscription_id, secret


# What may be shown of a subscription: every column but the secret.
SHOWN = (WebhookSubscription.id, WebhookSubscription.url, WebhookSubscription.events,
         WebhookSubscription.created_at, WebhookSubscription.last_attempt_at, WebhookSubscription.last_status_code,
         WebhookSubscription.last_answer, WebhookSubscription.down_since, WebhookSubscription.next_try_at)


def shown_url(url: str) -> str:
    """The URL as lists and pages show it: as the audit log keeps it (no user info, query or fragment), with
    `?…` where a query (where a subscriber's own token often rides) was left out."""
    return audit.shown_url(url) + ("?…" if urlsplit(url).query else "")


def listing(engine: Engine) -> list[dict]:
    """Every subscription with its last answer; never its secret, nor its URL's query or user info."""
    with engine.connect() as connection:
        rows = connection.execute(select(*SHOWN).order_by(WebhookSubscription.id)).mappings().all()
    return [dict(row) | {"url": shown_url(row["url"])} for row in rows]


def shown(engine: Engine, subscription_id: int) -> dict:
    with engine.connect() as connection:
        row = connection.execute(select(*SHOWN).where(WebhookSubscription.id == subscription_id)).mappings().first()
    if row is None:
        raise NotFound(f"no webhook subscription with id {subscription_id}")
    return dict(row) | {"url": shown_url(row["url"])}


def remove(engine: Engine, subscription_id: int) -> None:
    """The subscription and its deliveries (sent or not) are deleted: nothing more is POSTed to it."""
    with engine.begin() as connection:
        connection.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id))
        gone = connection.execute(delete(WebhookSubscription).where(WebhookSubscription.id == subscription_id))
        if gone.rowcount:
            audit.record(connection, "webhook.remove", "webhook", subscription_id)
    forget()
    if not gone.rowcount:
        raise NotFound(f"no webhook subscription with id {subscription_id}")


class Target(NamedTuple):
    """Where and how to POST, for the delivering worker only; `down_since` and `next_try_at` while the subscriber
    is down (campaigns.webhooks.deliveries)."""

    url: str
    secret: str
    down_since: datetime | None
    next_try_at: datetime | None


def target(engine: Engine, subscription_id: int) -> Target | None:
    """The subscription's Target; None once it is removed."""
    with engine.connect() as connection:
        row = connection.execute(select(WebhookSubscription.url, WebhookSubscription.secret,
                                        WebhookSubscription.down_since, WebhookSubscription.next_try_at)
                                 .where(WebhookSubscription.id == subscription_id)).first()
    return Target(row.url, row.secret, aware(row.down_since), aware(row.next_try_at)) if row else None


def engine_of(connection) -> Engine:
    """The engine of a Connection or a Session."""
    engine = getattr(connection, "engine", None)
    return engine if engine is not None else connection.get_bind()


def wanting(connection, event_type: str) -> tuple[int, ...]:
    """The ids of the subscriptions that want `event_type`, read with `connection` (in its transaction) at most
    every WANTED_TTL_SECONDS per process and database."""
    engine = engine_of(connection)
    cached = _wanted.get(engine)
    if cached is None or cached[0] < time.monotonic():
        rows = connection.execute(select(WebhookSubscription.id, WebhookSubscription.events)).all()
        by_type: dict[str, list[int]] = {}
        for row in rows:
            for name in row.events.split(","):
                by_type.setdefault(name, []).append(row.id)
        cached = (time.monotonic() + WANTED_TTL_SECONDS, {name: tuple(ids) for name, ids in by_type.items()})
        with _wanted_lock:
            _wanted[engine] = cached
    return cached[1].get(event_type, ())


def forget() -> None:
    """Ask again next time (a subscription was added or removed here)."""
    with _wanted_lock:
        _wanted.clear()
