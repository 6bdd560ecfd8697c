"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from commhub.commands.common import Database
from commhub.store.migrate import pending_revisions, upgrade
from commhub.store.models import Base


async def test_schema_matches_models(db: Database) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
    assert await pending_revisions(db.engine) == []


async def test_upgrade_twice_is_harmless(db: Database) -> None:
    await upgrade(db.engine)
    assert await pending_revisions(db.engine) == []


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    if db.engine.dialect.name != "sqlite":
        return
    async with db.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
