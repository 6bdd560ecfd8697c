"""/api/me and /api/agents (admin): who is signed in, and managing agents and their tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from commhub.keys import SESSIONS, SETTINGS
from commhub.log import get_logger
from commhub.store import agents
from commhub.store.models import Agent, AgentToken
from commhub.web.bodies import current_agent, path_id, read_json, require_admin
from commhub.web.schemas import AgentIn

log = get_logger("commhub.api")


def agent_json(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.name, "email": agent.email, "role": agent.role,
            "language": agent.language, "active": agent.active,
            "extensions": sorted(ext.extension for ext in agent.extensions)}


async def me(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        return web.json_response(agent_json(await agents.agent_with_extensions(session, current_agent(request).id)))


async def list_agents(request: web.Request) -> web.Response:
    require_admin(request)
    async with request.app[SESSIONS]() as session:
        return web.json_response({"items": [agent_json(agent) for agent in await agents.list_agents(session)]})


async def create_agent(request: web.Request) -> web.Response:
    admin = require_admin(request)
    body = await read_json(request, AgentIn)
    async with request.app[SESSIONS]() as session, session.begin():
        agent = await agents.create_agent(session, body.name, extensions=body.extensions, role=body.role,
                                          email=body.email, language=body.language)
        token = await agents.issue_token(session, agent, label="api",
                                         valid_days=request.app[SETTINGS].agents.token_days)
        payload = agent_json(agent)
    log.info("agent.created", id=payload["id"], role=body.role, by=admin.id)
    return web.json_response({**payload, "token": token}, status=201)


def token_json(token: AgentToken) -> dict[str, Any]:
    """A token's facts; never the token itself, which only its holder ever saw."""
    return {"id": token.id, "label": token.label, "state": agents.token_state(token),
            **{name: _iso(getattr(token, name)) for name in ("created_at", "expires_at", "last_used_at", "revoked_at")}}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def my_tokens(request: web.Request) -> web.Response:
    return await _tokens_of(request, current_agent(request).id)


async def agent_tokens(request: web.Request) -> web.Response:
    require_admin(request)
    return await _tokens_of(request, path_id(request))


async def _tokens_of(request: web.Request, agent_id: int) -> web.Response:
    everything = request.query.get("all") == "1"
    async with request.app[SESSIONS]() as session:
        agent = await agents.agent_with_extensions(session, agent_id)
        tokens = await agents.list_tokens(session, agent, include_ended=everything)
    return web.json_response({"items": [token_json(token) for token in tokens]})


async def revoke_token(request: web.Request) -> web.Response:
    """An admin revokes any token; an agent only its own (a lost laptop's console session)."""
    agent = current_agent(request)
    owner = None if agent.role == "admin" else agent.id
    async with request.app[SESSIONS]() as session, session.begin():
        row = await agents.revoke_token_id(session, path_id(request), agent_id=owner)
        revoked_for = row.agent_id
    log.info("token.revoked", token_id=path_id(request), agent_id=revoked_for, by=agent.id)
    return web.Response(status=204)
