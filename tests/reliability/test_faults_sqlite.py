"""The SQLite database stops taking writes while `commhub serve` runs: webhooks answer 503 with
Retry-After, nothing is half-written, and the same process stores the phone system's retry once.

How the writes are made to fail, and why not with chmod: permissions are checked when a file is
opened, and commhub opens its database once. Its call-path connection, the mail thread's and the
engine's pooled connections keep file descriptors open for writing (the database, its -wal and its
-shm), so a `chmod a-w` of the files and the directory, even with the server running as an
unprivileged user, changes nothing for them: the writes go on succeeding (measured; only a connection
opened later is read-only). What does make a running process's writes fail is the kernel refusing
them: the test lowers the server process's RLIMIT_FSIZE to 0 (prlimit(2) on its pid), after which
every write(2) to a regular file fails with EFBIG, on descriptors already open, in every thread;
SQLite reports that as "disk I/O error", as it reports a failing disk (EIO) or a file system
remounted read-only. Reads still work, as on such a disk. Raising the limit again is the disk
coming back. The server's log goes through a pipe (see support/faults.py), as to journald.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.commhub_process import SOURCE, SOURCE_SECRET
from support.faults import FaultyCommhub, call_event, contact_file
from support.phone import AgentClient

TIMEOUT = aiohttp.ClientTimeout(total=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FaultyCommhub]:
    server = FaultyCommhub(tmp_path)
    server.cli("db", "upgrade")
    server.anna = server.add_agent("anna", "10")  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def post(http: aiohttp.ClientSession, server: FaultyCommhub, body: dict[str, Any]
               ) -> tuple[int, dict[str, str], Any, float]:
    started = time.perf_counter()
    async with http.post(f"{server.base}/hooks/{SOURCE}?token={SOURCE_SECRET}", json=body) as response:
        payload = await response.json(content_type=None) if response.status >= 400 else await response.text()
        return response.status, dict(response.headers), payload, time.perf_counter() - started


def auth(server: FaultyCommhub) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.anna}"}  # type: ignore[attr-defined]


async def create_contact(http: aiohttp.ClientSession, server: FaultyCommhub) -> int:
    async with http.post(f"{server.base}/api/contacts", json=contact_file(), headers=auth(server)) as response:
        assert response.status == 201, await response.text()
        return int((await response.json())["id"])


async def api_note(http: aiohttp.ClientSession, server: FaultyCommhub, contact_id: int, text: str
                   ) -> tuple[int, dict[str, str], Any]:
    """A note on the contact's file, through the REST API."""
    async with http.post(f"{server.base}/api/contacts/{contact_id}/notes", json={"text": text},
                         headers=auth(server)) as response:
        return response.status, dict(response.headers), await response.json()


async def until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.1)


