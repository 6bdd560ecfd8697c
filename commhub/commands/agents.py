"""`commhub agents add|token|list`."""

from __future__ import annotations

import argparse

from commhub.commands.common import open_database
from commhub.settings import Settings
from commhub.store import agents


async def agents_add(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session, session.begin():
        agent = await agents.create_agent(session, args.name, extensions=args.extension or [], role=args.role,
                                          email=args.email, language=args.language or settings.agents.language)
        token = await agents.issue_token(session, agent, label="cli", valid_days=settings.agents.token_days)
    extensions = ", ".join(args.extension or []) or "none"
    print(f"agent {args.name!r} added (role {args.role}, extensions: {extensions})")
    print(f"token (shown once, store it now): {token}")
    return 0


async def agents_token(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session, session.begin():
        agent = await agents.get_agent_by_name(session, args.name)
        token = await agents.issue_token(session, agent, label=args.label, valid_days=settings.agents.token_days)
    print(f"new token for {args.name!r} (shown once): {token}")
    return 0


async def agents_list(settings: Settings, _args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session:
        for agent in await agents.list_agents(session):
            extensions = ", ".join(sorted(e.extension for e in agent.extensions)) or "-"
            print(f"{agent.name:20} {agent.role:6} extensions: {extensions}")
    return 0
