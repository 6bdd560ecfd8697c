"""A migrated SQLite database made once and copied for each test: a fresh database per test without
running the migrations each time (the suites that send hundreds of requests per route use it)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from commhub.commands.common import open_database
from commhub.settings import DatabaseSettings, Settings


def migrated_template(directory: Path) -> Path:
    path = directory / "commhub.db"

    async def migrate() -> None:
        async with open_database(Settings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))):
            pass

    asyncio.run(migrate())
    return path


def fresh_copy(template: Path, directory: Path) -> str:
    """The template copied into `directory`; its database URL."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{template}{suffix}").exists():
            shutil.copy(f"{template}{suffix}", directory / f"commhub.db{suffix}")
    return f"sqlite+aiosqlite:///{directory / 'commhub.db'}"
