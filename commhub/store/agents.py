"""Agents and their API tokens. Tokens are random, shown once, and stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from commhub.errors import Conflict, NotFound
from commhub.store.models import Agent, AgentExtension, AgentToken, utcnow

TOKEN_PREFIX = "chub_"
# Writing last_used_at on every request would turn every read into a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    # A 256-bit random token needs no slow KDF: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_agent(session: AsyncSession, name: str, *, extensions: list[str] | None = None,
                       role: str = "agent", email: str | None = None, language: str = "de") -> Agent:
    if await find_agent(session, name) is not None:
        raise Conflict(f"an agent named {name!r} exists already")
    taken = await _taken_extensions(session, extensions or [])
    if taken:
        raise Conflict(f"extension(s) already assigned: {', '.join(taken)}")
    agent = Agent(name=name, role=role, email=email, language=language,
                  extensions=[AgentExtension(extension=ext) for ext in extensions or []])
    session.add(agent)
    await session.flush()
    return agent


async def _taken_extensions(session: AsyncSession, extensions: list[str]) -> list[str]:
    if not extensions:
        return []
    rows = await session.scalars(select(AgentExtension.extension).where(AgentExtension.extension.in_(extensions)))
    return sorted(rows)


async def find_agent(session: AsyncSession, name: str) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.name == name))


async def get_agent_by_name(session: AsyncSession, name: str) -> Agent:
    agent = await find_agent(session, name)
    if agent is None:
        raise NotFound(f"no agent named {name!r}")
    return agent


async def list_agents(session: AsyncSession) -> list[Agent]:
    return list(await session.scalars(select(Agent).options(selectinload(Agent.extensions)).order_by(Agent.name)))


async def agent_with_extensions(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.scalar(select(Agent).options(selectinload(Agent.extensions)).where(Agent.id == agent_id))
    if agent is None:
        raise NotFound(f"no agent with id {agent_id}")
    return agent


async def issue_token(session: AsyncSession, agent: Agent, *, label: str = "",
                      valid_days: int | None = None, valid_hours: int | None = None) -> str:
    """Create a token and return it in clear; this is the only time it exists outside the caller."""
    token = new_token()
    lifetime = timedelta(days=valid_days or 0, hours=valid_hours or 0)
    expires = utcnow() + lifetime if lifetime else None
    session.add(AgentToken(agent_id=agent.id, token_hash=hash_token(token), label=label, expires_at=expires))
    await session.flush()
    return token


async def revoke_tokens(session: AsyncSession, agent: Agent, *, label: str | None = None) -> int:
    query = select(AgentToken).where(AgentToken.agent_id == agent.id, AgentToken.revoked_at.is_(None))
    if label is not None:
        query = query.where(AgentToken.label == label)
    tokens = list(await session.scalars(query))
    for token in tokens:
        token.revoked_at = utcnow()
    return len(tokens)


async def revoke_token(session: AsyncSession, token: str, *, label: str | None = None) -> int | None:
    """Revoke one token given in clear (a sign-out): its agent's id, or None when the token is
    unknown or already revoked.

    `label` keeps a caller to its own kind: signing out of the console must never end an API token
    that happened to be sent in its place."""
    query = select(AgentToken).where(AgentToken.token_hash == hash_token(token), AgentToken.revoked_at.is_(None))
    if label is not None:
        query = query.where(AgentToken.label == label)
    row = await session.scalar(query)
    if row is None:
        return None
    row.revoked_at = utcnow()
    return row.agent_id


async def authenticate(session: AsyncSession, token: str, now: datetime | None = None) -> Agent | None:
    """The active agent owning this unrevoked, unexpired token, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    # One round trip: the token and its agent together.
    found = (await session.execute(select(AgentToken, Agent).join(Agent, Agent.id == AgentToken.agent_id)
                                   .where(AgentToken.token_hash == digest))).first()
    if found is None:
        return None
    row, agent = found
    now = now or utcnow()
    if not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None or not agent.active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        await session.commit()
    return agent


def token_state(token: AgentToken, now: datetime | None = None) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


async def list_tokens(session: AsyncSession, agent: Agent, *, include_ended: bool = False) -> list[AgentToken]:
    """An agent's tokens, newest first; only the usable ones unless `include_ended`."""
    query = select(AgentToken).where(AgentToken.agent_id == agent.id).order_by(AgentToken.id.desc())
    tokens = list(await session.scalars(query))
    return tokens if include_ended else [t for t in tokens if token_state(t) == "active"]


async def revoke_token_id(session: AsyncSession, token_id: int, *, agent_id: int | None = None) -> AgentToken:
    """Revoke one token by its id (not its secret); `agent_id` limits it to that agent's own tokens."""
    row = await session.get(AgentToken, token_id)
    if row is None or (agent_id is not None and row.agent_id != agent_id):
        raise NotFound(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def prune_tokens(session: AsyncSession, *, ended_before: datetime) -> int:
    """Delete tokens that expired or were revoked before `ended_before` (every console sign-in makes one)."""
    ended = (AgentToken.revoked_at < ended_before) | (AgentToken.expires_at < ended_before)
    rows = list(await session.scalars(select(AgentToken).where(ended)))
    for row in rows:
        await session.delete(row)
    return len(rows)
