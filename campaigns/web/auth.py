"""Login and CSRF for the operator pages.

One admin, from the environment (BLAST_ADMIN_USER / BLAST_ADMIN_PASSWORD). Sessions are kept on the server
(sessions.py): the cookie carries a random token; logout deletes the session, and a session opened under
another admin password (or name) is refused. Failed logins are throttled per user name and per client address
(login_throttle.py). Keyed digests use BLAST_SECRET_KEY, or a key generated once into BLAST_HOME when that is
unset. Every form carries the session's CSRF token; webhooks (/hooks/*) are not operator pages and need
neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from fastapi import Request

from campaigns.models import WebSession
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


def password_fingerprint(settings: Settings | None = None) -> str | None:
    """The admin password's fingerprint, which each session remembers; None when no password is configured."""
    settings = settings or get_settings()
    if settings.admin_password is None or not settings.admin_password.get_secret_value():
        return None
    return keyed_digest("admin-password", settings.admin_password.get_secret_value(), settings)


def session_still_valid(record: WebSession) -> bool:
    """A session holds only while the admin it was opened for has the same name and password."""
    settings = get_settings()
    fingerprint = password_fingerprint(settings)
    return (fingerprint is not None
            and hmac.compare_digest(record.user_name.encode(), settings.admin_user.encode())
            and hmac.compare_digest(record.password_fingerprint.encode(), fingerprint.encode()))


def add_session(app) -> None:
    app.add_middleware(sessions.ServerSessions, still_valid=session_still_valid)


def check_credentials(user: str, password: str, settings: Settings | None = None) -> bool:
    """True when both match the configured admin; always False when no admin password is configured."""
    settings = settings or get_settings()
    if settings.admin_password is None or not settings.admin_password.get_secret_value():
        return False
    expected_password = settings.admin_password.get_secret_value().encode()
    user_ok = hmac.compare_digest(user.encode(), settings.admin_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password)
    return user_ok and password_ok


def client_address(request: Request) -> str:
    """The client's address (behind a proxy, uvicorn's --proxy-headers gives the forwarded one)."""
    return request.client.host if request.client else "unknown"


def attempt_login(request: Request, user: str, password: str) -> bool:
    """True when the credentials are right; LoginThrottled when this user name or address has failed too
    often lately (then the password is not even checked)."""
    return login_throttle.attempt(keyed_digest("login-user", user), client_address(request),
                                  lambda: check_credentials(user, password))


def log_in(request: Request, user: str) -> None:
    fingerprint = password_fingerprint()
    if fingerprint is None:
        raise LoginRequired()
    sessions.open_session(sessions.handle_of(request), user, fingerprint)


def log_out(request: Request) -> None:
    sessions.end_session(sessions.handle_of(request))


def current_user(request: Request) -> str | None:
    record = sessions.handle_of(request).record
    return record.user_name if record is not None else None


def require_user(request: Request) -> str:
    """FastAPI dependency: the logged-in operator's name, else LoginRequired."""
    user = current_user(request)
    if not user:
        raise LoginRequired()
    return user


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
