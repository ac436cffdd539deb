"""The one way a message (and a campaign) changes state: a conditional UPDATE that refuses illegal transitions.

`UPDATE message SET state = :to ... WHERE id IN (:ids) AND state IN (:expected)` — a worker, webhook or
reconciler that loses a race changes nothing and learns so from the row count. That is what makes
redelivered or duplicated Celery tasks, replayed webhooks and out-of-order reports harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, cast, func, literal, or_, update
from sqlalchemy.dialects.postgresql import ARRAY

from campaigns.db import is_postgres
from campaigns.models import Campaign, Message, utcnow
from campaigns.states import ALLOWED, CAMPAIGN_MOVES, CampaignStatus, MessageState, PauseReason
from campaigns.webhooks import outbox

# The timestamp column stamped when a message enters a state.
STAMPS = {
    MessageState.QUEUED: "queued_at",
    MessageState.SUBMITTED: "submitted_at",
    MessageState.SENT: "sent_at",
    MessageState.DELIVERED: "delivered_at",
    MessageState.READ: "read_at",
    MessageState.FAILED: "failed_at",
}
# Ids per statement: below SQLite's bound-parameter limit, large enough to be cheap on Postgres.
CHUNK = 5000


class IllegalTransition(ValueError):
    """A (from, to) pair the state machine does not allow."""


def sources(to: MessageState) -> tuple[MessageState, ...]:
    """Every state a message may enter `to` from."""
    return tuple(sorted({src for src, dst in ALLOWED if dst == to}))


def check(expected: Iterable[MessageState], to: MessageState) -> tuple[MessageState, ...]:
    expected = tuple(MessageState(state) for state in expected)
    if not expected:
        raise IllegalTransition(f"no expected state given for a transition to {to}")
    for state in expected:
        if (state, MessageState(to)) not in ALLOWED:
            raise IllegalTransition(f"a message may not go from {state} to {to}")
    return expected


def transition(
    connection,
    message_ids: int | Sequence[int],
    *,
    expected: MessageState | Iterable[MessageState],
    to: MessageState,
    now: datetime | None = None,
    returning: bool | Sequence = False,
    **values,
) -> int | list:
    """Move the messages that are still in `expected` to `to`; return how many moved.

    With `returning=True` the moved ids are returned instead; with a list of columns, their rows.
    `connection` is a SQLAlchemy Connection or Session; the caller commits. `values` are other columns
    to set in the same statement (provider_message_id, error_code, attempts=Message.attempts + 1, ...).
    The moves are reported to the webhook subscribers that want them, in the same transaction (outbox).
    """
    if isinstance(expected, str):
        expected = (expected,)
    expected = check(expected, to)
    ids = [message_ids] if isinstance(message_ids, int) else list(message_ids)
    now = now or utcnow()
    assignments = {"state": MessageState(to).value, "updated_at": now, **values}
    if (stamp := STAMPS.get(MessageState(to))) and stamp not in assignments:
        assignments[stamp] = now
    moved: list[int] = []
    count = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        statement = (
            update(Message)
            .where(Message.id.in_(chunk), Message.state.in_([state.value for state in expected]))
            .values(**assignments)
            .execution_options(synchronize_session=False)
        )
        if returning is True:
            moved.extend(connection.execute(statement.returning(Message.id)).scalars())
        elif returning:
            moved.extend(connection.execute(statement.returning(*returning)).all())
        else:
            count += connection.execute(statement).rowcount
    outbox.messages_moved(connection, ids, to, now)
    return moved if returning else count


def transition_each(
    connection,
    rows: Sequence[dict],
    *,
    expected: MessageState | Iterable[MessageState],
    to: MessageState,
    now: datetime | None = None,
) -> int:
    """Like `transition`, with values of its own for each message: `rows` are dicts with `id` and the
    same other keys. One statement on Postgres, one executemany on SQLite; returns how many moved (where the
    driver reports it)."""
    if not rows:
        return 0
    if isinstance(expected, str):
        expected = (expected,)
    expected = check(expected, to)
    now = now or utcnow()
    keys = sorted(set(rows[0]) - {"id"})
    assignments = {"state": MessageState(to).value, "updated_at": now}
    if (stamp := STAMPS.get(MessageState(to))) and stamp not in keys:
        assignments[stamp] = now
    table = Message.__table__
    if is_postgres(connection.engine):
        # one statement for every row, the same text whatever their number (compiled once): each column's
        # values as one array, unnest(...) AS incoming(id, ...) joined on id
        names = ["id", *keys]
        incoming = func.unnest(*(cast(bindparam(f"a_{name}"), ARRAY(table.c[name].type)) for name in names)
                               ).table_valued(*names).render_derived(name="incoming")
        assignments.update({key: incoming.c[key] for key in keys})
        statement = (
            update(table)
            .where(table.c.id == incoming.c.id, table.c.state.in_([state.value for state in expected]))
            .values(**assignments)
        )
        parameters = {f"a_{name}": [row[name] for row in rows] for name in names}
        if outbox.wants_status(connection, to):  # the events' data returned by the same statement
            moved_rows = connection.execute(statement.returning(*outbox.STATUS_COLUMNS), parameters).all()
            outbox.messages_status(connection, moved_rows, now)
            return len(moved_rows)
        return connection.execute(statement, parameters).rowcount
    assignments.update({key: bindparam(f"v_{key}") for key in keys})
    statement = (
        update(table)
        .where(table.c.id == bindparam("v_id"),
               # not IN (...): an expanding parameter cannot go into an executemany
               or_(*(table.c.state == literal(state.value) for state in expected)))
        .values(**assignments)
    )
    parameters = [{f"v_{key}": value for key, value in row.items()} for row in rows]
    moved = connection.execute(statement, parameters).rowcount
    outbox.messages_moved(connection, [row["id"] for row in rows], to, now)
    return moved


def move_campaigns(
    connection,
    *,
    where: Sequence,
    expected: CampaignStatus | Iterable[CampaignStatus],
    to: CampaignStatus,
    reason: PauseReason | None = None,
    detail: str | None = None,
    **values,
) -> int:
    """The one way a campaign's status changes: the campaigns matching `where` (SQLAlchemy conditions) that
    are still in `expected` move to `to`; returns how many.

    A pause carries its `reason` (a PauseReason) and optional `detail`; leaving `paused` clears both. `values`
    are other columns set in the same statement (started_at, finished_at, resumed_at, ...). A start, pause or
    finish is reported to the webhook subscribers that want it, in the same transaction (outbox).
    """
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    for state in expected:
        if (CampaignStatus(state), CampaignStatus(to)) not in CAMPAIGN_MOVES:
            raise IllegalTransition(f"a campaign may not go from {state} to {to}")
    if (to == CampaignStatus.PAUSED) != (reason is not None):
        raise ValueError("a pause, and only a pause, carries a PauseReason")
    if to == CampaignStatus.PAUSED:
        values.update(pause_reason=PauseReason(reason).value, pause_detail=detail or None)
    elif CampaignStatus.PAUSED in expected:
        values.update(pause_reason=None, pause_detail=None)
    statement = (
        update(Campaign)
        .where(*where, Campaign.status.in_([CampaignStatus(state).value for state in expected]))
        .values(status=CampaignStatus(to).value, **values)
        .execution_options(synchronize_session=False)
    )
    if event_type := outbox.wants_campaign_event(connection, to, values):
        moved = connection.execute(statement.returning(Campaign.id, Campaign.name)).all()
        outbox.campaigns_moved(connection, event_type, moved, reason=values.get("pause_reason"))
        return len(moved)
    return connection.execute(statement).rowcount
