"""Alembic migrations, run from inside commhub (`commhub db upgrade`, and `serve` at start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from commhub.store.locks import MIGRATION_LOCK

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Nodes starting together: one migrates, the others wait here and then find nothing to do
            # (the lock ends with the transaction, and PostgreSQL's DDL is part of it).
            await connection.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                                     dict(zip(("space", "key"), MIGRATION_LOCK, strict=True)))
        await connection.run_sync(run)


def schema_heads() -> frozenset[str]:
    """The revisions a current schema has applied."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def pending_revisions(engine: AsyncEngine) -> list[str]:
    """Revisions not yet applied, oldest first (empty when the schema is current)."""
    script = ScriptDirectory.from_config(alembic_config())

    def read(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        current = await connection.run_sync(read)
    if current == set(script.get_heads()):
        return []
    pending = script.iterate_revisions("heads", tuple(current) or "base")
    return [revision.revision for revision in pending][::-1]  # alembic walks from the head down
