"""Runs the call path's transactions, one at a time, as cheaply as the backend allows.

SQLite: on the event loop's own thread, through a sqlite3 connection that never waits for a lock
(`busy_timeout = 0`). A call event's transaction costs a few tenths of a millisecond there,
less than one hop to a worker thread, and the loop has no thread to share the GIL with. Only when
another writer holds the database (an import, a migration) does the transaction go to a worker
thread with its own connection that may wait, so the loop never blocks on a lock.
Its automatic WAL checkpoints are off (they fsync, ~ms): `checkpoint()` runs them in a thread.

PostgreSQL: through the async session, the same SQL via SQLAlchemy `text()`.

Transactions run strictly in the order asked for, and each caller resumes before the next runs,
so what callers do right after (push the messages) keeps that order too.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commhub.log import get_logger

from commhub.store.call_sql import CallSql
from commhub.store.db import SQLITE_BUSY_TIMEOUT_MS, sqlite_path, sqlite_pragmas
from commhub.store.sql_db import SessionDb, in_write_transaction

T = TypeVar("T")
# Page cache of the call path's connection (KiB). The default 2 MB misses on every index of a large
# database; 16 MB holds the hot pages of the call, message and history indexes.
CACHE_KIB = 16 * 1024
Work = Callable[[CallSql], T]
# PostgreSQL: a call event's transaction (its wait for its turn included) takes milliseconds. One that
# has not ended after this gives up: a server that stopped answering without closing its connections
# (frozen, or its host gone from the network) would otherwise hold every webhook for asyncpg's
# command_timeout (60 s), one after the other behind the lock, while the phone system has long given up.
# Given up, the webhook answers 503 with Retry-After and the phone system sends the event again.
POSTGRES_DEADLINE_S = 5.0
DEADLOCK = "40P01"
DEADLOCK_ATTEMPTS = 3
log = get_logger("commhub.calls")


def _sqlite_connection(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sqlite_pragmas(connection, None)  # the engine's: WAL, synchronous=NORMAL, foreign keys
    connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return connection


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class CallDatabase:
    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.lock = asyncio.Lock()
        self._path = sqlite_path(url)
        self._loop_connection: sqlite3.Connection | None = None
        self._waiting_connection: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        if self._path is not None:
            self._loop_connection = _sqlite_connection(self._path, 0)
            self._loop_connection.execute("PRAGMA wal_autocheckpoint=0")
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commhub-calls")

    def deadline(self) -> AbstractAsyncContextManager[object]:
        """Bounds the call path's database work on PostgreSQL (TimeoutError, a 503 for the webhook).
        SQLite needs none: a local file does not stop answering, and a lock is waited for busy_timeout."""
        return asyncio.timeout(POSTGRES_DEADLINE_S) if self._loop_connection is None else nullcontext()

    async def run(self, work: Work[T], on_error: Callable[[], None] | None = None) -> T:
        """Run `work` in one transaction; `on_error` runs (in order) when it fails. On PostgreSQL the
        wait for its turn and the transaction together end within the deadline."""
        async with self.deadline(), self.lock:
            try:
                if self._loop_connection is None:
                    return await self._postgres(work)
                try:
                    return _transaction(self._loop_connection, work, immediate_fail=True)
                except _Busy:
                    assert self._thread is not None
                    return await asyncio.get_running_loop().run_in_executor(self._thread, self._waiting, work)
            except BaseException:
                if on_error is not None:
                    on_error()
                raise

    async def _postgres(self, work: Work[T]) -> T:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                async with self._sessions() as session, session.begin():
                    return await session.run_sync(lambda sync: work(CallSql(SessionDb(sync))))
            except DBAPIError as exc:
                # Two nodes' transactions each waiting for a lock the other holds (an agent's
                # sequence, a call): PostgreSQL ends one of them, which simply runs again.
                if getattr(exc.orig, "sqlstate", None) != DEADLOCK or attempt == DEADLOCK_ATTEMPTS:
                    raise
                log.info("calls.deadlock_retried", attempt=attempt)
        raise AssertionError("unreachable")

    def _waiting(self, work: Work[T]) -> T:
        if self._waiting_connection is None:
            assert self._path is not None
            self._waiting_connection = _sqlite_connection(self._path, SQLITE_BUSY_TIMEOUT_MS)
        return _transaction(self._waiting_connection, work, immediate_fail=False)

    async def checkpoint(self) -> None:
        """Move the WAL into the database file (what the loop connection does not do itself)."""
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)

    def _checkpoint(self) -> None:
        if self._waiting_connection is None:
            assert self._path is not None
            self._waiting_connection = _sqlite_connection(self._path, SQLITE_BUSY_TIMEOUT_MS)
        self._waiting_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        for connection in (self._loop_connection, self._waiting_connection):
            if connection is not None:
                connection.close()


class _Busy(Exception):  # noqa: N818 - control flow: another writer holds the database
    pass


def _transaction(connection: sqlite3.Connection, work: Work[T], *, immediate_fail: bool) -> T:
    try:
        return in_write_transaction(connection, lambda db: work(CallSql(db)))
    except sqlite3.OperationalError as exc:
        # Only BEGIN IMMEDIATE can meet another writer's lock (once taken, nothing else waits for one),
        # and nothing was written yet: the work may run again on the waiting connection.
        if immediate_fail and _is_busy(exc):
            raise _Busy from exc
        raise
