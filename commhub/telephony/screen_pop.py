"""What the agent sees while the phone rings (DESIGN §3, §6): the caller, and for each matching file
its class, company, open tasks and the last five contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from commhub.contacts.matching import CallerMatch
from commhub.store.models import HistoryEntry, HistoryLink, Task

RECENT_ENTRIES = 5
SHOWN_TASKS = 3
# A number shared by many files (a hotline, a reseller) would otherwise make a pop of pages.
DETAILED_MATCHES = 5


def match_snapshot(match: CallerMatch) -> list[dict[str, Any]]:
    """The ranked candidates as stored on the call (what the pop showed, even if files change later)."""
    return [{"kind": c.kind, "id": c.id, "name": c.name, "company": c.company,
             "organization_id": c.organization_id, "class": c.customer_class, "via": c.via,
             "number_kind": c.number_kind, "direct_dial": c.direct_dial, "reason": c.reason()}
            for c in match.candidates]


def pop_matches(session: Session, snapshot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored candidates, the first few with their open tasks and recent history."""
    detailed = snapshot[:DETAILED_MATCHES]
    tasks = _open_tasks(session, detailed)
    out = []
    for candidate in detailed:
        owner = (candidate["kind"], candidate["id"])
        found = tasks.get(owner, [])
        out.append({**candidate, "open_tasks": len(found), "tasks": found[:SHOWN_TASKS],
                    "recent": _recent(session, *owner)})
    return out + snapshot[DETAILED_MATCHES:]


def _open_tasks(session: Session, candidates: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    contacts = [c["id"] for c in candidates if c["kind"] == "contact"]
    organizations = [c["id"] for c in candidates if c["kind"] == "organization"]
    owners = ([Task.contact_id.in_(contacts)] if contacts else []) + (
        [Task.organization_id.in_(organizations)] if organizations else [])
    if not owners:
        return {}
    rows = session.execute(
        select(Task.id, Task.kind, Task.title, Task.due_at, Task.contact_id, Task.organization_id)
        .where(Task.status == "open", or_(*owners))
        .order_by(func.coalesce(Task.due_at, Task.created_at), Task.id))
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for task_id, kind, title, due_at, contact_id, organization_id in rows:
        owner = ("contact", contact_id) if contact_id in contacts else ("organization", organization_id)
        found.setdefault(owner, []).append({"id": task_id, "kind": kind, "title": title,
                                            "due_at": due_at.isoformat() if due_at else None})
    return found


def _recent(session: Session, kind: str, file_id: int) -> list[dict[str, Any]]:
    column = HistoryLink.contact_id if kind == "contact" else HistoryLink.organization_id
    rows = session.execute(
        select(HistoryEntry.id, HistoryEntry.kind, HistoryEntry.occurred_at, HistoryEntry.title)
        .join(HistoryLink, HistoryLink.entry_id == HistoryEntry.id)
        .where(column == file_id)
        .order_by(HistoryLink.occurred_at.desc(), HistoryLink.entry_id.desc()).limit(RECENT_ENTRIES))
    return [{"id": entry_id, "kind": entry_kind, "occurred_at": occurred.isoformat(), "title": title}
            for entry_id, entry_kind, occurred, title in rows]
