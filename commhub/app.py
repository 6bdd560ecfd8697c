"""The aiohttp application: `build_app(settings)` reads as the table of contents of a running commhub."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from commhub.contacts.caller_id import CallerId
from commhub.contacts.index import CallerIndex, SqlCallerIndex, SqliteCallerIndex
from commhub.keys import (
    CALL_DESK,
    CALLER_ID,
    DISPATCHER,
    ENGINE,
    HUB,
    REPLAY_GUARD,
    SESSIONS,
    SETTINGS,
    SOURCES,
    CALL_DATABASE,
    MAIL_DATABASE,
    MAIL_SERVICE,
    LIMITER,
    BUS,
    DRAINING,
    METRICS,
    NODE,
    SCHEMA_HEADS,
    IN_FLIGHT,
)
from commhub.audit import DAEMON
from commhub.gdpr.retention import run_retention
from commhub.leases import Duty, LeaseKeeper
from commhub.log import get_logger
from commhub.metrics import Metrics
from commhub.push.bus import PushBus, asyncpg_dsn
from commhub.store.call_sql import CallSql
from commhub.store.sql_db import SessionDb
from commhub.settings import Settings
from commhub.store.db import create_engine, session_factory, sqlite_path
from commhub.push.dispatch import Dispatcher
from commhub.push.hub import Hub
from commhub.store import agents, messages
from commhub.store.migrate import schema_heads, upgrade
from commhub.store.models import utcnow
from commhub.store.outage import is_database_outage
from commhub.store.call_db import CallDatabase
from commhub.store.mail_db import MailDatabase
from commhub.mail.service import MailService
from commhub.telephony.ingest import CallDesk
from commhub.telephony.replay import MemoryReplayGuard
from commhub.telephony.sources import Sources
from commhub.web.rate_limit import FailureLimiter
from commhub.web.draining import begin as begin_drain, count_in_flight
from commhub.web.middlewares import json_errors, require_agent, security_headers
from commhub.web.route_policy import route_policy
from commhub.web.routes import add_routes

log = get_logger("commhub.app")
# Largest REST body accepted; webhooks set their own, smaller limit (DESIGN §6: 64 KiB).
MAX_BODY_BYTES = 1024 * 1024
PRUNE_INTERVAL_S = 3600
CHECKPOINT_INTERVAL_S = 5
TOKENS_KEPT = timedelta(days=30)
# After start-up's own work (migrations, the caller index), and not in the way of a restart loop.
RETENTION_FIRST_RUN_S = 10
RETENTION_INTERVAL_S = 24 * 3600


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[count_in_flight, security_headers, json_errors, require_agent, route_policy],
                          client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[SOURCES] = Sources.from_settings(settings)  # a bad [[sources]] entry stops the start, not a call
    app[REPLAY_GUARD] = MemoryReplayGuard()
    # On PostgreSQL any number of nodes may share the database: numbers and pushes go through it.
    shared = sqlite_path(settings.database.url) is None
    app[HUB] = Hub(shared=shared)
    access = settings.access
    app[LIMITER] = FailureLimiter(limit=access.failure_limit, window_s=access.failure_window_seconds,
                                  block_s=access.block_seconds)
    app[DISPATCHER] = Dispatcher(shared=shared)
    app[NODE] = settings.cluster.node_name or f"{socket.gethostname()}-{os.getpid()}"
    app[METRICS] = Metrics(app[NODE])
    app[METRICS].watch_hub(app[HUB])
    app[SCHEMA_HEADS] = schema_heads()
    app[DRAINING] = asyncio.Event()
    app[IN_FLIGHT] = [0]
    app.cleanup_ctx.append(lifetime)
    app.cleanup_ctx.append(database)
    if shared:
        app.cleanup_ctx.append(push_bus)
    app.cleanup_ctx.append(telephony)
    app.cleanup_ctx.append(mail)
    app.cleanup_ctx.append(every(PRUNE_INTERVAL_S, prune_backlog))
    app.cleanup_ctx.append(every(CHECKPOINT_INTERVAL_S, checkpoint_wal, first_after=CHECKPOINT_INTERVAL_S))
    app.cleanup_ctx.append(every(RETENTION_INTERVAL_S, apply_retention, first_after=RETENTION_FIRST_RUN_S))
    app.on_startup.append(freeze_startup_objects)
    # After `commhub serve`'s own drain (web/draining.py) a no-op; an app stopped otherwise (tests) drains here.
    app.on_shutdown.append(begin_drain)
    add_routes(app)
    return app


async def lifetime(app: web.Application) -> AsyncIterator[None]:
    """Entered first and left last: the start and the very end of a node, in the log."""
    log.info("node.started", node=app[NODE])
    yield
    log.info("shutdown.finished", node=app[NODE])


async def push_bus(app: web.Application) -> AsyncIterator[None]:
    """PostgreSQL: hear every node's committed messages, this node's own included (push/bus.py)."""
    sessions = app[SESSIONS]

    async def read_stored(keys: list[tuple[int, int]]) -> list[tuple[int, int, str, object, object]]:
        async with sessions() as session:
            return await session.run_sync(lambda sync: CallSql(SessionDb(sync)).messages_at(keys))

    bus = PushBus(asyncpg_dsn(app[SETTINGS].database.url), app[HUB], read_stored)
    await bus.start()
    app[BUS] = bus
    try:
        yield
    finally:
        await bus.stop()

async def database(app: web.Application) -> AsyncIterator[None]:
    """Open the database, apply pending migrations, and build the caller-ID index on it."""
    settings = app[SETTINGS]
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    await upgrade(engine)
    app[ENGINE] = engine
    app[SESSIONS] = session_factory(engine)
    index = caller_index(settings.database.url, engine)
    app[CALLER_ID] = CallerId(index, region=settings.phone.default_region, locate=settings.phone.locate)
    app[CALL_DATABASE] = CallDatabase(settings.database.url, app[SESSIONS])
    log.info("database.ready", backend=engine.dialect.name)
    try:
        yield
    finally:
        app[CALL_DATABASE].close()
        index.close()
        await engine.dispose()


async def telephony(app: web.Application) -> AsyncIterator[None]:
    """The call desk: call events in, state, history, tasks and pushes out."""
    app[CALL_DESK] = CallDesk(app[CALL_DATABASE], app[CALLER_ID], app[DISPATCHER], app[HUB],
                              region=app[SETTINGS].phone.default_region)
    yield


async def mail(app: web.Application) -> AsyncIterator[None]:
    """The mailboxes' archivers and the outbox, each a task of its own."""
    settings = app[SETTINGS]
    app[MAIL_DATABASE] = MailDatabase(settings.database.url, app[SESSIONS])
    def keeper(duties: list[Duty]) -> LeaseKeeper:
        return LeaseKeeper(asyncpg_dsn(settings.database.url), duties, node=app[NODE],
                           check_s=settings.cluster.lease_check_seconds,
                           timeout_s=settings.cluster.lease_timeout_seconds)

    # Shared: each mailbox and the outbox go to one node at a time (leases.py); alone, this node runs them all.
    app[MAIL_SERVICE] = MailService(settings, app[MAIL_DATABASE], leases=keeper if app[HUB].shared else None)
    app[METRICS].watch_mail(app[MAIL_SERVICE])
    app[MAIL_SERVICE].start()
    try:
        yield
    finally:
        await app[MAIL_SERVICE].stop()
        app[MAIL_DATABASE].close()


