"""The transactional outbox: an event is written as rows of `webhookdelivery` (one per subscription that wants
it) in the same transaction as the change it reports, so a crash loses none and a change that rolls back sends
none. Called from the few places where things change: campaigns.transitions (every message state and campaign
status) and campaigns.optouts.

With no subscription for an event type, writing it costs one look-up (subscriptions.wanting) and nothing else.

Once the transaction commits, the subscriptions it wrote for are kicked (a delivery task published through
campaigns.dispatch) when the connection goes back to its pool, which is after the commit; beat's sweep
(`blast.sweep_webhooks`) finds anything a lost kick left behind.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from campaigns.db import is_postgres
from campaigns.models import Message, WebhookDelivery, aware, utcnow
from campaigns.states import CampaignStatus, MessageState
from campaigns.webhooks.subscriptions import (
    CAMPAIGN_FINISHED,
    CAMPAIGN_PAUSED,
    CAMPAIGN_STARTED,
    MESSAGE_STATUS,
    OPTOUT_ADDED,
    engine_of,
    wanting,
)

log = logging.getLogger("blast.webhooks")

# The message states a subscriber hears of: what the gateway made of the message. The steps of Blast's own
# machinery (queued, sending, unknown, back to pending) and the bulk moves (skipped, cancelled) are not events.
NOTIFIED_STATES = frozenset({MessageState.SUBMITTED, MessageState.SENT, MessageState.DELIVERED, MessageState.READ,
                             MessageState.FAILED})
# Ids per SELECT of the moved messages: below SQLite's bound-parameter limit.
CHUNK = 5000
# A process kicks a subscription at most this often (seconds): a running delivery task takes every row that is
# due, so kicks in between would only publish tasks that find nothing.
KICK_EVERY_SECONDS = 0.2

_WRITTEN = "blast.webhooks.written"  # subscription ids written for in the connection's open transaction
_COMMITTED = "blast.webhooks.committed"  # ... and committed, to kick once the connection is checked in
_last_kick: dict[int, float] = {}
_kick_lock = threading.Lock()


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, as the specification's examples write it."""
    return aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(event_type: str, data: dict, at: datetime) -> str:
    """The exact text POSTed (and signed): {"type", "timestamp", "data"}."""
    return json.dumps({"type": event_type, "timestamp": timestamp(at), "data": data}, separators=(",", ":"),
                      ensure_ascii=False)


def new_event_id() -> str:
    """A `webhook-id`: the same for every attempt at the event (receivers drop repeats by it)."""
    return "msg_" + uuid.uuid4().hex


def write(connection, event_type: str, datas: Sequence[dict], *, subscription_ids: Iterable[int] | None = None,
          at: datetime | None = None, kick: bool = True) -> int:
    """Write one event per `datas` item for each subscription wanting `event_type` (or the given ones), in the
    connection's transaction; returns how many rows. Without `kick`, no worker is told (the caller delivers)."""
    ids = tuple(wanting(connection, event_type) if subscription_ids is None else subscription_ids)
    if not ids or not datas:
        return 0
    at = at or utcnow()
    rows = []
    for data in datas:
        event_id, text = new_event_id(), body(event_type, data, at)
        rows.extend({"subscription_id": subscription_id, "event_id": event_id, "event_type": event_type,
                     "body": text, "state": "pending", "attempts": 0, "created_at": at, "next_attempt_at": at}
                    for subscription_id in ids)
    _insert(connection, rows)
    if kick:
        _note_written(connection, ids)
    return len(rows)


_COLUMNS = ("subscription_id", "event_id", "event_type", "body", "state", "attempts", "created_at", "next_attempt_at")
_INSERT = f"INSERT INTO webhookdelivery ({', '.join(_COLUMNS)}) "
_ROW = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
# The rows of a larger write go as one array per column, in binary: one statement text whatever their number.
_UNNEST = (_INSERT + "SELECT s, e, t, b, 'pending', 0, a, a FROM unnest(%b::int[], %b::text[], %b::text[], "
           "%b::text[], %b::timestamptz[]) AS incoming(s, e, t, b, a)")
# Up to this many rows go as a multi-row VALUES: psycopg keeps its parse of a statement text of at most 50
# parameters (psycopg._queries.MAX_CACHED_STATEMENT_PARAMS) and parses a longer one anew on every call.
VALUES_ROWS = 50 // len(_COLUMNS)
ROWS_PER_INSERT = 5000  # a statement's arrays


def _insert(connection, rows: list[dict]) -> None:
    """Postgres: one INSERT through the driver, in the caller's transaction, one round trip; SQLite: an
    executemany (no round trips). Measured on the send path (bench/webhooks.py prints it), in CPU per row
    written: a few rows go fastest as a multi-row VALUES, whose text psycopg has parsed and Postgres prepared
    before; more go as binary arrays unnested (a VALUES of more rows is parsed by psycopg on every call, which
    cost 3-4 times as much at 20 rows). An executemany sends a statement per row, SQLAlchemy compiles a multi-row
    INSERT anew each time, COPY takes two round trips."""
    if not is_postgres(engine_of(connection)):
        connection.execute(insert(WebhookDelivery.__table__), rows)
        return
    if not hasattr(connection, "engine"):  # a Session: its connection, in the same transaction
        connection = connection.connection()
    with connection.connection.driver_connection.cursor() as cursor:
        if len(rows) <= VALUES_ROWS:
            cursor.execute(_INSERT + "VALUES " + ", ".join([_ROW] * len(rows)),
                           [row[name] for row in rows for name in _COLUMNS])
            return
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            cursor.execute(_UNNEST, [[row[name] for row in chunk]
                                     for name in ("subscription_id", "event_id", "event_type", "body", "created_at")])


