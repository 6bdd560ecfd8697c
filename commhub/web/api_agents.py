"""/api/me and /api/agents (admin): who is signed in, and managing agents and their tokens."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from commhub.keys import SESSIONS, SETTINGS
from commhub.log import get_logger
from commhub.store import agents
from commhub.store.models import Agent
from commhub.web.bodies import current_agent, read_json, require_admin
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
