"""Login and CSRF for the operator pages.

One admin, from the environment (BLAST_ADMIN_USER / BLAST_ADMIN_PASSWORD). The session is a signed cookie
(Starlette's SessionMiddleware, itsdangerous) keyed by BLAST_SECRET_KEY, or by a key generated once into
BLAST_HOME when that is unset. Every form carries the session's CSRF token; webhooks (/hooks/*) are not
operator pages and need neither.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fastapi import Request
from starlette.middleware.sessions import SessionMiddleware

from campaigns.settings import Settings, get_settings

SESSION_COOKIE = "blast_session"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
SECRET_FILE = "web-secret-key"


class LoginRequired(Exception):
    """The request needs a logged-in operator; pages redirect to the login form, JSON answers 401."""


class CsrfRejected(Exception):
    """A form arrived without this session's CSRF token."""


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


def add_session(app) -> None:
    app.add_middleware(SessionMiddleware, secret_key=secret_key(), session_cookie=SESSION_COOKIE,
                       max_age=SESSION_SECONDS, same_site="strict", https_only=False)


def check_credentials(user: str, password: str, settings: Settings | None = None) -> bool:
    """True when both match the configured admin; always False when no admin password is configured."""
    settings = settings or get_settings()
    if settings.admin_password is None or not settings.admin_password.get_secret_value():
        return False
    expected_password = settings.admin_password.get_secret_value().encode()
    user_ok = hmac.compare_digest(user.encode(), settings.admin_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password)
    return user_ok and password_ok


def log_in(request: Request, user: str) -> None:
    request.session.clear()
    request.session["user"] = user
    request.session[CSRF_FIELD] = secrets.token_urlsafe(32)


def current_user(request: Request) -> str | None:
    return request.session.get("user")


def require_user(request: Request) -> str:
    """FastAPI dependency: the logged-in operator's name, else LoginRequired."""
    user = current_user(request)
    if not user:
        raise LoginRequired()
    return user


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use, e.g. by the login form)."""
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get(CSRF_FIELD)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfRejected()
