"""Shared fixtures: a fresh database per test (SQLite and the real Postgres), and a clean Blast home."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text

from campaigns import db
from campaigns.settings import reset_settings
from tests.support import services
from tests.support.databases import truncate_all

BACKENDS = ["sqlite", "postgres"]

# The tests send to the same few numbers from one test to the next, seconds apart: spacing per recipient (6 s by
# default, WhatsApp's pair rate) is off for them and for the processes they start, and on where it is the subject
# (tests/engine/test_spacing.py); `blast demo`'s test runs with the default.
os.environ.setdefault("BLAST_PAIR_INTERVAL_SECONDS", "0")


@pytest.fixture(scope="session")
def postgres_server_url():
    """A database of our own on the real Postgres server, migrated once, dropped at the end."""
    services.require("postgres")
    admin_url = services.POSTGRES_URL
    name = f"blast_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    db.migrate(url)
    yield url
    db.engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch):
    """argon2's cheapest parameters in this process (same algorithm and format): Blast's own, 64 MiB and three
    passes, take half a second per hash on a busy machine, and the web tests log in often."""
    from argon2 import profiles

    from campaigns import users

    monkeypatch.setattr(users, "HASH_PARAMETERS", profiles.CHEAPEST)


@pytest.fixture
def blast_home(tmp_path, monkeypatch):
    """BLAST_HOME in a temporary folder; settings re-read from the environment."""
    home = tmp_path / "blast-home"
    monkeypatch.setenv("BLAST_HOME", str(home))
    monkeypatch.setenv("BLAST_CONFIG", str(tmp_path / "blast.toml"))
    monkeypatch.delenv("BLAST_DATABASE_URL", raising=False)
    monkeypatch.delenv("BLAST_BROKER_URL", raising=False)
    monkeypatch.delenv("BLAST_REDIS_URL", raising=False)
    reset_settings()
    yield home
    reset_settings()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """One migrated SQLite file; each test gets a copy (migrating per test would dominate the suite)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "blast.db"
    url = f"sqlite:///{path.as_posix()}"
    db.migrate(url)
    db.engine_for(url).dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request, blast_home, monkeypatch):
    """A migrated, empty database: SQLite in the test's folder, or the test Postgres database."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server_url")
        truncate_all(url)
    else:
        path = blast_home / "blast.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path.as_posix()}"
    monkeypatch.setenv("BLAST_DATABASE_URL", url)
    reset_settings()
    yield url
    if request.param == "sqlite":
        db.engine_for(url).dispose()


@pytest.fixture
def engine(database_url):
    return db.engine_for(database_url)


@pytest.fixture
def redis_url():
    services.require("redis")
    return services.REDIS_URL


@pytest.fixture
def rabbitmq_url():
    services.require("rabbitmq")
    return services.RABBITMQ_URL


@pytest.fixture(scope="module")
def running_sandbox():
    """One `blast sandbox` subprocess per test module."""
    from tests.support.sandbox import Sandbox

    with Sandbox() as running:
        yield running


@pytest.fixture
def sandbox(running_sandbox):
    """The module's sandbox, back to its built-in accounts and default knobs, with nothing recorded."""
    running_sandbox.reset(all=True)
    return running_sandbox


@pytest.fixture
def receiver():
    """A receiver for the gateways' callbacks and the web app's webhooks."""
    from tests.support.hooks import Receiver

    with Receiver() as running:
        yield running


def pytest_report_header(config):
    ci = os.environ.get("CI", "") == "true"
    found = {name: services.available(name) for name in ("redis", "postgres", "rabbitmq")}
    return "servers: " + ", ".join(f"{n}={'up' if up else 'missing'}" for n, up in found.items()) + (
        " (CI=true: missing servers fail their tests)" if ci else ""
    )
