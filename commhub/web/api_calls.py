"""/api/calls and /api/tasks: the call list (`?state=missed`), a call's notes, callback tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select

from commhub.errors import BadRequest, NotFound
from commhub.keys import DISPATCHER, HUB, SESSIONS, CALL_DATABASE
from commhub.push.dispatch import Dispatcher, Message, T, Work, write_and_push
from commhub.store import calls as stored
from commhub.store.call_sql import CallSql
from commhub.store.sql_db import SessionDb
from commhub.store.models import Task, utcnow
from commhub.telephony import notes
from commhub.telephony.calls import STATES
from commhub.telephony.callbacks import task_json
from commhub.web.bodies import current_agent, int_param, path_id, read_json
from commhub.web.schemas import NoteIn


async def list_calls(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}", details={"field": "state"})
    direction = request.query.get("direction")
    if direction is not None and direction not in ("in", "out"):
        raise BadRequest("direction must be in or out", details={"field": "direction"})
    limit = int_param(request, "limit", 50, high=stored.MAX_PAGE)
    before = int_param(request, "before", 0, low=0, high=2**31 - 1) or None

    def read(sql: CallSql) -> tuple[list[dict[str, Any]], int | None]:
        found = sql.list_calls(state=state, direction=direction, before=before, limit=limit)
        names = sql.agent_names(call.answered_by_agent_id for call in found)
        return [stored.call_json(call, names) for call in found], found[-1].id if len(found) == limit else None

    items, after = await _read(request, read)
    return web.json_response({"items": items, "next": after})


async def get_call(request: web.Request) -> web.Response:
    call_id = path_id(request)

    def read(sql: CallSql) -> dict[str, Any]:
        call = sql.get_call(call_id)
        if call is None:
            raise NotFound(f"no call with id {call_id}")
        return stored.call_json(call, sql.agent_names([call.answered_by_agent_id]))

    return web.json_response(await _read(request, read))


async def _read(request: web.Request, read: Callable[[CallSql], T]) -> T:
    """Reads through the call path's SQL, on an ordinary session: they need no place in its queue."""
    async with request.app[SESSIONS]() as session:
        return await session.run_sync(lambda sync: read(CallSql(SessionDb(sync))))


async def add_call_note(request: web.Request) -> web.Response:
    call_id = path_id(request)
    body = await read_json(request, NoteIn)
    agent_id = current_agent(request).id
    entry = await _with_dispatch(request, lambda db, dispatcher: notes.note_on_call(
        db, dispatcher, call_id, agent_id, body.text))
    return web.json_response(entry, status=201)


async def _with_dispatch(request: web.Request, work: Work[T]) -> T:
    app = request.app
    return await write_and_push(app[CALL_DATABASE], app[DISPATCHER], app[HUB].deliver, work)


class TaskPatch(BaseModel):
    status: Literal["open", "done", "cancelled"]


async def list_tasks(request: web.Request) -> web.Response:
    status = request.query.get("status", "open")
    if status not in ("open", "done", "cancelled"):
        raise BadRequest("status must be open, done or cancelled", details={"field": "status"})
    statement = select(Task).where(Task.status == status)
    if request.query.get("mine") in ("1", "true"):
        statement = statement.where(Task.assignee_agent_id == current_agent(request).id)
    limit = int_param(request, "limit", 50, high=200)
    async with request.app[SESSIONS]() as session:
        found = list(await session.scalars(statement.order_by(Task.id.desc()).limit(limit)))
        # The assignees' names in one query, so a client can show whose task it is without asking per task.
        assignees = [task.assignee_agent_id for task in found]
        names = await session.run_sync(lambda sync: CallSql(SessionDb(sync)).agent_names(assignees))
    return web.json_response({"items": [task_json(task) for task in found],
                              "agents": {str(agent_id): name for agent_id, name in names.items()}})


async def patch_task(request: web.Request) -> web.Response:
    task_id = path_id(request)
    body = await read_json(request, TaskPatch)

    me = current_agent(request).id

    def change(db: CallSql, dispatcher: Dispatcher) -> tuple[dict[str, Any], list[Message]]:
        task = db.get_task(task_id)
        if task is None:
            raise NotFound(f"no task with id {task_id}")
        task.status = body.status
        task.done_at = utcnow() if body.status == "done" else None
        db.update_task(task)
        audience = [task.assignee_agent_id] if task.assignee_agent_id else [me]
        return task_json(task), dispatcher.stage(db, audience, "task.updated", {"task": task_json(task)})

    return web.json_response(await _with_dispatch(request, change))
