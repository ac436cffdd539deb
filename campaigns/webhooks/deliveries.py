"""The outbox read back by the delivering workers: due deliveries claimed, each answer recorded on its delivery
and, the last one, on its subscription; failures rescheduled by the retry schedule.

At least once: a delivery is marked delivered only after its 2xx. A worker that dies mid-POST loses its claim
(at once on Postgres, after LEASE_SECONDS on SQLite) and the delivery is made again; the receiver drops the
repeat by its `webhook-id`. Two workers never hold one delivery at once. Postgres: the due rows are locked
FOR UPDATE SKIP LOCKED by a transaction that stays open through the POSTs and records the answers, so concurrent
claimers take different rows and each delivery is written once, with its answer (a written lease cost a second
update of every row, which was most of Postgres's work per event). SQLite: a lease written by one conditional
UPDATE (SQLite writes one transaction at a time).

A subscriber that is down is probed, not flooded. A batch whose every POST found it down (`subscriber_down`: no
answer, 408, 429 or 5xx) stops POSTing the rest of the batch, and the subscription waits until `next_try_at` (the
retry schedule's step for its tries in a row, at most PROBE_EVERY_SECONDS); then one event goes, and full batches
resume once an answer says the subscriber is back. Events that were not POSTed keep every attempt they have left,
so a backlog survives an outage of any length, and a hanging subscriber holds a claim for one timeout, not a batch's
worth of them.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal_column, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from campaigns.db import is_postgres
from campaigns.models import WebhookDelivery, WebhookSubscription, utcnow
from campaigns.settings import get_settings
from campaigns.webhooks import outbox
from campaigns.webhooks.subscriptions import TEST_EVENT

logger = logging.getLogger("blast.webhooks")

D = WebhookDelivery
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
# A claim outlives the slowest batch: BATCH POSTs of the longest timeout, `concurrency` at a time, with room.
LEASE_SECONDS = 300.0
ANSWER_KEPT = 300  # characters of a subscriber's answer (or of the error) kept on the delivery
CHUNK = 5000  # ids per statement: below SQLite's bound-parameter limit
# The longest wait between tries at a subscriber that is down (seconds): a try is one event, so it costs the
# subscriber nothing, and one that is back hears of its backlog within this long.
PROBE_EVERY_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    event_id: str
    body: str
    attempts: int  # before this one


@dataclass(frozen=True, slots=True)
class Answer:
    delivery_id: int
    attempts: int  # before this one
    at: datetime
    status_code: int | None  # None: no answer (timeout, refused, ...)
    text: str  # the answer's start, or what went wrong

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def down(self) -> bool:
        """The subscriber could not take any event now (no answer, 408 Request Timeout, 429 Too Many Requests,
        a 5xx), as opposed to refusing this one (another 4xx, a redirect) or taking it."""
        return self.status_code is None or self.status_code in (408, 429) or self.status_code >= 500


def subscriber_down(answers: list[Answer]) -> bool:
    """Whether these answers, all of them, say the subscriber is down."""
    return bool(answers) and all(answer.down for answer in answers)


def next_try_delay(tries: int, delays: tuple[float, ...]) -> float:
    """Seconds until the next try at a subscriber found down `tries` times in a row: the retry schedule's step
    for that many failures, at most PROBE_EVERY_SECONDS."""
    step = delays[min(tries, len(delays)) - 1] if delays and tries > 0 else 0.0
    return min(step, PROBE_EVERY_SECONDS)


def retry_delays(text: str | None = None) -> tuple[float, ...]:
    """Seconds to wait after each failed attempt (BLAST_WEBHOOK_RETRY_SECONDS); one more failure gives up."""
    text = get_settings().webhook_retry_seconds if text is None else text
    return tuple(float(part) for part in text.split(",") if part.strip())


def _due(now: datetime, table=D):
    # a literal 'pending', so the planner can use the partial index on pending rows with any plan
    return (table.state == literal_column("'pending'"), table.next_attempt_at <= now,
            or_(table.lease_until.is_(None), table.lease_until < now))


@dataclass(slots=True)
class Claim:
    """Due deliveries one worker holds until it records their answers.

    Postgres: the row locks of a transaction kept open through the POSTs (`connection`). Nothing is written to
    claim; the locks go at its commit, or at once when the worker dies and its connection closes, or when a frozen
    worker's transaction has been idle `lease_seconds` (idle_in_transaction_session_timeout).
    SQLite (one writer at a time: a transaction kept open would stop every other write) writes a lease on the rows
    (`token`), which another worker may take over once it has expired."""

    subscription_id: int
    deliveries: list[Claimed]
    token: str | None = None
    connection: Connection | None = None


def claim(engine: Engine, subscription_id: int, *, limit: int, only: list[int] | None = None,
          lease_seconds: float = LEASE_SECONDS) -> Claim:
    """Hold up to `limit` due deliveries of the subscription (the longest due first, then the oldest; of `only`,
    when given). The order is the due index's, so the claim reads little more than the rows it takes.
    Whatever happens next, the caller ends the claim: `record`, or `release` when it has no answers."""
    now = utcnow()
    if is_postgres(engine):
        return _lock(engine, subscription_id, now, limit=limit, only=only, lease_seconds=lease_seconds)
    token = secrets.token_hex(16)
    # an alias: the same table in the subquery would be correlated to the UPDATE's row, and LIMIT lost
    due = aliased(D)
    picked = _picked((due.id,), due, subscription_id, now, limit=limit, only=only)
    # SQLite runs an uncorrelated IN (subquery) once, and writes one transaction at a time
    statement = (update(D).where(D.id.in_(picked.scalar_subquery()), *_due(now))
                 .values(lease_token=token, lease_until=now + timedelta(seconds=lease_seconds))
                 .returning(*CLAIMED))
    with engine.begin() as connection:
        rows = connection.execute(statement).all()
    return Claim(subscription_id, sorted((Claimed(*row) for row in rows), key=lambda held: held.id), token=token)


CLAIMED = (D.id, D.event_id, D.body, D.attempts)


def _picked(columns, table, subscription_id: int, now: datetime, *, limit: int, only: list[int] | None):
    picked = select(*columns).where(table.subscription_id == subscription_id, *_due(now, table))
    if only is not None:
        picked = picked.where(table.id.in_(only))
    return picked.order_by(table.next_attempt_at, table.id).limit(limit)


def _lock(engine: Engine, subscription_id: int, now: datetime, *, limit: int, only: list[int] | None,
          lease_seconds: float) -> Claim:
    connection = engine.connect()
    try:
        connection.begin()
        rows = connection.execute(_picked(CLAIMED, D, subscription_id, now, limit=limit, only=only)
                                  .with_for_update(skip_locked=True)).all()
        if rows:  # idle from here on, while the worker POSTs
            connection.exec_driver_sql(
                f"SET LOCAL idle_in_transaction_session_timeout = {max(1, round(lease_seconds * 1000))}")
    except BaseException:
        connection.close()
        raise
    if not rows:
        connection.close()
        return Claim(subscription_id, [])
    return Claim(subscription_id, [Claimed(*row) for row in rows], connection=connection)


def _unlease(connection, claim: Claim, answers: list[Answer]) -> None:
    """SQLite: the claim's deliveries that got no answer (not POSTed: the subscriber is down) are free again at
    once; nothing to do when every one was answered (the answers' updates freed them)."""
    answered = {answer.delivery_id for answer in answers}
    left = [held.id for held in claim.deliveries if held.id not in answered]
    for start in range(0, len(left), CHUNK):
        connection.execute(update(D).where(D.id.in_(left[start:start + CHUNK]), D.lease_token == claim.token)
                           .values(lease_token=None, lease_until=None).execution_options(synchronize_session=False))


def release(claim: Claim) -> None:
    """End a claim without recording anything: its deliveries are due again at once (Postgres) or when the
    lease expires (SQLite). Harmless after `record`."""
    if claim.connection is not None:
        claim.connection.close()
        claim.connection = None


def record(engine: Engine, claim: Claim, answers: list[Answer],
           delays: tuple[float, ...] | None = None) -> dict[str, int]:
    """Each answer on its delivery (still held by `claim`), and the claim ended: a 2xx delivers it; anything
    else schedules the next attempt by `delays`, or gives it up after the last. The latest answer goes on the
    subscription, and with it whether the subscriber is down (`subscriber_down`: when the next try may go) or
    not. Returns how many were recorded, by state. A claim lost meanwhile (its lease expired, its
    transaction ended by the database) records nothing: the deliveries are made again, and the receiver drops a
    repeat by its `webhook-id`.

    Answers that record alike (same outcome, attempt, status and text: in a healthy batch, all of them) are
    written by one UPDATE, stamped with the latest of their times."""
    if not answers:
        if claim.token is not None:
            with engine.begin() as connection:
                _unlease(connection, claim, answers)
        release(claim)
        return {}
    delays = retry_delays() if delays is None else delays
    groups: dict[tuple, list[Answer]] = defaultdict(list)
    for answer in answers:
        attempts = answer.attempts + 1
        if answer.delivered:
            state, delay = DELIVERED, None
        elif attempts <= len(delays):
            state, delay = PENDING, delays[attempts - 1]
        else:
            state, delay = FAILED, None
        groups[(state, attempts, delay, answer.status_code, answer.text[:ANSWER_KEPT])].append(answer)
    held = (D.state == PENDING,) if claim.connection is not None else (D.lease_token == claim.token,
                                                                         D.state == PENDING)
    counts = {DELIVERED: 0, PENDING: 0, FAILED: 0}
    last = max(answers, key=lambda answer: answer.at)

    def write(connection) -> None:
        for (state, attempts, delay, status_code, text), group in groups.items():
            at = max(answer.at for answer in group)
            ids = [answer.delivery_id for answer in group]
            for start in range(0, len(ids), CHUNK):
                counts[state] += connection.execute(
                    update(D).where(D.id.in_(ids[start:start + CHUNK]), *held)
                    .values(state=state, attempts=attempts, last_attempt_at=at, last_status_code=status_code,
                            last_answer=text, lease_token=None, lease_until=None,
                            next_attempt_at=at + timedelta(seconds=delay or 0),
                            delivered_at=at if state == DELIVERED else None)
                    .execution_options(synchronize_session=False)).rowcount
        if claim.token is not None:
            _unlease(connection, claim, answers)
        subscription = WebhookSubscription.__table__.c
        answered = {"last_attempt_at": last.at, "last_status_code": last.status_code,
                    "last_answer": last.text[:ANSWER_KEPT]}
        if not subscriber_down(answers):
            connection.execute(update(WebhookSubscription).where(subscription.id == claim.subscription_id)
                               .values(**answered, down_since=None, down_tries=0, next_try_at=None))
            return
        tries = connection.execute(
            update(WebhookSubscription).where(subscription.id == claim.subscription_id)
            .values(**answered, down_since=func.coalesce(subscription.down_since, last.at),
                    down_tries=subscription.down_tries + 1)
            .returning(subscription.down_tries)).scalar()
        if tries is not None:  # None: removed meanwhile
            connection.execute(update(WebhookSubscription).where(subscription.id == claim.subscription_id)
                               .values(next_try_at=last.at + timedelta(seconds=next_try_delay(tries, delays))))

    if claim.connection is None:
        with engine.begin() as connection:
            write(connection)
        return counts
    try:
        write(claim.connection)
        claim.connection.commit()
    except DBAPIError as error:  # the transaction is gone (ended by the database as idle too long, or cut)
        logger.warning("webhook deliveries of subscription %s lost their claim before their answers were recorded "
                       "(%s); they will be made again", claim.subscription_id, type(error.orig).__name__)
        return {}
    finally:
        release(claim)
    return counts


def prune(engine: Engine, *, keep_days: float | None = None, chunk: int = 20_000) -> int:
    """Delete the deliveries done with (delivered or given up) created over `keep_days` ago
    (BLAST_WEBHOOK_KEEP_DAYS), a chunk per transaction; returns how many. Pending ones are never deleted."""
    keep_days = get_settings().webhook_keep_days if keep_days is None else keep_days
    cutoff = utcnow() - timedelta(days=keep_days)
    old = aliased(D)
    # oldest first, by id (rows are written in time order): the scan stops at the first `chunk` found
    picked = (select(old.id).where(old.state != literal_column("'pending'"), old.created_at < cutoff)
              .order_by(old.id).limit(chunk).scalar_subquery())
    deleted = 0
    while True:
        with engine.begin() as connection:
            count = connection.execute(delete(D).where(D.id.in_(picked))).rowcount
        deleted += count
        if count < chunk:
            return deleted


def due_subscriptions(engine: Engine) -> list[int]:
    """The subscriptions with a delivery due and not held, and not waiting for the next try at a subscriber that
    is down: what beat's sweep hands to the workers."""
    now = utcnow()
    due = select(D.id).where(D.subscription_id == WebhookSubscription.id, *_due(now)).exists()
    tried = or_(WebhookSubscription.next_try_at.is_(None), WebhookSubscription.next_try_at <= now)
    with engine.connect() as connection:
        return list(connection.execute(select(WebhookSubscription.id).where(due, tried)
                                       .order_by(WebhookSubscription.id)).scalars())


def add_test_event(engine: Engine, subscription_id: int, *, kick: bool = True) -> int:
    """A `webhook.test` event for one subscription (the CLI's and the page's test); returns the delivery's id.
    Without `kick` no worker is told at once (the CLI POSTs it itself)."""
    with engine.begin() as connection:
        outbox.write(connection, TEST_EVENT, [{"subscription_id": subscription_id,
                                               "message": "a test event from Blast"}],
                     subscription_ids=[subscription_id], kick=kick)
        return connection.execute(select(func.max(D.id)).where(D.subscription_id == subscription_id,
                                                               D.event_type == TEST_EVENT)).scalar_one()


def last_answer_of(engine: Engine, delivery_id: int) -> Answer | None:
    """The answer a delivery got at its last attempt; None before any."""
    with engine.connect() as connection:
        row = connection.execute(select(D.attempts, D.last_attempt_at, D.last_status_code, D.last_answer)
                                 .where(D.id == delivery_id)).first()
    if row is None or row.last_attempt_at is None:
        return None
    return Answer(delivery_id, row.attempts - 1, row.last_attempt_at, row.last_status_code, row.last_answer or "")


LOG_COLUMNS = (D.id, D.event_id, D.event_type, D.state, D.attempts, D.created_at, D.next_attempt_at,
               D.last_attempt_at, D.last_status_code, D.last_answer, D.delivered_at)


def log(engine: Engine, subscription_id: int, *, limit: int = 50) -> list[dict]:
    """The subscription's latest deliveries, newest first, with their last answers (not their bodies)."""
    with engine.connect() as connection:
        rows = connection.execute(select(*LOG_COLUMNS).where(D.subscription_id == subscription_id)
                                  .order_by(D.id.desc()).limit(limit)).mappings().all()
    return [dict(row) for row in rows]


def counts(engine: Engine, subscription_id: int) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(D.state, func.count()).where(D.subscription_id == subscription_id)
                                  .group_by(D.state)).all()
    return {PENDING: 0, DELIVERED: 0, FAILED: 0} | {state: count for state, count in rows}
