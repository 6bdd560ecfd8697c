"""The call path on PostgreSQL (asyncpg): row locks, JSON columns and the backlog behave as on SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from conftest import Office, office_settings, open_office
from support.pgcluster import PostgresCluster


@pytest.fixture
async def pg_office(pg_cluster: PostgresCluster) -> AsyncIterator[Office]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    async for item in open_office(office_settings(url)):
        yield item
    pg_cluster.drop_database(name)


async def test_calls_pops_tasks_and_resume_on_postgresql(pg_office: Office) -> None:
    office = pg_office
    anna = await office.agent("anna")
    await asyncio.gather(office.phone.ring("pg-1", "+49 30 1234567-10", "10"),
                         office.phone.ring("pg-2", "089 2345678", "10"))
    pops = [await anna.next_of("call.ringing") for _ in range(2)]
    assert {p["call"]["provider_call_id"] for p in pops} == {"pg-1", "pg-2"}
    await office.phone.ring("pg-1", "+49 30 1234567-10", "10")  # redelivered
    await office.phone.answer("pg-1", "10")
    await office.phone.hang_up("pg-1")
    await office.phone.hang_up("pg-2")
    seen = pops[-1]["seq"]
    await anna.close()
    back = await office.agent("anna", after=seen)
    replayed = [(await back.next())["type"] for _ in range(4)]
    assert replayed == ["call.answered", "call.ended", "task.created", "call.ended"]
    assert (await back.next())["type"] == "resumed"
    calls = {c["provider_call_id"]: c for c in (await office.get("/api/calls"))["items"]}
    assert (calls["pg-1"]["state"], calls["pg-2"]["state"]) == ("completed", "missed")
    tasks = (await office.get("/api/tasks"))["items"]
    assert [t["phone"] for t in tasks if t["kind"] == "callback" and calls["pg-2"]["id"] in t["call_ids"]] == [
        "+49892345678"]
