"""API keys for /api/v1: made by `blast apikey create`, shown once, kept only as their SHA-256.

A key is 32 random bytes (URL-safe base64) after the prefix `blast_`: too long to guess, so one SHA-256 is
the right hash for it (a slow password hash would cost every API request tens of milliseconds for nothing).
Roles nest: a viewer reads; an operator also launches and controls campaigns, schedules and opt-outs; an
admin also manages keys, users and webhooks. A revoked key is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from campaigns import audit
from campaigns.errors import BlastError
from campaigns.models import ApiKey, aware, utcnow

ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
PREFIX = "blast_"
# last_used_at is written at most this often per key (every request would be a write).
USE_RECORDED_EVERY = timedelta(seconds=60)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BlastError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def allows(role: str, needed: str) -> bool:
    """Whether `role` may do what `needed` may."""
    return ROLES.index(role) >= ROLES.index(needed)


def create(engine: Engine, name: str, role: str) -> str:
    """A new key named `name`; returns the key itself, which is not kept."""
    name = name.strip()
    if not name or len(name) > 100:
        raise BlastError("a key's name is 1 to 100 characters")
    key = PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as connection:
            connection.execute(ApiKey.__table__.insert().values(
                name=name, role=check_role(role), key_hash=digest(key), created_at=utcnow()))
            audit.record(connection, "apikey.create", "apikey", name, {"role": role})
    except IntegrityError:
        raise BlastError(f"a key named {name!r} exists already") from None
    return key


def listing(engine: Engine) -> list[dict]:
    """Every key's name, role and times: never the key nor its hash."""
    with engine.connect() as connection:
        rows = connection.execute(select(ApiKey).order_by(ApiKey.id)).all()
    return [{"name": row.name, "role": row.role, "created_at": row.created_at.isoformat(),
             "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
             "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None} for row in rows]


def revoke(engine: Engine, name: str) -> bool:
    with engine.begin() as connection:
        revoked = bool(connection.execute(update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
                                          .values(revoked_at=utcnow())).rowcount)
        if revoked:
            audit.record(connection, "apikey.revoke", "apikey", name)
    return revoked


def authenticate(engine: Engine, key: str) -> ApiKey | None:
    """The key's row, when the key is one of ours and not revoked (its last use recorded)."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    now = utcnow()
    with engine.connect() as connection:
        row = connection.execute(select(ApiKey).where(ApiKey.key_hash == digest(key))).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    last = aware(row.last_used_at)
    if last is None or last < now - USE_RECORDED_EVERY:
        with engine.begin() as connection:
            connection.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return row
