"""Resume is bounded: an agent away too long gets what is kept, and is told that it is not all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Office, office_settings, open_office


@pytest.fixture
async def small_backlog(tmp_path: Path) -> AsyncIterator[Office]:
    async for office in open_office(office_settings(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}",
                                                    backlog_messages=10)):
        yield office


async def test_resume_replays_the_newest_kept_messages_and_says_some_are_gone(small_backlog: Office) -> None:
    office = small_backlog
    anna = await office.agent("anna")
    start = anna.hello["seq"]
    await anna.close()
    for i in range(12):
        await office.phone.ring(f"b-{i}", "+49 30 1234567-10", "10")
    back = await office.agent("anna")
    await back.send({"type": "resume", "after": start})
    replayed = [await back.next() for _ in range(10)]
    assert [m["call"]["provider_call_id"] for m in replayed] == [f"b-{i}" for i in range(2, 12)]
    done = await back.next()
    assert done["type"] == "resumed" and done["replayed"] == 10 and done["complete"] is False
