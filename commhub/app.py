"""The aiohttp application: `build_app(settings)` reads as the table of contents of a running commhub."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from commhub.contacts.caller_id import CallerId
from commhub.contacts.index import CallerIndex, SqlCallerIndex, SqliteCallerIndex
from commhub.keys import CALLER_ID, ENGINE, SESSIONS, SETTINGS
from commhub.log import get_logger
from commhub.settings import Settings
from commhub.store.db import create_engine, session_factory, sqlite_path
from commhub.store.migrate import upgrade
from commhub.web.middlewares import json_errors, require_agent
from commhub.web.routes import add_routes

log = get_logger("commhub.app")
# Largest REST body accepted; webhooks set their own, smaller limit (DESIGN §6: 64 KiB).
MAX_BODY_BYTES = 1024 * 1024


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[json_errors, require_agent], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database)
    add_routes(app)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    """Open the database, apply pending migrations, and build the caller-ID index on it."""
    settings = app[SETTINGS]
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    await upgrade(engine)
    app[ENGINE] = engine
    app[SESSIONS] = session_factory(engine)
    index = caller_index(settings.database.url, engine)
    app[CALLER_ID] = CallerId(index, region=settings.phone.default_region, locate=settings.phone.locate)
    log.info("database.ready", backend=engine.dialect.name)
    try:
        yield
    finally:
        index.close()
        await engine.dispose()


def caller_index(url: str, engine: AsyncEngine) -> CallerIndex:
    path = sqlite_path(url)
    return SqliteCallerIndex(path) if path is not None else SqlCallerIndex(engine)
