"""Write transactions, one at a time, each in as few thread hops as the backend allows.

On SQLite every statement through aiosqlite is a hop to its thread and back (measured here:
0.36 ms for `SELECT 1`, against 0.016 ms for a whole indexed query in sqlite3), and a call event
needs about ten statements. So on SQLite the whole transaction runs in one dedicated thread with a
synchronous connection: one hop per event. On PostgreSQL the same synchronous code runs through
the async session (`run_sync`), each statement awaiting asyncpg.

The work functions are plain synchronous SQLAlchemy code taking a `Session`; they return plain
data, never ORM objects (which would be detached from the writer's session).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from commhub.store.db import SQLITE_BUSY_TIMEOUT_MS, sqlite_path, sqlite_pragmas

T = TypeVar("T")
Work = Callable[[Session], T]


class Writer:
    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._lock = asyncio.Lock()
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        path = sqlite_path(url)
        if path is not None:
            self._engine = create_sync_engine(f"sqlite+pysqlite:///{path}", connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
            event.listen(self._engine, "connect", sqlite_pragmas)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commhub-writer")

    async def run(self, work: Work[T], on_error: Callable[[], None] | None = None) -> T:
        """Run `work` in one transaction. Transactions run one after the other, in the order asked
        for, and callers resume in that order: what they do next (push messages) keeps it too.
        `on_error` runs, still in that order, when the transaction fails."""
        if self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._in_thread, work, on_error)
        async with self._lock:
            try:
                async with self._sessions() as session, session.begin():
                    return await session.run_sync(work)
            except BaseException:
                if on_error is not None:
                    on_error()
                raise

    def _in_thread(self, work: Work[T], on_error: Callable[[], None] | None) -> T:
        assert self._engine is not None
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                return work(session)
        except BaseException:
            if on_error is not None:
                on_error()
            raise

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._engine is not None:
            self._engine.dispose()
