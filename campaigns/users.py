"""The people who log in to the web app: `blast user add|list|remove`, each with a role (campaigns.apikeys.ROLES:
a viewer reads; an operator also launches and controls campaigns, schedules and opt-outs, and uploads lists; an
admin also manages API keys, users and webhooks).

Passwords are kept as argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile), never as
themselves. Removing a user, or changing their password, deletes their web sessions in the same transaction,
and the web app checks each request's session against the user's current hash (campaigns.web.auth): either
way their open sessions end at once. The last admin cannot be removed: nobody could manage users any more.

The environment's admin (BLAST_ADMIN_USER with BLAST_ADMIN_PASSWORD): `ensure_admin` upserts it when it logs in
with the environment's password, as an admin whose password is the environment's. The environment wins over
the table for that name: a row of that name is made an admin and given the environment's password, and while
BLAST_ADMIN_PASSWORD is set only that password logs that name in, and `blast user remove` of it lasts until
its next login. Once the environment stops naming it, the row stays an ordinary admin with the last password
the environment gave. Its upsert is recorded in the audit log as the system's (`user.add`, or `user.password`
when the environment's password changed).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from campaigns import audit
from campaigns.apikeys import check_role
from campaigns.errors import BlastError, NotFound
from campaigns.models import WebSession, WebUser, utcnow

NAME_MAX = 100
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # argon2 takes any length; a megabyte "password" would only cost us time
# argon2id, 64 MiB, 3 passes, 4 lanes: argon2-cffi's default. (The tests swap in its cheapest profile, as test
# settings usually do: half a second per login on a busy test machine adds up over the web tests.)
HASH_PARAMETERS = profiles.RFC_9106_LOW_MEMORY


def _hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(HASH_PARAMETERS)


@lru_cache(maxsize=1)
def _stand_in_hash() -> str:
    """A hash no password matches, verified for names that do not exist, so a wrong name takes as long as a
    wrong password (the answer's time does not tell which names exist)."""
    return _hasher().hash("no user has this password: it only costs the same time")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or any(unicodedata.category(char).startswith("C") for char in name):
        raise BlastError(f"a user's name is 1 to {NAME_MAX} printable characters")
    return name


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise BlastError(f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password


def add(engine: Engine, name: str, role: str, password: str) -> None:
    name, role = check_name(name), check_role(role)
    password_hash = hash_password(check_password(password))
    now = utcnow()
    try:
        with engine.begin() as connection:
            connection.execute(insert(WebUser).values(name=name, role=role, password_hash=password_hash,
                                                      created_at=now, password_changed_at=now))
            audit.record(connection, "user.add", "user", name, {"role": role})
    except IntegrityError:
        raise BlastError(f"a user named {name!r} exists already") from None


def listing(engine: Engine) -> list[dict]:
    """Every user's name, role and times: never a password nor its hash."""
    with engine.connect() as connection:
        rows = connection.execute(select(WebUser).order_by(WebUser.name)).all()
    return [{"name": row.name, "role": row.role, "created_at": row.created_at.isoformat(),
             "password_changed_at": row.password_changed_at.isoformat()} for row in rows]


def find(engine: Engine, name: str) -> WebUser | None:
    with engine.connect() as connection:
        row = connection.execute(select(WebUser).where(WebUser.name == name)).first()
    return WebUser.model_validate(row._mapping) if row is not None else None


def remove(engine: Engine, name: str) -> None:
    """The user goes and their sessions with them; refused (BlastError) for the last admin."""
    with engine.begin() as connection:
        # Every admin row locked first (Postgres; SQLite writes one at a time anyway): two admins removing each
        # other at once are then counted one after the other, and the second is refused.
        connection.execute(select(WebUser.id).where(WebUser.role == "admin").with_for_update()).all()
        removed = connection.execute(delete(WebUser).where(WebUser.name == name).returning(WebUser.role)).first()
        if removed is None:
            raise NotFound(f"no user named {name!r}")
        admins_left = connection.execute(
            select(func.count()).select_from(WebUser).where(WebUser.role == "admin")).scalar_one()
        if removed.role == "admin" and admins_left == 0:
            raise BlastError(f"{name!r} is the last admin: add another admin first, or nobody could manage "
                             "users and keys any more")
        connection.execute(delete(WebSession).where(WebSession.user_name == name))
        audit.record(connection, "user.remove", "user", name, {"role": removed.role})


def set_password(engine: Engine, name: str, password: str) -> None:
    """A new password; the user's open sessions end."""
    password_hash = hash_password(check_password(password))
    with engine.begin() as connection:
        changed = connection.execute(update(WebUser).where(WebUser.name == name)
                                     .values(password_hash=password_hash, password_changed_at=utcnow())).rowcount
        if not changed:
            raise NotFound(f"no user named {name!r}")
        connection.execute(delete(WebSession).where(WebSession.user_name == name))
        audit.record(connection, "user.password", "user", name)


def authenticate(engine: Engine, name: str, password: str) -> WebUser | None:
    """The user, when the name exists and the password is theirs; None otherwise (after the same work)."""
    user = find(engine, name) if name and len(name) <= NAME_MAX else None
    if user is None:
        password_matches(_stand_in_hash(), password)
        return None
    return user if password_matches(user.password_hash, password) else None


def ensure_admin(engine: Engine, name: str, password: str) -> WebUser:
    """The environment's admin, as a row: made if missing, else made an admin with this password if it was not
    one already (sessions opened under another password are refused: their fingerprint no longer matches,
campaigns.web.auth). Called after the password was checked
    against the environment's, so only one login in a change of BLAST_ADMIN_PASSWORD pays for a new hash."""
    user = find(engine, name)
    if user is not None and user.role == "admin" and password_matches(user.password_hash, password):
        return user
    password_hash, now = hash_password(password), utcnow()
    detail = {"role": "admin", "source": "BLAST_ADMIN_USER"}
    if user is None:
        try:
            with engine.begin() as connection:
                connection.execute(insert(WebUser).values(name=name, role="admin", password_hash=password_hash,
                                                          created_at=now, password_changed_at=now))
                audit.record(connection, "user.add", "user", name, detail)
        except IntegrityError:  # another web process made it in the same moment (with this password): it is there
            pass
    else:
        with engine.begin() as connection:
            connection.execute(update(WebUser).where(WebUser.name == name)
                               .values(role="admin", password_hash=password_hash, password_changed_at=now))
            audit.record(connection, "user.password", "user", name, detail)
    return find(engine, name)