def read_db(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """What is committed, read by another connection (the server's writes fail, reads do not)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def snapshot(path: Path) -> dict[str, int]:
    tables = ("calls", "call_events", "history_entries", "history_links", "tasks", "agent_messages")
    return {table: read_db(path, f"SELECT count(*) FROM {table}")[0][0] for table in tables}


def assert_whole(path: Path) -> None:
    """Every call has its events, every history entry its call, every ended call one entry, every missed
    call its task, every agent's messages a gapless sequence; the file itself is sound."""
    assert read_db(path, "PRAGMA integrity_check") == [("ok",)]
    assert read_db(path, "PRAGMA foreign_key_check") == []
    assert read_db(path, "SELECT id FROM calls c WHERE NOT EXISTS "
                         "(SELECT 1 FROM call_events e WHERE e.call_id = c.id)") == []
    assert read_db(path, "SELECT id FROM history_entries h WHERE h.kind = 'call' AND (h.call_id IS NULL OR "
                         "NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = h.call_id))") == []
    assert read_db(path, "SELECT c.id FROM calls c WHERE c.ended_at IS NOT NULL AND (SELECT count(*) FROM "
                         "history_entries h WHERE h.call_id = c.id AND h.kind = 'call') != 1") == []
    assert read_db(path, "SELECT id FROM history_entries h WHERE NOT EXISTS "
                         "(SELECT 1 FROM history_links l WHERE l.entry_id = h.id)") == []
    assert read_db(path, "SELECT c.id FROM calls c WHERE c.state = 'missed' AND NOT EXISTS "
                         "(SELECT 1 FROM tasks t WHERE t.id = c.task_id)") == []
    assert read_db(path, "SELECT agent_id FROM agent_messages GROUP BY agent_id "
                         "HAVING max(seq) != count(*) OR min(seq) != 1") == []


async def test_an_unwritable_database_answers_503_and_the_same_process_stores_the_retry_once(
        server: FaultyCommhub) -> None:
    database = server.workdir / "commhub.db"
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        agent = await AgentClient.connect(server.base, server.anna)  # type: ignore[attr-defined]
        try:
            contact_id = await create_contact(http, server)
            status, _, _, _ = await post(http, server, call_event("ringing", "before-1", "2026-11-24T09:00:00Z"))
            assert status == 200
            assert (await agent.next_of("call.ringing"))["call"]["provider_call_id"] == "before-1"
            before = snapshot(database)

            # The disk refuses writes. A new call, and the end of the ringing one (a missed call: its
            # history entry, its callback task and two messages): both refused whole, every time.
            ringing = call_event("ringing", "during-1", "2026-11-24T09:01:00Z")
            ended = call_event("ended", "before-1", "2026-11-24T09:01:30Z", outcome="missed")
            pid = server.pid
            server.refuse_writes()
            refused_at = time.perf_counter()
            try:
                refusals = []
                for _attempt in range(3):  # the phone system retries while the disk is still gone
                    for body in (ringing, ended):
                        status, headers, payload, seconds = await post(http, server, body)
                        assert status == 503, payload
                        assert payload["error"]["code"] == "unavailable"
                        assert "database" in payload["error"]["message"]
                        assert int(headers["Retry-After"]) > 0
                        assert headers["Content-Type"].startswith("application/json")
                        refusals.append(seconds)
                # A REST write is refused the same way (through the engine's pooled connection).
                status, headers, payload = await api_note(http, server, contact_id, "während des Ausfalls")
                assert status == 503 and payload["error"]["code"] == "unavailable" and "Retry-After" in headers
                assert await agent.nothing_within(0.5)  # no pop for what was not stored
                # Stay down until the background WAL checkpoint has failed too (it runs every 5 s):
                # its connection must come back as well.
                await until(lambda: bool(server.events("database.checkpoint_failed")), 20)
                outage_s = time.perf_counter() - refused_at
                assert snapshot(database) == before
            finally:
                server.allow_writes()
            allowed = time.monotonic()
            checkpoint_failures = len(server.events("database.checkpoint_failed"))
            assert server.pid == pid and server.process is not None and server.process.poll() is None
            assert_whole(database)

            # The disk is back: the phone system's next retry is stored, once, by the same process.
            recovered = time.perf_counter()
            status, headers, _, _ = await post(http, server, ringing)
            assert status == 200
            recovery_s = time.perf_counter() - recovered
            during_call = headers["X-Commhub-Calls"]
            status, _, _, _ = await post(http, server, ended)
            assert status == 200
            for body in (ringing, ended):  # a retry whose 2xx got lost on the way: stored once still
                assert (await post(http, server, body))[0] == 200
            pop = await agent.next_of("call.ringing")
            assert pop["call"]["provider_call_id"] == "during-1" and str(pop["call"]["id"]) == during_call
            assert pop["matches"] and pop["matches"][0]["name"].startswith("Jürgen")
            received = [await agent.next() for _ in range(2)]
            assert sorted(m["type"] for m in received) == ["call.ended", "task.created"]
            assert await agent.nothing_within(0.5)  # each message once
            status, _, _ = await api_note(http, server, contact_id, "nach dem Ausfall")
            assert status == 201
        finally:
            await agent.close()

    # The next WAL checkpoint (every 5 s) works again on the same connection.
    await asyncio.sleep(max(0.0, allowed + 6.0 - time.monotonic()))
    assert len(server.events("database.checkpoint_failed")) == checkpoint_failures
    assert_whole(database)
    assert read_db(database, "SELECT provider_call_id, state FROM calls ORDER BY id") == [
        ("before-1", "missed"), ("during-1", "ringing")]
    assert read_db(database, "SELECT c.provider_call_id, e.phase, count(*) FROM call_events e JOIN calls c "
                             "ON c.id = e.call_id GROUP BY c.provider_call_id, e.phase ORDER BY 1, 2") == [
        ("before-1", "ended", 1), ("before-1", "ringing", 1), ("during-1", "ringing", 1)]
    assert read_db(database, "SELECT count(*) FROM tasks") == [(1,)]
    assert read_db(database, "SELECT body FROM history_entries WHERE kind = 'note'") == [("nach dem Ausfall",)]
    refused = server.events("request.database_unavailable")
    assert len(refused) == 7
    print(f"\nSQLite unwritable for {outage_s:.1f} s: webhooks answered 503 within {max(refusals) * 1000:.1f} ms "
          f"({len(refusals)} refusals); the first retry after the disk came back was stored in "
          f"{recovery_s * 1000:.1f} ms")
