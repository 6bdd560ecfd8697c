"""`GET /ws`: the agent WebSocket (DESIGN §6).

Auth by `Authorization: Bearer`, or `?token=` for clients that cannot set headers, or the browser
console's session cookie (see console_session.py).
Server messages carry `type`, `seq` and `ts`. Messages that report a change (`call.*`, `task.*`,
`history.added`) take the agent's next `seq` and are kept in the backlog; replies that only concern
this session (`hello`, `pong`, `note.saved`, `resumed`, `error`) carry the agent's current `seq`
without advancing it. `resume {after: N}` replays every kept message with a larger seq, in order,
before any newer one; `?after=N` on the URL does the same at connect time.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from commhub.errors import BadRequest, CommhubError, Forbidden, Unauthorized
from commhub.keys import DISPATCHER, HUB, SESSIONS, SETTINGS, CALL_DATABASE
from commhub.log import get_logger
from commhub.push.dispatch import Dispatcher, Message, encode, write_and_push
from commhub.push.hub import AgentSession
from commhub.store import messages
from commhub.store.call_sql import CallSql
from commhub.store.sql_db import SessionDb
from commhub import audit
from commhub.store.agents import authenticate
from commhub.web.access import agent_for_token, client_address
from commhub.store.models import Agent
from commhub.telephony import notes
from commhub.web.console_session import credentials, origin_allowed

log = get_logger("commhub.ws")
MAX_CLIENT_MESSAGE = 64 * 1024
SEND_TIMEOUT_S = 10.0
# A note's `ref` is stored with it (history_entries.client_ref): the same ref again gets the saved entry.
MAX_REF = 100
# Close code for a socket whose token ended (4000–4999: the application's own; "401" in its last digits).
TOKEN_ENDED = 4401


async def agent_socket(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    agent, token = await _authenticate(request)
    settings = request.app[SETTINGS].push
    after = _after_param(request)
    # Compression off on purpose: FLOORS.md measured permessage-deflate at 26 % less throughput and
    # 50 % more CPU, and a pop is a few hundred bytes.
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_seconds, compress=False,
                               max_msg_size=MAX_CLIENT_MESSAGE)
    await ws.prepare(request)

    async def send(text: str) -> None:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await ws.send_str(text)

    hub = request.app[HUB]
    session = AgentSession(agent.id, send, lambda code, reason: ws.close(code=code, message=reason.encode()),
                           settings.queue_size, sent=hub.sent)
    hub.register(session)  # from here on every new message is queued for this session
    writer: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    log.info("ws.connected", agent_id=agent.id, session=session.id, sessions=hub.online(agent.id))
    try:
        await session.send_now(await _reply(request, agent, "hello", {
            "agent": {"id": agent.id, "name": agent.name, "role": agent.role, "language": agent.language},
            "session": session.id,
            "backlog": {"hours": settings.backlog_hours, "messages": settings.backlog_messages}}))
        if after is not None:
            await _resume(request, session, agent, after)
        # Only now does the queue go out: a message that arrived meanwhile must not overtake the hello or
        # the replay, as a client drops a seq below one it has seen (the console shows it nowhere).
        writer = asyncio.create_task(session.write())
        watcher = asyncio.create_task(_watch_token(request, token, session, settings.credential_check_seconds))
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            await _handle(request, session, agent, frame.data)
    finally:
        hub.unregister(session)
        for task in (writer, watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        log.info("ws.closed", agent_id=agent.id, session=session.id, too_slow=session.overflowed)
    return ws


def _check_origin(request: web.Request) -> None:
    """Browsers send Origin; a page on another site must not open an agent's socket with its cookie."""
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(request, origin):
        raise Forbidden(f"WebSocket from origin {origin!r} refused")


async def _watch_token(request: web.Request, token: str, session: AgentSession, every_s: float) -> None:
    """Close the socket once its token is revoked or expired (from this node, another, or the CLI):
    a revoked token must not keep receiving pops on a connection it opened before."""
    while True:
        # Between half and all of the interval: sockets that connected together (every console after a
        # restart) would otherwise check together, a burst that took the pool's every connection and
        # held pops up for a second or more every interval (bench/cluster.py).
        await asyncio.sleep(random.uniform(every_s / 2, every_s))
        try:
            async with request.app[SESSIONS]() as db:
                still = await authenticate(db, token)
        except Exception:  # a database outage is no reason to drop agents; the next round decides
            log.warning("ws.credential_check_failed", session=session.id)
            continue
        if still is None:
            log.info("ws.token_ended", agent_id=session.agent_id, session=session.id)
            await session.close(TOKEN_ENDED, "token revoked or expired")
            return


