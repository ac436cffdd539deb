"""Delivery: status events from webhooks and polled reports are stored in `statusevent` and applied to
the messages with the same conditional updates as everything else (campaigns.transitions).

Out-of-order and replayed events are harmless: a message only moves forward (submitted -> sent ->
delivered -> read), and an event only applies to the message whose *current* provider id it names.
A THROTTLED event (Devino 2301: accepted, then dropped for rate) puts the message back to `pending` once:
the move clears the provider id, so a replay of the same callback, or a second 2301 for the old send,
no longer matches the message, and the resend goes through the normal pacer.

An event that names no known message (a callback faster than the worker recording the provider id) is
kept with applied=False; `apply_waiting` applies it once the message carries that id. An event that names
no known message but echoes our id (Devino's callbackData) for a message left `unknown` by an ambiguous
answer resolves it: the message takes the event's provider id, `submitted`, and the event applies.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine

from campaigns import failover
from campaigns.events import CODE_MAX, ID_MAX, REASON_MAX, Inbound, StatusUpdate, clean_text, printable_problem
from campaigns.models import Campaign, Message, StatusEvent, utcnow
from campaigns.states import CampaignStatus, EventKind, MessageState, Outcome
from campaigns.transitions import sources, transition, transition_each

logger = logging.getLogger(__name__)
M = MessageState
RESEND_DELAY_SECONDS = 2.0  # a THROTTLED message waits this long before the pacer may queue it again
TARGETS = {EventKind.SENT: M.SENT, EventKind.DELIVERED: M.DELIVERED, EventKind.READ: M.READ}
# Applied in this order within one batch, so a batch holding sent, read and delivered of one message
# (in any order) leaves it read.
ORDER = (EventKind.SENT, EventKind.DELIVERED, EventKind.READ, EventKind.FAILED, EventKind.THROTTLED)
# A delivery report can only concern a message the gateway has (or may have) accepted.
REPORTED = (M.SUBMITTED, M.SENT, M.DELIVERED, M.UNKNOWN)


def effective_kind(update_: StatusUpdate) -> EventKind:
    """Devino 2305 (not on WhatsApp) and other recipient codes fail the message whatever the word."""
    if update_.kind != EventKind.THROTTLED and update_.outcome == Outcome.RECIPIENT:
        return EventKind.FAILED
    return update_.kind


def apply_updates(engine: Engine, account_name: str, updates: Sequence[StatusUpdate], *,
                  source: str = "webhook") -> dict[str, int]:
    """Store every update and apply those whose message is known; one transaction, a few statements.

    Returns counts: `stored` (events kept), `matched` (naming a message's current provider id), `moved`
    (messages whose state changed), `waiting` (kept for later: no message carries that id yet), `rejected`
    (read but not appliable, a field out of range: kept raw for a human as kind "rejected", never applied).
    """
    counts = {"stored": 0, "matched": 0, "moved": 0, "waiting": 0, "rejected": 0}
    updates = [_cleaned(item) for item in updates]
    rejected = [item for item in updates if item.problem]
    updates = [item for item in updates if not item.problem]
    if not updates and not rejected:
        return counts
    with engine.begin() as connection:
        if rejected:
            connection.execute(StatusEvent.__table__.insert(), [_rejected_row(account_name, item, source)
                                                                 for item in rejected])
            counts["stored"] = counts["rejected"] = len(rejected)
            logger.warning("%d %s event(s) for account %s stored for a human (statusevent kind %r), not applied:"
                           " %s", len(rejected), source, account_name, REJECTED, rejected[0].problem)
        if not updates:
            return counts
        by_provider_id = _messages_by_provider_id(connection, account_name,
                                                  {u.provider_message_id for u in updates})
        by_reference = _messages_by_reference(connection, account_name, updates)
        by_provider_id.update(_resolve_unknown_by_reference(
            connection, [u for u in updates if u.provider_message_id not in by_provider_id], by_reference))
        events, matched = [], []
        now = utcnow()
        for item in updates:
            message_id = by_provider_id.get(item.provider_message_id)
            if message_id is not None:
                matched.append((message_id, item))
            events.append({
                "message_id": message_id if message_id is not None else by_reference.get(item.reference),
                "account_name": account_name,
                "provider_message_id": item.provider_message_id,
                "kind": effective_kind(item).value,
                "error_code": item.error_code or None,
                "source": source[:16],
                "occurred_at": item.occurred_at,
                "received_at": now,
                "applied": message_id is not None,
                "raw": raw_text(item.raw),
            })
        connection.execute(StatusEvent.__table__.insert(), events)
        counts["stored"] += len(events)
        counts["matched"] = len(matched)
        counts["waiting"] = len(events) - len(matched)
        counts["moved"] = _apply(connection, matched)
    return counts


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Our ids are at most 19 digits (a 64-bit integer): a longer "reference" is not one of ours.
REFERENCE = re.compile(r"^[0-9]{1,18}\Z")
STOP_TEXT_MAX = 200  # an inbound message is read for a STOP keyword by its first 200 characters


# statusevent.kind of an event that was read but cannot be applied (StatusUpdate.problem): kept for a human,
# never applied (its provider_message_id is left empty, so apply_waiting never matches it).
REJECTED = "rejected"
RAW_MAX = 64 * 1024  # characters of a gateway's item kept in statusevent.raw


def raw_text(raw) -> str:
    """The gateway's item as JSON text for statusevent.raw: ASCII (NULs and lone surrogates escaped, so any
    database takes it), at most RAW_MAX characters (a longer one keeps its beginning, marked truncated)."""
    try:
        text = json.dumps(dict(raw), default=str, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps({"unreadable": repr(raw)[:RAW_MAX]})
    if len(text) > RAW_MAX:
        text = json.dumps({"truncated": True, "beginning": text[:RAW_MAX]})
    return text


def _problem(item: StatusUpdate) -> str | None:
    """Why an update read from a gateway cannot be applied: a field out of range for its column, or holding
    what a database refuses (NUL, lone surrogates) or no gateway sends (control characters)."""
    if item.problem:
        return item.problem
    if not isinstance(item.provider_message_id, str) or not item.provider_message_id.strip():
        return "no message id"
    if problem := printable_problem("message id", item.provider_message_id, ID_MAX):
        return problem
    if item.error_code is not None:
        if not isinstance(item.error_code, str):
            return "error code is not text"
        if problem := printable_problem("error code", item.error_code, CODE_MAX):
            return problem
    return None


def _cleaned(item: StatusUpdate) -> StatusUpdate:
    """The update checked field by field before it reaches the database: an id or error code out of range
    makes it a rejected one (StatusUpdate.problem, stored raw for a human); free text (the reason) loses
    control characters and is bounded; a reference is kept only when it can be one of our ids; a time
    that is not an aware datetime is dropped."""
    reference = item.reference if isinstance(item.reference, str) and REFERENCE.match(item.reference) else None
    occurred = item.occurred_at if isinstance(item.occurred_at, datetime) and item.occurred_at.tzinfo else None
    cleaned = replace(item, reason=clean_text(item.reason, REASON_MAX), reference=reference, occurred_at=occurred,
                      error_code=item.error_code or None)
    problem = _problem(cleaned)
    if problem:
        return replace(cleaned, problem=problem[:200], reference=None)
    return cleaned


def _rejected_row(account_name: str, item: StatusUpdate, source: str) -> dict:
    """A statusevent row for an update that cannot be applied: the gateway's item raw, the problem in
    error_code, no message and no provider id (so nothing ever applies it)."""
    return {"message_id": None, "account_name": account_name, "provider_message_id": None, "kind": REJECTED,
            "error_code": clean_text(item.problem, CODE_MAX), "source": source[:16],
            "occurred_at": item.occurred_at, "received_at": utcnow(), "applied": False,
            "raw": raw_text(item.raw)}


def _messages_by_provider_id(connection, account_name: str, provider_ids: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    ids = sorted(provider_ids)
    for start in range(0, len(ids), 5000):
        rows = connection.execute(
            select(Message.provider_message_id, Message.id)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(Message.provider_message_id.in_(ids[start:start + 5000]), failover.sent_through(account_name))
        )
        found.update({provider_id: message_id for provider_id, message_id in rows})
    return found


def _messages_by_reference(connection, account_name: str, updates: Iterable[StatusUpdate]) -> dict[str, int]:
    """Our message id echoed back by the gateway (Devino callbackData), for events still waiting."""
    references = {u.reference for u in updates if u.reference}
    if not references:
        return {}
    rows = connection.execute(
        select(Message.id).join(Campaign, Campaign.id == Message.campaign_id)
        .where(Message.id.in_([int(ref) for ref in references]), failover.sent_through(account_name))
    ).scalars()
    return {str(message_id): message_id for message_id in rows}


def _resolve_unknown_by_reference(connection, updates: Sequence[StatusUpdate], by_reference: dict[str, int]
                                  ) -> dict[str, int]:
    """Messages left `unknown` that a callback names by our id: they take its provider id (`submitted`), so
    the callback, and every later one for that id, applies. Returns provider id -> message id."""
    resolved: dict[str, int] = {}
    for item in updates:
        message_id = by_reference.get(item.reference) if item.reference else None
        if message_id is None or item.provider_message_id in resolved or not item.provider_message_id:
            continue
        if transition(connection, message_id, expected=M.UNKNOWN, to=M.SUBMITTED,
                      provider_message_id=item.provider_message_id[:100], error_code=None, error_reason=None):
            resolved[item.provider_message_id] = message_id
    return resolved


def _apply(connection, matched: list[tuple[int, StatusUpdate]]) -> int:
    moved = 0
    grouped: dict[EventKind, list[tuple[int, StatusUpdate]]] = {}
    for message_id, item in matched:
        grouped.setdefault(effective_kind(item), []).append((message_id, item))
    for kind in ORDER:
        group = grouped.get(kind)
        if not group:
            continue
        ids = sorted({message_id for message_id, _ in group})
        if kind in TARGETS:
            target = TARGETS[kind]
            moved += transition(connection, ids, expected=sources(target), to=target)
        elif kind == EventKind.FAILED:
            rows = {message_id: {"id": message_id, "error_code": (item.error_code or "failed")[:64],
                                 "error_reason": item.reason or "failed at the gateway"}
                    for message_id, item in group}
            moved += transition_each(connection, list(rows.values()),
                                     expected=[s for s in sources(M.FAILED) if s in REPORTED], to=M.FAILED)
        else:  # THROTTLED: send again, once (the cleared provider id is what makes it once)
            resent = transition(connection, ids, expected=(M.SUBMITTED, M.SENT), to=M.PENDING,
                                provider_message_id=None, submitted_at=None, sent_at=None,
                                next_attempt_at=utcnow() + timedelta(seconds=RESEND_DELAY_SECONDS))
            if resent:
                _reopen_finished(connection, ids)
            moved += resent
    return moved


def _reopen_finished(connection, message_ids: list[int]) -> None:
    """A 2301 may come after the campaign's last send finished it: running again, so the pacer sends it.
    In a cancelled campaign the message is cancelled instead; a paused one waits for the operator."""
    from campaigns.lifecycle import reopen_finished

    reopen_finished(connection, select(Message.campaign_id).where(Message.id.in_(message_ids),
                                                                  Message.state == M.PENDING))
    in_cancelled = connection.execute(
        select(Message.id).join(Campaign, Campaign.id == Message.campaign_id)
        .where(Message.id.in_(message_ids), Message.state == M.PENDING,
               Campaign.status == CampaignStatus.CANCELLED)).scalars().all()
    if in_cancelled:
        transition(connection, list(in_cancelled), expected=M.PENDING, to=M.CANCELLED)


def adopt_waiting_references(connection) -> int:
    """Messages left `unknown` that a kept event names by our id (a callback that came while the worker was
    still recording the ambiguous answer) take that event's provider id and become `submitted`, so the
    event, and every later one for that id, applies. Returns how many were adopted."""
    event = StatusEvent.__table__
    rows = connection.execute(
        select(Message.id, func.min(event.c.provider_message_id).label("provider_message_id"))
        .join(event, event.c.message_id == Message.id)
        .where(event.c.applied.is_(False), event.c.provider_message_id.is_not(None),
               Message.state == M.UNKNOWN, Message.provider_message_id.is_(None))
        .group_by(Message.id)
    ).all()
    adopted = 0
    for row in rows:
        adopted += transition(connection, row.id, expected=M.UNKNOWN, to=M.SUBMITTED,
                              provider_message_id=row.provider_message_id, error_code=None, error_reason=None)
    return adopted


def apply_waiting(engine: Engine, *, limit: int = 5000) -> int:
    """Apply kept events whose message now carries their provider id; returns how many were applied."""
    event = StatusEvent.__table__
    with engine.begin() as connection:
        adopt_waiting_references(connection)
        rows = connection.execute(
            select(event.c.id, event.c.kind, event.c.error_code, event.c.raw, event.c.account_name,
                   Message.id.label("message_id"))
            .join(Message, Message.provider_message_id == event.c.provider_message_id)
            .join(Campaign, (Campaign.id == Message.campaign_id)
                  & (failover.message_account() == event.c.account_name))
            .where(event.c.applied.is_(False))
            .order_by(event.c.id)
            .limit(limit)
        ).all()
        if not rows:
            return 0
        matched = [(row.message_id, StatusUpdate(provider_message_id="", kind=EventKind(row.kind),
                                                 error_code=row.error_code,
                                                 reason=_reason(row.account_name, row.kind, row.error_code)))
                   for row in rows]
        _apply(connection, matched)
        connection.execute(
            update(event).where(event.c.id == bindparam("event_id"))
            .values(applied=True, message_id=bindparam("matched_id")),
            [{"event_id": row.id, "matched_id": row.message_id} for row in rows],
        )
    return len(rows)


def _reason(account_name: str, kind: str, error_code: str | None) -> str | None:
    """A kept failure's reason in its gateway's words (the gateway's own table of error codes)."""
    if kind != EventKind.FAILED:
        return None
    from campaigns.dispatch import gateway_reason
    from campaigns.settings import ConfigError, get_account

    try:
        reason = gateway_reason(get_account(account_name).provider, error_code) if error_code else None
    except (ConfigError, ValueError):
        reason = None
    return reason or f"failed at the gateway ({error_code or 'no code'})"


def apply_inbound(engine: Engine, account_name: str, inbound: Sequence[Inbound], *, source: str = "webhook") -> int:
    """Incoming messages: each opens its sender's customer-service window on the account (campaigns.service_window),
    and a STOP puts its sender on the opt-out list. Returns how many numbers were new on the list."""
    from campaigns import optouts, service_window

    with engine.begin() as connection:  # every message from a number opens its customer-service window
        service_window.record(connection, account_name, [
            (item.from_phone, item.received_at) for item in inbound
            if isinstance(item.from_phone, str) and E164.fullmatch(item.from_phone)])
    phones = [item.from_phone for item in inbound
              if isinstance(item.from_phone, str) and E164.fullmatch(item.from_phone)
              and optouts.is_stop(clean_text(item.text, STOP_TEXT_MAX) or "")]
    added = optouts.add(engine, phones, reason="replied STOP", source=f"{source}:{account_name}")
    if added:
        _pause_on_optout_spikes(engine, phones)
    return added


def _pause_on_optout_spikes(engine: Engine, phones: list[str]) -> None:
    """The running campaigns that messaged these numbers pause if their opt-out rate is now over their account's
    threshold (campaigns.spikes)."""
    from campaigns import spikes
    from campaigns.settings import ConfigError, get_account

    with engine.begin() as connection:
        running = connection.execute(
            select(Campaign.id, Campaign.account_name).distinct()
            .join(Message, Message.campaign_id == Campaign.id)
            .where(Message.phone.in_(sorted(set(phones))), Campaign.status == CampaignStatus.RUNNING.value)).all()
        for campaign_id, account_name in running:
            try:
                account = get_account(account_name)
            except ConfigError:  # an account blast.toml no longer names: its campaigns cannot send anyway
                continue
            if (spike := spikes.optouts_spike(connection, campaign_id, account)) is not None:
                spikes.pause(connection, campaign_id, spike)