Step = Callable[[web.Application], Awaitable[None]]


def every(seconds: float, step: Step, *, first_after: float = 0) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running `step` while the app runs: after `first_after` seconds, then every
    `seconds`; a failing round is logged and the next one comes anyway. Cancelled and awaited on exit."""
    async def forever(app: web.Application) -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await step(app)
            except Exception:
                log.exception(f"{step.__name__}.failed")
            await asyncio.sleep(seconds)

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(forever(app), name=step.__name__)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return context


async def prune_backlog(app: web.Application) -> None:
    """Forget agent messages no `resume` may ask for any more, and long-ended tokens."""
    push = app[SETTINGS].push
    async with app[SESSIONS]() as session, session.begin():
        removed = await session.run_sync(messages.prune, older_than=utcnow() - timedelta(hours=push.backlog_hours),
                                         keep_per_agent=push.backlog_messages)
        # Kept a month after they ended, so `agents tokens --all` still explains a refused client.
        tokens = await agents.prune_tokens(session, ended_before=utcnow() - TOKENS_KEPT)
    log.info("backlog.pruned", removed=removed, tokens=tokens)


async def checkpoint_wal(app: web.Application) -> None:
    """SQLite: fold the write-ahead log into the database file, off the loop (the call path's
    connection does not checkpoint itself: a checkpoint fsyncs)."""
    try:
        await app[CALL_DATABASE].checkpoint()
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        # A full or read-only disk: the requests say so with 503; no traceback every 5 s.
        log.warning("database.checkpoint_failed", error=str(exc)[:200])


async def apply_retention(app: web.Application) -> None:
    """`[retention]`: delete what is past its time."""
    policy = app[SETTINGS].retention
    if not policy.enabled:
        return
    async with app[SESSIONS]() as session, session.begin():
        counts = await run_retention(session, policy, utcnow(), DAEMON)
    log.info("retention.applied", **counts)


async def freeze_startup_objects(app: web.Application) -> None:
    """Keep what start-up built (libphonenumber's metadata, SQLAlchemy's mappers, …) out of the
    garbage collector's full passes: walking those objects stalled the loop for milliseconds, in
    the middle of a screen-pop, every few seconds under load."""
    gc.collect()
    gc.freeze()


def caller_index(url: str, engine: AsyncEngine) -> CallerIndex:
    path = sqlite_path(url)
    return SqliteCallerIndex(path) if path is not None else SqlCallerIndex(engine)
