"""Shared fixtures: a real database on each backend (SQLite file, private PostgreSQL), a running app."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.pgcluster import PostgresCluster, find_postgres_bindir

from commhub.app import build_app
from commhub.commands.common import Database, open_database
from commhub.settings import DatabaseSettings, Settings
from commhub.store import agents

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    if find_postgres_bindir() is None:
        message = "PostgreSQL is not installed (Debian package postgresql); the storage tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (not CI)")
    cluster = PostgresCluster(tmp_path_factory.mktemp("pg"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'commhub.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=database_url))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    async with open_database(settings) as database:
        yield database


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(settings))) as test_client:
        yield test_client


async def _agent_token(db: Database, name: str, role: str, extension: str) -> str:
    async with db.sessions() as session, session.begin():
        agent = await agents.create_agent(session, name, extensions=[extension], role=role)
        return await agents.issue_token(session, agent)


@pytest.fixture
async def admin_headers(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _agent_token(db, 'admin', 'admin', '90')}"}


@pytest.fixture
async def agent_headers(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _agent_token(db, 'agent', 'agent', '91')}"}
