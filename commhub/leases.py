"""Duties only one node may do at a time (archive a mailbox, send the outbox), on a shared PostgreSQL.

A node holds a duty while it holds the duty's advisory lock, on one connection of its own:
- a node that dies (crash, SIGKILL, lost host) closes that connection, PostgreSQL drops its locks,
  and another node takes the duty at its next check (`lease_check_seconds`);
- a node that stops answering without closing it (frozen, cut off) is ended by the server itself:
  the connection runs with `idle_session_timeout = lease_timeout_seconds`, which the holder's own
  check every `lease_check_seconds` keeps from expiring while it is alive;
- a holder that loses the connection stops its duties at once, before it tries to take them again.

Duties are idempotent underneath (the archive's unique keys and checkpoint), so the moment two nodes
may overlap after a freeze costs a retry, never a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from commhub.log import get_logger
from commhub.retry import Backoff

log = get_logger("commhub.leases")
CONNECT_TIMEOUT_S = 10.0
QUERY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Duty:
    name: str  # e.g. "mailbox:support", "outbox"
    space: int
    key: int
    run: Callable[[], Awaitable[None]]  # runs until cancelled; a cancel lets a commit in flight end


class LeaseKeeper:
    def __init__(self, dsn: str, duties: list[Duty], *, node: str, check_s: float, timeout_s: float) -> None:
        self._dsn = dsn
        self._duties = duties
        self._node = node
        self._check_s = check_s
        self._timeout_s = timeout_s
        self._running: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    def holds(self, name: str) -> bool:
        task = self._running.get(name)
        return task is not None and not task.done()

    def broken(self) -> list[str]:
        """Duties whose task ended by itself (a bug: they run until cancelled)."""
        return [name for name, task in self._running.items() if task.done()]

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep(), name="leases")

    async def stop(self) -> None:
        """Shutdown: end the duties (their commits finish), then let go of the locks for the next node."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _keep(self) -> None:
        backoff = Backoff(first=1.0, ceiling=30.0)
        while True:
            connection: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self._dsn, timeout=CONNECT_TIMEOUT_S,
                    server_settings={"idle_session_timeout": str(int(self._timeout_s * 1000)),
                                     "application_name": f"commhub leases {self._node}"[:63]})
                connection.add_termination_listener(lambda _connection: lost.set())
                self.connected = True
                backoff.reset()
                while not lost.is_set():
                    await self._take_free(connection)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._check_s):
                            await lost.wait()
                raise ConnectionError("the lease connection was closed")
            except asyncio.CancelledError:
                await self._end_duties("shutdown")
                raise
            except Exception as exc:  # noqa: BLE001 - no connection, no duties; try again after a pause
                self.connected = False
                await self._end_duties(f"{type(exc).__name__}: {exc}"[:300])
                delay = backoff.next_delay()
                log.warning("leases.connection_failed", node=self._node, error=f"{type(exc).__name__}: {exc}"[:300],
                            retry_seconds=round(delay, 1))
                await asyncio.sleep(delay)
            finally:
                self.connected = False
                if connection is not None:
                    # Closing the session is what hands the locks on; no unlock needed.
                    connection.terminate()

    async def _take_free(self, connection: asyncpg.Connection) -> None:
        """Take every duty nobody holds; the query doubles as the holder's sign of life."""
        async with asyncio.timeout(QUERY_TIMEOUT_S):
            await connection.fetchval("SELECT 1")
            for duty in self._duties:
                if duty.name in self._running:
                    continue
                if await connection.fetchval("SELECT pg_try_advisory_lock($1, $2)", duty.space, duty.key):
                    event, fields = _event(duty.name, "acquired")
                    log.info(event, **fields, node=self._node)
                    self._running[duty.name] = asyncio.create_task(duty.run(), name=duty.name)

    async def _end_duties(self, why: str) -> None:
        tasks = list(self._running.items())
        self._running.clear()
        for _name, task in tasks:
            task.cancel()
        await asyncio.gather(*(task for _name, task in tasks), return_exceptions=True)
        for name, _task in tasks:
            event, fields = _event(name, "lost")
            log.info(event, **fields, node=self._node, reason=why)



def _event(duty: str, what: str) -> tuple[str, dict[str, str]]:
    """`mail.lease_acquired mailbox=support`, `lease.acquired duty=outbox`: what an admin greps for."""
    if duty.startswith("mailbox:"):
        return f"mail.lease_{what}", {"mailbox": duty.removeprefix("mailbox:")}
    return f"lease.{what}", {"duty": duty}
