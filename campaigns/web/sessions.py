"""Operator sessions kept on the server: the cookie carries a random token, the `websession` row the rest.

Logout deletes the row, so a copied cookie stops working at once; a session ends 12 hours after login. A
visitor without a live session is anonymous: their token (made when the login form first needs it) only keys
the form's CSRF token, derived from it in auth.py, so anonymous visitors write nothing to the database.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import Engine
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from campaigns.db import get_engine
from campaigns.models import WebSession, utcnow
from campaigns.settings import get_settings

SESSION_COOKIE = "blast_session"
SESSION_SECONDS = 12 * 3600
# Webhooks and static files never read the session: their requests cost no database lookup.
SESSIONLESS_PATHS = ("/hooks/", "/static/")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_HANDLE = "blast.session"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass
class SessionHandle:
    """This request's session: the cookie's token, the live row (None when anonymous), its user's role now, its
    flash notes (what `request.session` shows) and the Set-Cookie to send, if any."""

    token: str | None
    record: WebSession | None = None
    role: str | None = None
    data: dict = field(default_factory=dict)
    stored_data: str = "{}"
    set_cookie: str | None = None

    def data_changed(self) -> bool:
        return self.record is not None and _encoded(self.data) != self.stored_data


def handle_of(connection: HTTPConnection) -> SessionHandle:
    return connection.scope[_HANDLE]


def _encoded(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def cookie_header(value: str, max_age: int | None) -> str:
    """HttpOnly (no script reads it) and SameSite=Lax always; Secure when BLAST_COOKIE_SECURE is set."""
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
        if max_age <= 0:
            parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if get_settings().cookie_secure:
        parts.append("Secure")
    return "; ".join(parts)


def anonymous_token(handle: SessionHandle) -> str:
    """The visitor's token, made (and sent as a browser-session cookie) on first need."""
    if handle.token is None:
        handle.token = new_token()
        handle.set_cookie = cookie_header(handle.token, None)
    return handle.token


def open_session(handle: SessionHandle, user_name: str, password_fingerprint: str,
                 engine: Engine | None = None) -> None:
    """Log in: a fresh token (the anonymous one is never promoted, so a planted cookie gains nothing), a row
    for it, and the expired rows and this user's rows from an older password cleared away."""
    engine = engine or get_engine()
    now = utcnow()
    token = new_token()
    record = WebSession(token_hash=token_hash(token), user_name=user_name,
                        password_fingerprint=password_fingerprint, csrf_token=secrets.token_urlsafe(32),
                        created_at=now, expires_at=now + timedelta(seconds=SESSION_SECONDS))
    stale = or_(WebSession.expires_at <= now,
                and_(WebSession.user_name == user_name, WebSession.password_fingerprint != password_fingerprint))
    with engine.begin() as connection:
        if handle.token is not None:
            connection.execute(delete(WebSession).where(WebSession.token_hash == token_hash(handle.token)))
        connection.execute(delete(WebSession).where(stale))
        connection.execute(WebSession.__table__.insert().values(**record.model_dump()))
    handle.token, handle.record = token, record
    handle.role = None  # the caller, who knows the user, says it
    handle.data.clear()
    handle.stored_data = "{}"
    handle.set_cookie = cookie_header(token, SESSION_SECONDS)


def end_session(handle: SessionHandle, engine: Engine | None = None) -> None:
    """Log out: the row goes (the token is worthless from now on, wherever it was copied) and the cookie too."""
    if handle.token is not None:
        with (engine or get_engine()).begin() as connection:
            connection.execute(delete(WebSession).where(WebSession.token_hash == token_hash(handle.token)))
    handle.token, handle.record, handle.role = None, None, None
    handle.data.clear()
    handle.set_cookie = cookie_header("", 0)


def load_session(token: str, role_of: Callable[[WebSession], str | None],
                 engine: Engine | None = None) -> tuple[WebSession, str] | None:
    """The live session for this token and its user's role (`role_of`); an expired one, or one whose role is
    None (its user removed, or their password changed since), is deleted."""
    engine = engine or get_engine()
    key = token_hash(token)
    with engine.connect() as connection:
        row = connection.execute(select(WebSession).where(WebSession.token_hash == key)).first()
    if row is None:
        return None
    record = WebSession.model_validate(row._mapping)
    role = role_of(record) if record.expires_at > utcnow() else None
    if role is not None:
        return record, role
    with engine.begin() as connection:
        connection.execute(delete(WebSession).where(WebSession.token_hash == key))
    return None


def save_data(handle: SessionHandle, engine: Engine | None = None) -> None:
    encoded = _encoded(handle.data)
    with (engine or get_engine()).begin() as connection:
        connection.execute(update(WebSession).where(WebSession.token_hash == handle.record.token_hash)
                           .values(data=encoded))
    handle.stored_data = encoded


def _cookie_token(scope) -> str | None:
    token = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
    return token if token and _TOKEN_SHAPE.fullmatch(token) else None


class ServerSessions:
    """ASGI middleware: loads the session before the app runs (as `request.session`, the flash notes, and
    the handle auth.py reads), stores changed notes and sends the cookie with the response's headers."""

    def __init__(self, app, role_of: Callable[[WebSession], str | None]):
        self.app = app
        self.role_of = role_of

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _cookie_token(scope)
        record, role = None, None
        if token is not None and not scope["path"].startswith(SESSIONLESS_PATHS):
            found = await anyio.to_thread.run_sync(load_session, token, self.role_of)
            if found is not None:
                record, role = found
        handle = SessionHandle(token=token, record=record, role=role)
        if record is not None:
            handle.data.update(json.loads(record.data or "{}"))
            handle.stored_data = _encoded(handle.data)
        scope["session"] = handle.data
        scope[_HANDLE] = handle

        async def send_with_session(message):
            if message["type"] == "http.response.start":
                if handle.data_changed():
                    await anyio.to_thread.run_sync(save_data, handle)
                if handle.set_cookie is not None:
                    MutableHeaders(scope=message).append("set-cookie", handle.set_cookie)
            await send(message)

        await self.app(scope, receive, send_with_session)
