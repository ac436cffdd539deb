"""Login throttling: after FAILURES_ALLOWED failed logins within WINDOW_SECONDS for one user name, or from one
client address, further attempts for it are refused (HTTP 429, with Retry-After) without the password being
checked, until the oldest of those failures is older than the window.

The failures are rows of `loginfailure`, so every web process counts the same ones. An attempt is written
before its password is checked (and taken back if it succeeds or is refused), and attempts for one user name or
from one address are counted one after another: of a burst of guesses, exactly FAILURES_ALLOWED are checked.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection, Engine

from campaigns.db import get_engine, is_postgres
from campaigns.models import LoginFailure, utcnow

FAILURES_ALLOWED = 5
WINDOW_SECONDS = 15 * 60
ADDRESS_MAX = 64  # LoginFailure.address


class LoginThrottled(Exception):
    """Too many recent failures for this user name or address; `retry_after_seconds` until the next try."""

    def __init__(self, retry_after_seconds: int):
        super().__init__(f"too many failed logins: retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


def attempt(user_key: str, address: str, credentials_ok: Callable[[], bool], engine: Engine | None = None) -> bool:
    """True when the login may go ahead; False when the credentials are wrong (a failure counted against
    `user_key` and `address`); LoginThrottled when refused unchecked."""
    engine = engine or get_engine()
    address = address[:ADDRESS_MAX]
    now = utcnow()
    with engine.begin() as connection:
        _one_at_a_time(connection, user_key, address)
        connection.execute(delete(LoginFailure).where(LoginFailure.at < now - timedelta(seconds=WINDOW_SECONDS)))
        attempt_id = connection.execute(
            LoginFailure.__table__.insert().values(user_key=user_key, address=address, at=now)
            .returning(LoginFailure.id)).scalar_one()
        wait = max(_seconds_until_allowed(connection, LoginFailure.user_key == user_key, attempt_id, now),
                   _seconds_until_allowed(connection, LoginFailure.address == address, attempt_id, now))
    if wait > 0:
        _forget(engine, LoginFailure.id == attempt_id)
        raise LoginThrottled(wait)
    if not credentials_ok():
        return False
    # A success forgives this user's mistakes from this address; others' failures still count.
    _forget(engine, LoginFailure.user_key == user_key, LoginFailure.address == address)
    return True


def _one_at_a_time(connection: Connection, user_key: str, address: str) -> None:
    """Attempts for the same user name or from the same address are counted one after another, so each sees
    every one before it: on Postgres, transaction locks taken user first, then address (one order: no
    deadlock); SQLite takes its one write lock at the insert and holds it to the commit."""
    if is_postgres(connection.engine):
        for kind, value in (("user", user_key), ("address", address)):
            key = zlib.crc32(f"blast-login:{kind}:{value}".encode())
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _seconds_until_allowed(connection: Connection, matches, attempt_id: int, now: datetime) -> int:
    """0 when fewer than FAILURES_ALLOWED other attempts match within the window; else the seconds until the
    oldest of the newest FAILURES_ALLOWED leaves it."""
    since = now - timedelta(seconds=WINDOW_SECONDS)
    recent = connection.execute(
        select(LoginFailure.at).where(matches, LoginFailure.id != attempt_id, LoginFailure.at >= since)
        .order_by(LoginFailure.at.desc()).limit(FAILURES_ALLOWED)).scalars().all()
    if len(recent) < FAILURES_ALLOWED:
        return 0
    leaves_window = recent[-1] + timedelta(seconds=WINDOW_SECONDS)
    return max(1, math.ceil((leaves_window - now).total_seconds()))


def _forget(engine: Engine, *conditions) -> None:
    with engine.begin() as connection:
        connection.execute(delete(LoginFailure).where(*conditions))
