"""The test Postgres database, emptied between tests that share it."""

from __future__ import annotations

from sqlalchemy import text

from campaigns import db


def truncate_all(url: str) -> None:
    """Every table of the database emptied (the migrations' own table kept), ids restarted."""
    engine = db.engine_for(url)
    with engine.begin() as connection:
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables"
                 " WHERE schemaname = 'public' AND tablename != 'alembic_version'")
        ).scalars().all()
        if tables:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
