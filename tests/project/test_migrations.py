"""Alembic: upgrade from empty works on both databases, and the models and the migrations agree."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

import campaigns.models  # noqa: F401
from campaigns.db import alembic_config


def test_upgrade_from_empty_creates_every_table(engine):
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_models_and_migrations_agree(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_migrate_twice_is_harmless(database_url):
    from campaigns.db import migrate

    # given a database already at the newest migration
    migrate(database_url)
    engine = create_engine(database_url)
    before = _schema(engine)
    # when it is migrated again
    migrate(database_url)
    # then it is still at the one newest revision, with the same tables and columns
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    assert _schema(engine) == before
    engine.dispose()


def _schema(engine) -> dict[str, list[str]]:
    inspector = inspect(engine)
    return {table: sorted(column["name"] for column in inspector.get_columns(table))
            for table in inspector.get_table_names()}
