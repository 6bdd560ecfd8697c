"""Call notes: what the agent writes from the pop lands in the history of every file the call matched."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from commhub.errors import NotFound, ValidationFailed
from commhub.push.dispatch import Dispatcher, Message
from commhub.store import calls as stored
from commhub.store.history import add_entry, entry_json
from commhub.store.models import Contact

MAX_NOTE = 20_000


def clean_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("a note needs text", details={"field": "text"})
    if len(text) > MAX_NOTE:
        raise ValidationFailed(f"a note holds at most {MAX_NOTE} characters", details={"field": "text"})
    return text.strip()


def note_on_call(session: Session, dispatcher: Dispatcher, call_id: int, agent_id: int,
                 text: object) -> tuple[dict[str, Any], list[Message]]:
    body = clean_text(text)
    call = stored.get_call(session, call_id)
    contacts = [m["id"] for m in call.matches if m["kind"] == "contact"]
    organizations = [m["id"] for m in call.matches if m["kind"] == "organization"]
    entry = add_entry(session, kind="note", title=_title(body), body=body, agent_id=agent_id,
                      contact_ids=contacts, organization_ids=organizations, call_id=call.id,
                      data={"call": {"id": call.id, "direction": call.direction, "number": call.customer_e164}})
    saved = entry_json(session, entry)
    staged = dispatcher.stage(session, [*call.agent_ids, agent_id], "history.added", {"entry": saved})
    return saved, staged


def note_on_contact(session: Session, dispatcher: Dispatcher, contact_id: int, agent_id: int,
                    text: object) -> tuple[dict[str, Any], list[Message]]:
    body = clean_text(text)
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}")
    entry = add_entry(session, kind="note", title=_title(body), body=body, agent_id=agent_id,
                      contact_ids=[contact_id],
                      organization_ids=[contact.organization_id] if contact.organization_id else [])
    saved = entry_json(session, entry)
    staged = dispatcher.stage(session, [agent_id], "history.added", {"entry": saved})
    return saved, staged


def _title(body: str) -> str:
    first_line = body.splitlines()[0]
    return first_line if len(first_line) <= 80 else first_line[:79] + "…"
