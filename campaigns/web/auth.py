"""Login, roles and CSRF for the operator pages.

Users are the `webuser` table's (campaigns.users: `blast user add`), each an admin, operator or viewer; the
environment's admin (BLAST_ADMIN_USER / BLAST_ADMIN_PASSWORD) logs in with the environment's password and is
kept in that table as an admin (campaigns.users.ensure_admin). Sessions are kept on the server (sessions.py):
the cookie carries a random token; logout deletes the session. Each request checks its session against the
user's row: a removed user, or a session opened under an older password (of the row, or the environment's
for its admin), is refused at once, and the role is the row's as it is now. Pages that change something need
the operator role, the users, keys and audit pages theirs (`require_role`): a role that may not gets 403. The
acting user and the client's address are told to the audit log (campaigns.audit) for the request. Failed
logins are throttled per user name and per client address (login_throttle.py). Keyed digests use
BLAST_SECRET_KEY, or a key generated once into BLAST_HOME when that is unset. Every form carries the session's
CSRF token; webhooks (/hooks/*) are not operator pages and need neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from campaigns import apikeys, audit, users
from campaigns.db import get_engine
from campaigns.models import WebSession, WebUser
from campaigns.settings import Settings, get_settings
from campaigns.web import login_throttle, sessions

SESSION_COOKIE = sessions.SESSION_COOKIE
SESSION_SECONDS = sessions.SESSION_SECONDS
CSRF_FIELD = "csrf_token"
SECRET_FILE = "web-secret-key"


class LoginRequired(Exception):
    """The request needs a logged-in operator; pages redirect to the login form, JSON answers 401."""


class CsrfRejected(Exception):
    """A form arrived without this session's CSRF token."""


class Forbidden(Exception):
    """The logged-in user's role may not do this (403)."""

    def __init__(self, needed: str, role: str | None):
        super().__init__(f"this needs the {needed} role; you are {role or 'no one'}")


LoginThrottled = login_throttle.LoginThrottled


def secret_key(settings: Settings | None = None) -> str:
    """BLAST_SECRET_KEY, else a random key kept in BLAST_HOME (so sessions survive a restart)."""
    settings = settings or get_settings()
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = Path(settings.home) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def keyed_digest(purpose: str, value: str, settings: Settings | None = None) -> str:
    """HMAC-SHA256 under the secret key: a value's stand-in that cannot be reversed or forged without it."""
    key = secret_key(settings).encode("utf-8")
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def environment_admin(settings: Settings | None = None) -> tuple[str, str] | None:
    """(BLAST_ADMIN_USER, BLAST_ADMIN_PASSWORD) when a password is configured, else None."""
    settings = settings or get_settings()
    if settings.admin_password is None or not settings.admin_password.get_secret_value():
        return None
    return settings.admin_user, settings.admin_password.get_secret_value()


def password_fingerprint(user: WebUser, settings: Settings | None = None) -> str:
    """What a session remembers of its user's password: a keyed digest of the stored hash (a new password, even
    the same one set again, is a new hash), and for the environment's admin of the environment's password too,
    so that changing BLAST_ADMIN_PASSWORD ends its sessions before anyone logs in again."""
    settings = settings or get_settings()
    material = user.password_hash
    environment = environment_admin(settings)
    if environment is not None and environment[0] == user.name:
        material += "\0" + environment[1]
    return keyed_digest("user-password", material, settings)


def session_role(record: WebSession) -> str | None:
    """The role of the session's user while the session holds: the user still exists and has the password the
    session was opened with; else None (the session is then deleted)."""
    user = users.find(get_engine(), record.user_name)
    if user is None:
        return None
    if not hmac.compare_digest(record.password_fingerprint.encode(), password_fingerprint(user).encode()):
        return None
    return user.role


def add_session(app) -> None:
    app.add_middleware(sessions.ServerSessions, role_of=session_role)


def check_credentials(user: str, password: str, settings: Settings | None = None) -> WebUser | None:
    """The user when the name and password match: the environment's admin against the environment's password
    (its row then made or updated), anyone else against their row's argon2 hash."""
    environment = environment_admin(settings)
    if environment is not None and hmac.compare_digest(user.encode(), environment[0].encode()):
        if not hmac.compare_digest(password.encode(), environment[1].encode()):
            return None
        return users.ensure_admin(get_engine(), user, password)
    return users.authenticate(get_engine(), user, password)


def client_address(request: Request) -> str:
    """The client's address (behind a proxy, uvicorn's --proxy-headers gives the forwarded one)."""
    return request.client.host if request.client else "unknown"


def attempt_login(request: Request, user: str, password: str) -> WebUser | None:
    """The user when the credentials are right, else None; LoginThrottled when this user name or address has
    failed too often lately (then the password is not even checked)."""
    found: list[WebUser] = []

    def credentials_ok() -> bool:
        account = check_credentials(user, password)
        if account is not None:
            found.append(account)
        return account is not None

    accepted = login_throttle.attempt(keyed_digest("login-user", user), client_address(request), credentials_ok)
    return found[0] if accepted else None


def log_in(request: Request, user: WebUser) -> None:
    handle = sessions.handle_of(request)
    sessions.open_session(handle, user.name, password_fingerprint(user))
    handle.role = user.role


def log_out(request: Request) -> None:
    sessions.end_session(sessions.handle_of(request))


def current_user(request: Request) -> str | None:
    record = sessions.handle_of(request).record
    return record.user_name if record is not None else None


def current_role(request: Request) -> str | None:
    return sessions.handle_of(request).role


async def require_user(request: Request) -> str:
    """FastAPI dependency: the logged-in user's name, else LoginRequired; from here on in this request the
    audit log records their changes as theirs, from their address. (A coroutine, so the actor is set in the
    request's own context, which the route's thread then copies.)"""
    user = current_user(request)
    if not user:
        raise LoginRequired()
    audit.act_as(audit.Actor(user, client_address(request)))
    return user


def require_role(needed: str):
    """FastAPI dependency: the logged-in user's name when their role may do what `needed` may, else Forbidden."""

    async def check(request: Request, user: Annotated[str, Depends(require_user)]) -> str:
        role = current_role(request)
        if role is None or not apikeys.allows(role, needed):
            raise Forbidden(needed, role)
        return user

    return check


def may(request: Request, needed: str) -> bool:
    role = current_role(request)
    return role is not None and apikeys.allows(role, needed)


def csrf_token(request: Request) -> str:
    """This session's CSRF token; for an anonymous visitor (the login form), one derived from their token."""
    handle = sessions.handle_of(request)
    if handle.record is not None:
        return handle.record.csrf_token
    return keyed_digest("login-csrf", sessions.anonymous_token(handle))


def check_csrf(request: Request, submitted: str | None) -> None:
    handle = sessions.handle_of(request)
    expected = csrf_token(request) if handle.record is not None or handle.token is not None else None
    if not expected or not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfRejected()
