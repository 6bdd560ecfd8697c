"""Duties one node at a time (commhub/leases.py), on a real PostgreSQL: who holds, who takes over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from support.pgcluster import PostgresCluster

from commhub.leases import Duty, LeaseKeeper
from commhub.push.bus import asyncpg_dsn
from commhub.store.locks import MAILBOX_LOCKS, mailbox_key


@pytest.fixture
async def dsn(pg_cluster: PostgresCluster) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    yield asyncpg_dsn(url)
    pg_cluster.drop_database(name)


class Worker:
    """A duty's body: counts its runs, and whether a cancel let its current step finish."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.running = False
        self.runs = 0
        self.finished_steps = 0

    async def run(self) -> None:
        self.runs += 1
        self.running = True
        try:
            while True:
                step = asyncio.ensure_future(asyncio.sleep(0.05))
                try:
                    await asyncio.shield(step)
                except asyncio.CancelledError:
                    await step
                    self.finished_steps += 1
                    raise
        finally:
            self.running = False


def keeper(dsn: str, node: str, worker: Worker, *, timeout_s: float = 20) -> LeaseKeeper:
    duty = Duty("mailbox:support", MAILBOX_LOCKS, mailbox_key("support"), worker.run)
    return LeaseKeeper(dsn, [duty], node=node, check_s=0.2, timeout_s=timeout_s)


async def until(condition, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_one_node_holds_a_duty_and_another_takes_it_when_the_connection_dies(dsn: str) -> None:
    first, second = Worker("a"), Worker("b")
    a, b = keeper(dsn, "node-a", first), keeper(dsn, "node-b", second)
    a.start()
    await until(lambda: a.holds("mailbox:support"))
    b.start()
    await until(lambda: b.connected)
    await asyncio.sleep(0.6)  # three of b's checks
    assert not b.holds("mailbox:support") and second.runs == 0
    # What a killed node leaves: its session gone.
    admin = await asyncpg.connect(dsn)
    ended = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = 'commhub leases node-a' "
                                 "AND datname = current_database()")  # other tests' nodes share the server
    assert ended == 1
    taken_after = await until(lambda: b.holds("mailbox:support") and second.running)
    assert taken_after < 2
    await until(lambda: not first.running)  # a stopped it as soon as it noticed
    assert first.finished_steps == 1
    await admin.close()
    for node in (a, b):
        await node.stop()
    assert not second.running and second.finished_steps == 1


async def test_a_node_that_stops_answering_loses_its_duties_to_the_server(dsn: str) -> None:
    """A frozen holder never closes its connection; `idle_session_timeout` (which the keeper sets on
    its lease connection and refreshes with each check) makes PostgreSQL end it."""
    frozen = await asyncpg.connect(dsn, server_settings={"idle_session_timeout": "1500"})
    assert await frozen.fetchval("SELECT pg_try_advisory_lock($1, $2)", MAILBOX_LOCKS, mailbox_key("support"))
    worker = Worker("b")
    b = keeper(dsn, "node-b", worker)
    b.start()
    await until(lambda: b.connected)
    assert not b.holds("mailbox:support")
    taken_after = await until(lambda: b.holds("mailbox:support"), timeout=10)
    assert 0.5 < taken_after < 5
    assert frozen.is_closed() or await _closed(frozen)
    await b.stop()


async def _closed(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError):
        return True
    return False


async def test_a_live_holder_keeps_its_duty_past_the_idle_timeout(dsn: str) -> None:
    worker, other = Worker("a"), Worker("b")
    a, b = keeper(dsn, "node-a", worker, timeout_s=1), keeper(dsn, "node-b", other, timeout_s=1)
    a.start()
    await until(lambda: a.holds("mailbox:support"))
    b.start()
    await asyncio.sleep(3)  # three idle timeouts; a's checks every 0.2 s keep its session alive
    assert a.holds("mailbox:support") and worker.runs == 1 and other.runs == 0
    await a.stop()  # shutdown hands it on at once
    assert await until(lambda: b.holds("mailbox:support")) < 2
    await b.stop()
