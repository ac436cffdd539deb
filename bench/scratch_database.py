"""A Postgres database of the benchmark's own: created empty on the local server when a benchmark starts and
dropped when it is done, so that a benchmark never shares tables with the test suite or another benchmark.

BLAST_BENCH_POSTGRES_URL (or BLAST_BENCH_POSTGRES, or the suite's BLAST_TEST_POSTGRES_URL) names the server to
create it on, as the URL of a database there that the benchmark may connect to.
"""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text

ADMIN_URL = (os.environ.get("BLAST_BENCH_POSTGRES_URL") or os.environ.get("BLAST_BENCH_POSTGRES")
             or os.environ.get("BLAST_TEST_POSTGRES_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def create(admin_url: str = ADMIN_URL, *, prefix: str = "blast_bench") -> str:
    """A new, empty database on the server of `admin_url`; its URL (`drop` removes it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _execute(admin_url, f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop(url: str, admin_url: str = ADMIN_URL) -> None:
    """The database of `url` gone, with Blast's pool of connections to it."""
    from campaigns.db import engine_for

    engine_for(url).dispose()
    _execute(admin_url, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _execute(admin_url: str, statement: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()
