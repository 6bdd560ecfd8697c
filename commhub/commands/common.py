"""What every CLI verb needs: settings, an upgraded database, and a clean way to fail."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commhub.settings import Settings
from commhub.store.db import create_engine, session_factory
from commhub.store.migrate import upgrade


@dataclass(slots=True)
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Database]:
    """The configured database, migrated to the current schema (CLI verbs work on a fresh install)."""
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    try:
        if migrate:
            await upgrade(engine)
        yield Database(engine, session_factory(engine))
    finally:
        await engine.dispose()


def err(message: str) -> None:
    print(message, file=sys.stderr)
