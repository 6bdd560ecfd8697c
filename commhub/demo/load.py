"""The demo set behind `serve --demo` and the README walkthrough: loaded only into an empty database."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from commhub.contacts.names import contact_key
from commhub.store import agents, files
from commhub.store.call_sql import CallSql
from commhub.store.sql_db import SessionDb
from commhub.store.models import Contact, Organization, Task, utcnow
from commhub.web.schemas import AgentIn, ContactIn, OrganizationIn

DEMO_AGENT = "anna"


def demo_data() -> dict[str, Any]:
    return json.loads(resources.files("commhub.demo").joinpath("data.json").read_text(encoding="utf-8"))


async def load_demo(sessions: async_sessionmaker[AsyncSession], region: str) -> bool:
    """Fill an empty database with the demo set; False (and nothing written) if it holds any file."""
    data = demo_data()
    async with sessions() as session, session.begin():
        if await session.scalar(select(func.count()).select_from(Contact)) or await session.scalar(
                select(func.count()).select_from(Organization)):
            return False
        agent_ids = await _agents(session, data["agents"])
        for item in data["organizations"]:
            await files.create_file(session, OrganizationIn.model_validate(item).to_record(), region)
        for item in data["contacts"]:
            await files.create_file(session, ContactIn.model_validate(item).to_record(), region)
        await _history(session, data["history"], agent_ids)
        await _tasks(session, data["tasks"], agent_ids)
    return True


async def _agents(session: AsyncSession, items: list[dict[str, Any]]) -> dict[str, int]:
    ids = {}
    for item in items:
        spec = AgentIn.model_validate(item)
        agent = await agents.find_agent(session, spec.name) or await agents.create_agent(
            session, spec.name, extensions=spec.extensions, role=spec.role, email=spec.email, language=spec.language)
        ids[spec.name] = agent.id
    return ids


async def _contact(session: AsyncSession, name: str) -> Contact:
    first, last = name.rsplit(" ", 1)
    contact = await session.scalar(select(Contact).where(Contact.name_key == contact_key(first, last)))
    if contact is None:
        raise LookupError(f"demo data names an unknown contact {name!r}")
    return contact


async def _history(session: AsyncSession, items: list[dict[str, Any]], agent_ids: dict[str, int]) -> None:
    contacts = [await _contact(session, item["contact"]) for item in items]

    def write(sync: Session) -> None:
        sql, now = CallSql(SessionDb(sync)), utcnow()
        for item, contact in zip(items, contacts, strict=True):
            sql.add_entry(kind=item["kind"], title=item.get("title", ""), body=item.get("body", ""),
                          data=item.get("data", {}), agent_id=agent_ids.get(item.get("agent") or ""),
                          contact_ids=[contact.id],
                          organization_ids=[contact.organization_id] if contact.organization_id else [],
                          occurred_at=now - timedelta(days=item["days_ago"]), now=now, call_id=None)

    await session.run_sync(write)


async def _tasks(session: AsyncSession, items: list[dict[str, Any]], agent_ids: dict[str, int]) -> None:
    for item in items:
        contact = await _contact(session, item["contact"])
        session.add(Task(kind=item["kind"], title=item["title"], assignee_agent_id=agent_ids[item["agent"]],
                         contact_id=contact.id, phone_e164=item.get("phone"),
                         due_at=utcnow() + timedelta(days=item["due_days"])))


async def demo_token(sessions: async_sessionmaker[AsyncSession]) -> str:
    """A fresh token for the demo admin; earlier demo tokens are revoked so only one is valid."""
    async with sessions() as session, session.begin():
        agent = await agents.get_agent_by_name(session, DEMO_AGENT)
        await agents.revoke_tokens(session, agent, label="demo")
        return await agents.issue_token(session, agent, label="demo")
