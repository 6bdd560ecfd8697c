"""What the agent sees while the phone rings (DESIGN §3, §6): the caller, and for each matching file
its class, company, open tasks and the last five contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

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


async def pop_matches(session: AsyncSession, snapshot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored candidates, the first few with their open tasks and recent history."""
    detailed = snapshot[:DETAILED_MATCHES]
    tasks = await _open_tasks(session, detailed)
    out = []
    for candidate in detailed:
        owner = (candidate["kind"], candidate["id"])
        found = tasks.get(owner, [])
        out.append({**candidate, "open_tasks": len(found), "tasks": found[:SHOWN_TASKS],
                    "recent": await _recent(session, *owner)})
    return out + snapshot[DETAILED_MATCHES:]


async def _open_tasks(session: AsyncSession, candidates: list[dict[str, Any]]
                      ) -> dict[tuple[str, int], list[dict[str, Any]]]:
    contacts = [c["id"] for c in candidates if c["kind"] == "contact"]
    organizations = [c["id"] for c in candidates if c["kind"] == "organization"]
    if not contacts and not organizations:
        return {}
    rows = await session.scalars(
        select(Task).where(Task.status == "open",
                           or_(Task.contact_id.in_(contacts), Task.organization_id.in_(organizations)))
        .order_by(func.coalesce(Task.due_at, Task.created_at), Task.id))
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for task in rows:
        owner = ("contact", task.contact_id) if task.contact_id in contacts else ("organization",
                                                                                 task.organization_id)
        found.setdefault(owner, []).append(task_summary(task))  # type: ignore[arg-type]
    return found


def task_summary(task: Task) -> dict[str, Any]:
    return {"id": task.id, "kind": task.kind, "title": task.title,
            "due_at": task.due_at.isoformat() if task.due_at else None}


async def _recent(session: AsyncSession, kind: str, file_id: int) -> list[dict[str, Any]]:
    column = HistoryLink.contact_id if kind == "contact" else HistoryLink.organization_id
    rows = await session.execute(
        select(HistoryEntry.id, HistoryEntry.kind, HistoryEntry.occurred_at, HistoryEntry.title)
        .join(HistoryLink, HistoryLink.entry_id == HistoryEntry.id)
        .where(column == file_id)
        .order_by(HistoryLink.occurred_at.desc(), HistoryLink.entry_id.desc()).limit(RECENT_ENTRIES))
    return [{"id": entry_id, "kind": entry_kind, "occurred_at": occurred.isoformat(), "title": title}
            for entry_id, entry_kind, occurred, title in rows]
