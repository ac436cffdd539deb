"""The audit log: who changed what, on which object, when and from where; appended, never edited.

Who is context, not a parameter: each interface says who is acting before it calls the domain, and the
domain's functions that change something call `record()` inside the very transaction of the change, so a
change and its audit row commit together or not at all.

- the pages: the logged-in user's name and the client's address (campaigns.web.auth.require_user);
- the API: `key:<name>` of the API key and the client's address (campaigns.web.api.auth);
- the command line: `cli:<os user>` and the address `cli` (campaigns.cli, for every command that is not a
  long-running process);
- nobody said (beat firing a reminder schedule, a recipient's STOP arriving by webhook): `system`, address `-`.
  Workers' automatic pauses (quota, auth, content, ...) and the reconciler's repairs are not operator actions
  and are not recorded: the campaign's pause reason and the messages' states already tell them.

Actions, `<object type>.<verb>`: campaign.launch, campaign.create (a draft, not started), campaign.pause,
campaign.resume, campaign.cancel, campaign.retry, campaign.discard (a launch whose list could not be read),
schedule.add, schedule.change, schedule.remove, optout.add, optout.remove, apikey.create, apikey.revoke,
user.add, user.remove, user.password; webhook.add and webhook.remove for outbound webhook subscriptions.

Details are small JSON objects of public facts (a role, a count, a reason): never a password, a hash or a key.
A URL goes in as `shown_url(url)` (no user info, query or fragment, where tokens hide): a webhook subscription
is recorded as `record(connection, "webhook.add", "webhook", subscription_id, {"url": shown_url(url),
"events": events})`, in the transaction that stores it.
The table refuses UPDATE and DELETE (triggers, migration 0009); no code path here does either.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from campaigns.models import AuditEntry, aware, utcnow

CLI_ADDRESS = "cli"
SYSTEM_ADDRESS = "-"
# The JSON keys of `blast audit --json` and of listing(), in this order.
FIELDS = ("at", "actor", "action", "object_type", "object_id", "address", "detail")


@dataclass(frozen=True)
class Actor:
    """Who is acting (a user's name, `key:<name>`, `cli:<os user>`, `system`) and from which address."""

    name: str
    address: str


SYSTEM = Actor("system", SYSTEM_ADDRESS)
_current: ContextVar[Actor | None] = ContextVar("blast_audit_actor", default=None)


def current() -> Actor:
    return _current.get() or SYSTEM


def act_as(actor: Actor) -> Token:
    """From now on in this context (a request, a command) changes are `actor`'s; `stop_acting(token)` undoes."""
    return _current.set(actor)


def stop_acting(token: Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = act_as(actor)
    try:
        yield actor
    finally:
        stop_acting(token)


def key_actor(key_name: str, address: str) -> Actor:
    return Actor(f"key:{key_name}", address)


def cli_actor() -> Actor:
    """`cli:<the operating system's user>` (its uid where the system has no name for it, as in some containers)."""
    try:
        who = getpass.getuser()
    except (OSError, KeyError):
        who = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return Actor(f"cli:{who}", CLI_ADDRESS)


def shown_url(url: str) -> str:
    """A URL as the audit log may keep it: scheme, host, port and path; no user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return urlunsplit((parts.scheme, f"{host}:{port}" if port else host, parts.path, "", ""))


def record(connection, action: str, object_type: str, object_id, detail: dict | None = None) -> None:
    """Append one entry for the current actor, in the caller's transaction (a Connection or a Session)."""
    actor = current()
    connection.execute(insert(AuditEntry).values(_row(actor, action, object_type, object_id, detail)))


def record_many(connection, action: str, object_type: str, object_ids, detail: dict | None = None) -> None:
    """One entry per object (e.g. each number opted out), in one statement."""
    actor = current()
    rows = [_row(actor, action, object_type, object_id, detail) for object_id in object_ids]
    if rows:
        connection.execute(insert(AuditEntry), rows)


def _row(actor: Actor, action: str, object_type: str, object_id, detail: dict | None) -> dict:
    return {"at": utcnow(), "actor": actor.name[:200], "action": action, "object_type": object_type,
            "object_id": str(object_id)[:200], "address": actor.address[:64],
            "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None}


def listing(engine: Engine, limit: int | None = 100) -> list[dict]:
    """The newest entries first, each with FIELDS' keys (`detail` a dict or None, `at` ISO 8601 UTC)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if limit is not None:
        query = query.limit(max(0, limit))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [{"at": aware(row.at).isoformat(), "actor": row.actor, "action": row.action,
             "object_type": row.object_type, "object_id": row.object_id, "address": row.address,
             "detail": json.loads(row.detail) if row.detail else None} for row in rows]
