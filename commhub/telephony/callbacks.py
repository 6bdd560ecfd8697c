"""Missed calls become callback tasks: one open task per number, however often it called."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commhub.store.call_sql import CallRow, CallSql, TaskRow


def _who(call: CallRow) -> str:
    if len(call.matches) == 1:
        return str(call.matches[0]["name"])
    return call.customer_e164 or "unknown number"


def _owner(call: CallRow) -> dict[str, int | None]:
    """The file the task belongs to: only when the number leads to exactly one."""
    if len(call.matches) != 1:
        return {"contact_id": None, "organization_id": None}
    only = call.matches[0]
    key = "contact_id" if only["kind"] == "contact" else "organization_id"
    return {"contact_id": None, "organization_id": None, key: only["id"]}


def file_missed_call(sql: CallSql, call: CallRow, now: datetime) -> tuple[TaskRow, bool] | None:
    """Create or extend the callback task for a missed inbound call; (task, created) or None.

    A withheld caller cannot be called back, and an outbound call nobody took is not a callback.
    """
    if call.direction != "in" or call.withheld or not call.customer_e164:
        return None
    task = sql.open_callback(call.customer_e164)
    if task is not None:
        calls = [*task.data.get("call_ids", []), call.id]
        task.data = {**task.data, "call_ids": calls, "missed": len(calls), "last_missed_at": now.isoformat(),
                     "who": _who(call)}
        task.title = f"Call back {_who(call)} ({len(calls)} missed calls)"
        sql.update_task(task)
        call.task_id = task.id
        return task, False
    assignee = call.agent_ids[0] if len(call.agent_ids) == 1 else None
    task = TaskRow(kind="callback", title=f"Call back {_who(call)}", due_at=now, assignee_agent_id=assignee,
                   phone_e164=call.customer_e164, **_owner(call),
                   data={"call_ids": [call.id], "missed": 1, "last_missed_at": now.isoformat(),
                         "source": call.source, "who": _who(call)})
    call.task_id = sql.insert_task(task, now)
    return task, True


def withdraw_call(sql: CallSql, call: CallRow) -> TaskRow | None:
    """A call that turned out answered (its answer arrived after the hangup) leaves its task."""
    if call.task_id is None:
        return None
    task = sql.get_task(call.task_id)
    call.task_id = None
    if task is None or task.status != "open":
        return None
    calls = [cid for cid in task.data.get("call_ids", []) if cid != call.id]
    task.data = {**task.data, "call_ids": calls, "missed": len(calls)}
    if not calls:
        task.status = "cancelled"
    sql.update_task(task)
    return task


def task_json(task: Any) -> dict[str, Any]:
    """A task (a `TaskRow` or the ORM `Task`) as the API and the socket show it."""
    return {"id": task.id, "kind": task.kind, "title": task.title, "status": task.status,
            "due_at": task.due_at.isoformat() if task.due_at else None,
            "assignee_agent_id": task.assignee_agent_id, "contact_id": task.contact_id,
            "organization_id": task.organization_id, "phone": task.phone_e164,
            "missed_calls": task.data.get("missed"), "call_ids": task.data.get("call_ids", []),
            # Whom to call back, as a name or number: the console words the title in the agent's language.
            "who": task.data.get("who"),
            "created_at": task.created_at.isoformat() if task.created_at else None}
