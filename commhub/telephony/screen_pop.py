"""What the agent sees while the phone rings (DESIGN §3, §6): the caller, and for each matching file
its class, company, open tasks and the last five contacts."""

from __future__ import annotations

from typing import Any

from commhub.contacts.matching import CallerMatch
from commhub.store.call_sql import CallSql

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


def pop_matches(sql: CallSql, snapshot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored candidates, the first few with their open tasks and recent history."""
    detailed = snapshot[:DETAILED_MATCHES]
    tasks = _open_tasks(sql, detailed)
    out = []
    for candidate in detailed:
        owner = (candidate["kind"], candidate["id"])
        found = tasks.get(owner, [])
        out.append({**candidate, "open_tasks": len(found), "tasks": found[:SHOWN_TASKS],
                    "recent": sql.recent_entries(candidate["kind"], candidate["id"], RECENT_ENTRIES)})
    return out + snapshot[DETAILED_MATCHES:]


def _open_tasks(sql: CallSql, candidates: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    contacts = [c["id"] for c in candidates if c["kind"] == "contact"]
    organizations = [c["id"] for c in candidates if c["kind"] == "organization"]
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for task_id, kind, title, due_at, contact_id, organization_id in sql.open_tasks(contacts, organizations):
        owner = ("contact", contact_id) if contact_id in contacts else ("organization", organization_id)
        found.setdefault(owner, []).append({"id": task_id, "kind": kind, "title": title,
                                            "due_at": due_at.isoformat() if due_at else None})
    return found
