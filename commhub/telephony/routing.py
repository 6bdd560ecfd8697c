"""Which agents a call rings: its targets mapped through the agents' extensions, else a fallback.

CTI-NOTES: "a pop on every agent instead of the ringing one" is the complaint users file most
(zammad #2177, #2044). A call goes to the agents whose extension, user id or direct number it names;
only a call whose targets map to nobody goes to the source's `fallback_agents`, or else to every
active agent, so that no customer rings unseen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commhub.contacts.phone import normalise
from commhub.store.models import Agent, AgentExtension


def routing_keys(values: Iterable[str | None], region: str) -> list[str]:
    """The keys to look up: each value as sent, and as E.164 when it is a phone number."""
    keys: list[str] = []
    for value in values:
        if not value:
            continue
        keys.append(value.strip())
        number = normalise(value, region)
        if number.e164 and number.e164 != value:
            keys.append(number.e164)
    return list(dict.fromkeys(keys))


def agents_for_keys(session: Session, keys: list[str]) -> list[int]:
    if not keys:
        return []
    rows = session.scalars(
        select(AgentExtension.agent_id).join(Agent, Agent.id == AgentExtension.agent_id)
        .where(AgentExtension.extension.in_(keys), Agent.active.is_(True)))
    return sorted(set(rows))


def fallback_agents(session: Session, options: Mapping[str, Any]) -> list[int]:
    names = options.get("fallback_agents")
    statement = select(Agent.id).where(Agent.active.is_(True))
    if names:
        statement = statement.where(Agent.name.in_(list(names)))
    return sorted(session.scalars(statement))


def route(session: Session, keys: list[str], options: Mapping[str, Any]) -> tuple[list[int], bool]:
    """(agent ids, whether the fallback was used)."""
    agents = agents_for_keys(session, keys)
    if agents:
        return agents, False
    return fallback_agents(session, options), True
