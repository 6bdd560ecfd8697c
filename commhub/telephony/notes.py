"""Call notes: what the agent writes from the pop lands in the history of every file the call matched."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commhub.errors import ValidationFailed
from commhub.push.dispatch import Dispatcher, Message
from commhub.store import calls as stored
from commhub.store import files
from commhub.store.history import add_entry, entry_json
from commhub.store.models import Agent

MAX_NOTE = 20_000


def clean_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("a note needs text", details={"field": "text"})
    if len(text) > MAX_NOTE:
        raise ValidationFailed(f"a note holds at most {MAX_NOTE} characters", details={"field": "text"})
    return text.strip()


async def note_on_call(session: AsyncSession, dispatcher: Dispatcher, call_id: int, agent: Agent,
                       text: object) -> tuple[dict[str, Any], list[Message]]:
    body = clean_text(text)
    call = await stored.get_call(session, call_id)
    contacts = [m["id"] for m in call.matches if m["kind"] == "contact"]
    organizations = [m["id"] for m in call.matches if m["kind"] == "organization"]
    entry = await add_entry(session, kind="note", title=_title(body), body=body, agent_id=agent.id,
                            contact_ids=contacts, organization_ids=organizations, call_id=call.id,
                            data={"call": {"id": call.id, "direction": call.direction,
                                           "number": call.customer_e164}})
    saved = await entry_json(session, entry)
    staged = await dispatcher.stage(session, [*call.agent_ids, agent.id], "history.added", {"entry": saved})
    return saved, staged


async def note_on_contact(session: AsyncSession, dispatcher: Dispatcher, contact_id: int, agent: Agent,
                          text: object) -> tuple[dict[str, Any], list[Message]]:
    body = clean_text(text)
    contact = await files.get_contact(session, contact_id)
    entry = await add_entry(session, kind="note", title=_title(body), body=body, agent_id=agent.id,
                            contact_ids=[contact_id],
                            organization_ids=[contact.organization_id] if contact.organization_id else [])
    saved = await entry_json(session, entry)
    staged = await dispatcher.stage(session, [agent.id], "history.added", {"entry": saved})
    return saved, staged


def _title(body: str) -> str:
    first_line = body.splitlines()[0]
    return first_line if len(first_line) <= 80 else first_line[:79] + "…"
