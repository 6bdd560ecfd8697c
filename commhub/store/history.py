"""The unified timeline: entries of every kind, linked to each contact and organization they concern.

Entries are written in one place, `CallSql.add_entry` (calls, notes, the demo set); this module reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from commhub.errors import BadRequest
from commhub.store.models import Agent, Contact, HistoryEntry, HistoryLink

MAX_PAGE = 200


def encode_cursor(entry: HistoryEntry) -> str:
    return f"{entry.occurred_at.isoformat()}|{entry.id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, entry_id = cursor.rsplit("|", 1)
        return datetime.fromisoformat(stamp), int(entry_id)
    except ValueError:
        raise BadRequest(f"invalid cursor {cursor!r}: pass back the `next` value of the previous page") from None


async def timeline(session: AsyncSession, *, contact_id: int | None = None, organization_id: int | None = None,
                   limit: int = 50, before: str | None = None) -> dict[str, Any]:
    """One page of a timeline, newest first; `next` is the cursor for the following page or None.

    An organization's timeline also shows what concerns its people: the company view.
    """
    if contact_id is not None:
        owner = HistoryLink.contact_id == contact_id
    else:
        people = select(Contact.id).where(Contact.organization_id == organization_id)
        owner = or_(HistoryLink.organization_id == organization_id, HistoryLink.contact_id.in_(people))
    linked = select(HistoryLink.entry_id).where(owner)
    statement = select(HistoryEntry).where(HistoryEntry.id.in_(linked))
    if before:
        stamp, entry_id = decode_cursor(before)
        statement = statement.where(or_(HistoryEntry.occurred_at < stamp,
                                        and_(HistoryEntry.occurred_at == stamp, HistoryEntry.id < entry_id)))
    limit = max(1, min(limit, MAX_PAGE))
    rows = list(await session.scalars(statement.order_by(HistoryEntry.occurred_at.desc(), HistoryEntry.id.desc())
                                      .limit(limit + 1)))
    page = rows[:limit]
    return {"items": await session.run_sync(entries_json, page),
            "next": encode_cursor(page[-1]) if len(rows) > limit else None}


def entries_json(session: Session, entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    """A page of entries with their links and agents, in two queries whatever the page size."""
    ids = [entry.id for entry in entries]
    links: dict[int, tuple[list[int], list[int]]] = {entry_id: ([], []) for entry_id in ids}
    for entry_id, contact_id, organization_id in session.execute(
            select(HistoryLink.entry_id, HistoryLink.contact_id, HistoryLink.organization_id)
            .where(HistoryLink.entry_id.in_(ids)).order_by(HistoryLink.id)):
        contacts, organizations = links[entry_id]
        if contact_id is not None:
            contacts.append(contact_id)
        else:
            organizations.append(organization_id)
    agent_ids = {entry.agent_id for entry in entries if entry.agent_id is not None}
    agents = {agent.id: {"id": agent.id, "name": agent.name}
              for agent in session.scalars(select(Agent).where(Agent.id.in_(agent_ids)))}
    return [{
        "id": entry.id, "kind": entry.kind, "occurred_at": entry.occurred_at.isoformat(),
        "title": entry.title, "body": entry.body, "data": entry.data, "call_id": entry.call_id,
        "agent": agents.get(entry.agent_id) if entry.agent_id else None,
        "contact_ids": links[entry.id][0], "organization_ids": links[entry.id][1],
    } for entry in entries]
