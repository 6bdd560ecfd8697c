"""A socket opened with a token that is revoked (or expires) later is closed; the agent signs in again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from commhub.app import build_app
from commhub.commands.common import Database
from commhub.settings import DatabaseSettings, PushSettings, Settings
from commhub.store import agents

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=database_url), push=PushSettings(credential_check_seconds=0.2))


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(settings))) as test_client:
        yield test_client


async def test_revoking_a_token_closes_the_sockets_it_opened_and_only_those(
        client: TestClient, db: Database) -> None:
    async with db.sessions() as session, session.begin():
        anna = await agents.create_agent(session, "anna", extensions=["10"])
        laptop, phone = await agents.issue_token(session, anna), await agents.issue_token(session, anna)
    lost = await client.ws_connect("/ws", headers={"Authorization": f"Bearer {laptop}"})
    kept = await client.ws_connect("/ws", headers={"Authorization": f"Bearer {phone}"})
    for socket in (lost, kept):
        assert (await socket.receive_json(timeout=5))["type"] == "hello"
    async with db.sessions() as session, session.begin():
        assert await agents.revoke_token(session, laptop) == anna.id
    closing = await lost.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert lost.close_code == 4401
    await kept.send_json({"type": "ping", "ref": "still-here"})
    assert (await kept.receive_json(timeout=5))["ref"] == "still-here"
    await kept.close()