async def _authenticate(request: web.Request) -> tuple[Agent, str]:
    found = credentials(request, query=True)
    if found is None:
        raise Unauthorized("send an agent token: Authorization: Bearer <token>, or ?token=, "
                           "or sign in to the console")
    agent = await agent_for_token(request, found.token)
    return agent, found.token


def _after_param(request: web.Request) -> int | None:
    raw = request.query.get("after")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise BadRequest("`after` must be the last seq this client saw", details={"field": "after"})
    return int(raw)


async def _reply(request: web.Request, agent: Agent, type_: str, payload: dict[str, Any]) -> str:
    dispatcher = request.app[DISPATCHER]
    seq = dispatcher.current_seq(agent.id)
    if seq is None:
        async with request.app[SESSIONS]() as session:
            seq = await session.run_sync(lambda sync: CallSql(SessionDb(sync)).last_seq(agent.id))
    return encode(type_, seq, datetime.now(UTC), payload)


async def _handle(request: web.Request, session: AgentSession, agent: Agent, data: str) -> None:
    try:
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("not an object")
    except ValueError:
        await session.send_now(await _reply(request, agent, "error", {"code": "bad_message",
                                                                      "message": "send a JSON object"}))
        return
    kind, ref = message.get("type"), message.get("ref")
    try:
        if kind == "ping":
            await session.send_now(await _reply(request, agent, "pong", {"ref": ref}))
        elif kind == "resume":
            after = message.get("after")
            if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                raise _bad("resume needs `after`: the last seq this client saw (0 for everything kept)", "after")
            await _resume(request, session, agent, after)
        elif kind == "note":
            await _note(request, session, agent, message)
        else:
            raise _bad(f"unknown message type {kind!r} (known: ping, resume, note)", "type")
    except CommhubError as exc:
        await session.send_now(await _reply(request, agent, "error", {"ref": ref, **exc.to_json()["error"]}))


def _bad(text: str, field: str) -> CommhubError:
    return BadRequest(text, details={"field": field})


async def _resume(request: web.Request, session: AgentSession, agent: Agent, after: int) -> None:
    push = request.app[SETTINGS].push
    not_before = datetime.now(UTC) - timedelta(hours=push.backlog_hours)
    async with request.app[SESSIONS]() as db:
        # The newest seq first: a message committed between the two reads then counts as kept, not as
        # one forgotten (read the other way round, `complete` came out false though nothing was lost).
        newest = await db.run_sync(lambda sync: CallSql(SessionDb(sync)).last_seq(agent.id))
        kept = await db.run_sync(messages.since, agent.id, after, not_before=not_before,
                                 limit=push.backlog_messages)
    # Complete when nothing between `after` and the newest message was forgotten (by age or by count).
    complete = kept[0].seq == after + 1 if kept else after >= newest
    replayed = await session.replay(
        (row.seq, encode(row.type, row.seq, row.created_at, row.payload)) for row in kept)
    await session.send_now(await _reply(request, agent, "resumed", {
        "after": after, "replayed": replayed, "complete": complete}))


async def _note(request: web.Request, session: AgentSession, agent: Agent, message: dict[str, Any]) -> None:
    call_id, contact_id = message.get("call_id"), message.get("contact_id")
    if not isinstance(call_id, int) and not isinstance(contact_id, int):
        raise _bad("a note needs `call_id` or `contact_id` (an integer)", "call_id")
    text = message.get("text")
    ref = message.get("ref")
    if ref is not None and (not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF):
        raise _bad(f"`ref` must be a string of 1–{MAX_REF} characters", "ref")

    def write(db: CallSql, dispatcher: Dispatcher) -> tuple[dict[str, Any], list[Message]]:
        if isinstance(call_id, int):
            return notes.note_on_call(db, dispatcher, call_id, agent.id, text, ref)
        return notes.note_on_file(db, dispatcher, "contact", contact_id, agent.id, text, ref)

    app = request.app
    entry = await write_and_push(app[CALL_DATABASE], app[DISPATCHER], app[HUB].deliver, write)
    subject = ("call", call_id) if isinstance(call_id, int) else ("contact", contact_id)
    async with app[SESSIONS]() as db, db.begin():
        audit.record(db, audit.Actor.of_agent(agent, "ws", client_address(request)), "change", *subject,
                     route="ws note", status=200)
    await session.send_now(await _reply(request, agent, "note.saved", {"ref": message.get("ref"), "entry": entry}))