# What a message.status event says of a message, as the transition's RETURNING or a SELECT gives it.
STATUS_COLUMNS = (Message.campaign_id, Message.phone, Message.state, Message.provider_message_id, Message.error_code)


def wants_status(connection, to: MessageState) -> bool:
    """Whether a move to `to` is a message.status event anybody wants."""
    return MessageState(to) in NOTIFIED_STATES and bool(wanting(connection, MESSAGE_STATUS))


def messages_moved(connection, ids: Sequence[int], to: MessageState, now: datetime) -> None:
    """`message.status` for the messages of `ids` that a transition just moved to `to` (stamped `now`): read
    back in the transaction (where the transition could not return them)."""
    if not wants_status(connection, to):
        return
    rows = []
    for start in range(0, len(ids), CHUNK):
        rows.extend(connection.execute(
            select(*STATUS_COLUMNS)
            .where(Message.id.in_(ids[start:start + CHUNK]), Message.state == MessageState(to).value,
                   Message.updated_at == now)
            .order_by(Message.id)
        ).all())
    messages_status(connection, rows, now)


def messages_status(connection, rows: Sequence, now: datetime) -> None:
    """`message.status` for these moved messages (rows of STATUS_COLUMNS)."""
    write(connection, MESSAGE_STATUS, [
        {"campaign_id": row.campaign_id, "phone": row.phone, "state": row.state,
         "provider_message_id": row.provider_message_id, "error_code": row.error_code} for row in rows], at=now)


def campaign_event(to: CampaignStatus, values: dict) -> str | None:
    """The event a campaign's move to `to` is: started (running with a start time: from draft or scheduled,
    not a resume), paused, finished; None for the others."""
    if to == CampaignStatus.RUNNING and values.get("started_at") is not None:
        return CAMPAIGN_STARTED
    return {CampaignStatus.PAUSED: CAMPAIGN_PAUSED, CampaignStatus.FINISHED: CAMPAIGN_FINISHED}.get(to)


def wants_campaign_event(connection, to: CampaignStatus, values: dict) -> str | None:
    event_type = campaign_event(CampaignStatus(to), values)
    return event_type if event_type and wanting(connection, event_type) else None


def campaigns_moved(connection, event_type: str, rows: Sequence, reason: str | None = None) -> None:
    """`rows` (id, name) of the campaigns that just moved; a pause's `reason` goes with it."""
    datas = []
    for row in rows:
        data = {"campaign_id": row.id, "name": row.name}
        if event_type == CAMPAIGN_PAUSED:
            data["reason"] = reason
        datas.append(data)
    write(connection, event_type, datas)


def optouts_added(connection, phones: Sequence[str], at: datetime) -> None:
    write(connection, OPTOUT_ADDED, [{"phone": phone} for phone in phones], at=at)


# ---------------------------------------------------------------- kicks after commit


def install(engine: Engine) -> None:
    """Kick the delivery of what a transaction wrote once it has committed (campaigns.db calls this for every
    engine it makes)."""
    event.listen(engine, "commit", _on_commit)
    event.listen(engine, "rollback", _on_rollback)
    event.listen(engine.pool, "checkin", _on_checkin)


def _info(connection) -> dict:
    if hasattr(connection, "get_bind") and not hasattr(connection, "engine"):  # a Session
        connection = connection.connection()
    return connection.info


def _note_written(connection, subscription_ids: Iterable[int]) -> None:
    _info(connection).setdefault(_WRITTEN, set()).update(subscription_ids)


def _on_commit(connection) -> None:
    written = connection.info.pop(_WRITTEN, None)
    if written:
        connection.info.setdefault(_COMMITTED, set()).update(written)


def _on_rollback(connection) -> None:
    # A connection the database dropped mid-transaction is invalidated, and what it noted went with it: asking for
    # its `info` would try to reconnect and raise PendingRollbackError in place of the database's own error, which
    # the send path knows to wait out (workers.sending.while_database_returns).
    if not connection.invalidated:
        connection.info.pop(_WRITTEN, None)


def _on_checkin(_dbapi_connection, record) -> None:
    committed = record.info.pop(_COMMITTED, None) if record is not None else None
    if committed:
        kick(committed)


def kick(subscription_ids: Iterable[int]) -> None:
    """Have the subscriptions' due events delivered now (at most every KICK_EVERY_SECONDS per subscription)."""
    from campaigns import dispatch

    now = time.monotonic()
    with _kick_lock:
        due = [sid for sid in subscription_ids if _last_kick.get(sid, 0.0) + KICK_EVERY_SECONDS <= now]
        _last_kick.update(dict.fromkeys(due, now))
    if not due:
        return
    try:
        dispatch.kick_webhooks(due)
    except Exception as error:  # the broker is away: beat's sweep delivers them
        log.warning("could not publish webhook deliveries (%s); the sweep will", type(error).__name__)
