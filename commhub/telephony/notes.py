"""Call notes: what the agent writes from the pop lands in the history of every file the call matched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from commhub.errors import NotFound, ValidationFailed
from commhub.push.dispatch import Dispatcher, Message
from commhub.store.call_sql import CallSql

MAX_NOTE = 20_000


def clean_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("a note needs text", details={"field": "text"})
    if len(text) > MAX_NOTE:
        raise ValidationFailed(f"a note holds at most {MAX_NOTE} characters", details={"field": "text"})
    return text.strip()


def note_on_call(sql: CallSql, dispatcher: Dispatcher, call_id: int, agent_id: int,
                 text: object, ref: str | None = None) -> tuple[dict[str, Any], list[Message]]:
    body = clean_text(text)
    saved = _saved(sql, agent_id, ref)
    if saved is not None:
        return saved, []
    call = sql.get_call(call_id)
    if call is None:
        raise NotFound(f"no call with id {call_id}")
    contacts = [m["id"] for m in call.matches if m["kind"] == "contact"]
    organizations = [m["id"] for m in call.matches if m["kind"] == "organization"]
    data = {"call": {"id": call.id, "direction": call.direction, "number": call.customer_e164}}
    entry = _add(sql, body, agent_id, contacts, organizations, data, call.id, ref)
    return entry, dispatcher.stage(sql, [*call.agent_ids, agent_id], "history.added", {"entry": entry})


def note_on_file(sql: CallSql, dispatcher: Dispatcher, kind: str, file_id: int, agent_id: int,
                 text: object, ref: str | None = None) -> tuple[dict[str, Any], list[Message]]:
    """A note on a contact (it shows in its company's timeline too) or on an organization."""
    body = clean_text(text)
    saved = _saved(sql, agent_id, ref)
    if saved is not None:
        return saved, []
    table = "contacts" if kind == "contact" else "organizations"
    found = sql.db.rows(f"SELECT {'organization_id' if kind == 'contact' else 'id'} FROM {table} WHERE id = :id",
                        {"id": file_id})
    if not found:
        raise NotFound(f"no {kind} with id {file_id}")
    if kind == "contact":
        contacts, organizations = [file_id], [found[0][0]] if found[0][0] is not None else []
    else:
        contacts, organizations = [], [file_id]
    entry = _add(sql, body, agent_id, contacts, organizations, {}, None, ref)
    return entry, dispatcher.stage(sql, [agent_id], "history.added", {"entry": entry})


def _saved(sql: CallSql, agent_id: int, ref: str | None) -> dict[str, Any] | None:
    """A note sent again (its confirmation was lost with the connection) gets the entry saved the first time."""
    return sql.entry_by_ref(agent_id, ref) if ref else None


def _add(sql: CallSql, body: str, agent_id: int, contacts: list[int], organizations: list[int],
         data: dict[str, Any], call_id: int | None, ref: str | None) -> dict[str, Any]:
    """Store the note; return it as the timeline shows entries (`store.history.entries_json`)."""
    now = datetime.now(UTC)
    title = _title(body)
    entry_id = sql.add_entry(kind="note", title=title, body=body, data=data, agent_id=agent_id,
                             contact_ids=contacts, organization_ids=organizations, occurred_at=now, now=now,
                             call_id=call_id, client_ref=ref)
    names = sql.agent_names([agent_id])
    return {"id": entry_id, "kind": "note", "occurred_at": now.isoformat(), "title": title, "body": body,
            "data": data, "call_id": call_id, "agent": {"id": agent_id, "name": names.get(agent_id)},
            "contact_ids": list(dict.fromkeys(contacts)), "organization_ids": list(dict.fromkeys(organizations))}


def _title(body: str) -> str:
    first_line = body.splitlines()[0]
    return first_line if len(first_line) <= 80 else first_line[:79] + "…"
