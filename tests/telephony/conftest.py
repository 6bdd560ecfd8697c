"""A real commhub server on loopback with the demo customers, a phone system posting to it, and agents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support.phone import SECRET, AgentClient, Phone

from commhub.app import build_app
from commhub.commands.common import open_database
from commhub.demo.load import load_demo
from commhub.settings import DatabaseSettings, PushSettings, Settings, SourceSettings
from commhub.store import agents


@dataclass
class Office:
    base: str
    phone: Phone
    http: aiohttp.ClientSession
    tokens: dict[str, str]
    settings: Settings
    app: web.Application

    async def agent(self, name: str, *, after: int | None = None) -> AgentClient:
        return await AgentClient.connect(self.base, self.tokens[name], after=after)

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def get(self, path: str, name: str = "anna") -> dict:  # type: ignore[type-arg]
        async with self.http.get(self.base + path, headers=self.headers(name)) as response:
            assert response.status == 200, await response.text()
            return await response.json()


def office_settings(database_url: str, **push: int) -> Settings:
    return Settings(database=DatabaseSettings(url=database_url),
                    sources=[SourceSettings(name="pbx", adapter="generic", secret=SECRET,
                                            options={"tolerance_seconds": 300}),
                             SourceSettings(name="hotline", adapter="generic", secret=SECRET + "-hotline",
                                            options={})],
                    push=PushSettings(**push))


async def open_office(settings: Settings) -> AsyncIterator[Office]:
    async with open_database(settings) as database:
        await load_demo(database.sessions, "DE")
        tokens = {}
        async with database.sessions() as session, session.begin():
            for name in ("anna", "ben"):
                tokens[name] = await agents.issue_token(session, await agents.get_agent_by_name(session, name))
            carla = await agents.create_agent(session, "carla", extensions=["12"])
            tokens["carla"] = await agents.issue_token(session, carla)
    server = TestServer(build_app(settings), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        yield Office(base, Phone(base, http), http, tokens, settings, server.app)
    await server.close()


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Office]:
    async for item in open_office(office_settings(f"sqlite+aiosqlite:///{tmp_path / 'office.db'}")):
        yield item
