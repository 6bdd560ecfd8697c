"""Missed calls become callback tasks: one open task per number, however often it called."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commhub.store.models import Call, Task


def _who(call: Call) -> str:
    names = [m["name"] for m in call.matches[:1]]
    return names[0] if names and len(call.matches) == 1 else (call.customer_e164 or "unknown number")


def _owner(call: Call) -> dict[str, int | None]:
    """The file the task belongs to: only when the number leads to exactly one."""
    if len(call.matches) != 1:
        return {"contact_id": None, "organization_id": None}
    only = call.matches[0]
    key = "contact_id" if only["kind"] == "contact" else "organization_id"
    return {"contact_id": None, "organization_id": None, key: only["id"]}


def open_callback(session: Session, number: str) -> Task | None:
    statement = select(Task).where(Task.kind == "callback", Task.status == "open",
                                   Task.phone_e164 == number).order_by(Task.id).limit(1)
    if session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return session.scalar(statement)


def file_missed_call(session: Session, call: Call, now: datetime) -> tuple[Task, bool] | None:
    """Create or extend the callback task for a missed inbound call; (task, created) or None.

    A withheld caller cannot be called back, and an outbound call nobody took is not a callback.
    """
    if call.direction != "in" or call.withheld or not call.customer_e164:
        return None
    task = open_callback(session, call.customer_e164)
    if task is not None:
        calls = [*task.data.get("call_ids", []), call.id]
        task.data = {**task.data, "call_ids": calls, "missed": len(calls), "last_missed_at": now.isoformat()}
        task.title = f"Call back {_who(call)} ({len(calls)} missed calls)"
        call.task_id = task.id
        return task, False
    assignee = call.agent_ids[0] if len(call.agent_ids) == 1 else None
    task = Task(kind="callback", title=f"Call back {_who(call)}", status="open", due_at=now,
                assignee_agent_id=assignee, phone_e164=call.customer_e164,
                data={"call_ids": [call.id], "missed": 1, "last_missed_at": now.isoformat(),
                      "source": call.source}, **_owner(call))
    session.add(task)
    session.flush()
    call.task_id = task.id
    return task, True


def withdraw_call(session: Session, call: Call) -> Task | None:
    """A call that turned out answered (its answer arrived after the hangup) leaves its task."""
    if call.task_id is None:
        return None
    task = session.get(Task, call.task_id)
    call.task_id = None
    if task is None or task.status != "open":
        return None
    calls = [cid for cid in task.data.get("call_ids", []) if cid != call.id]
    task.data = {**task.data, "call_ids": calls, "missed": len(calls)}
    if not calls:
        task.status = "cancelled"
    return task


def task_json(task: Task) -> dict[str, Any]:
    return {"id": task.id, "kind": task.kind, "title": task.title, "status": task.status,
            "due_at": task.due_at.isoformat() if task.due_at else None,
            "assignee_agent_id": task.assignee_agent_id, "contact_id": task.contact_id,
            "organization_id": task.organization_id, "phone": task.phone_e164,
            "missed_calls": task.data.get("missed"), "call_ids": task.data.get("call_ids", []),
            "created_at": task.created_at.isoformat() if task.created_at else None}
