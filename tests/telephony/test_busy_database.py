"""Another writer holding the SQLite database (an import, a migration) delays a call, never the server."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from conftest import Office


async def test_a_call_waits_for_a_locked_database_while_the_server_keeps_answering(office: Office,
                                                                                 tmp_path: Path) -> None:
    anna = await office.agent("anna")
    importer = sqlite3.connect(tmp_path / "office.db", isolation_level=None)
    importer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long import chunk does
    try:
        ringing = asyncio.create_task(office.phone.ring("busy-1", "+49 30 1234567-10", "10"))
        await asyncio.sleep(0.3)
        async with office.http.get(office.base + "/healthz") as health:  # the loop is not blocked
            assert health.status == 200
        assert not ringing.done()
    finally:
        importer.execute("COMMIT")
        importer.close()
    await ringing
    pop = await anna.next_of("call.ringing")
    assert pop["call"]["provider_call_id"] == "busy-1"
