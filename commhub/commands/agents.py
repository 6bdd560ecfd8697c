"""`commhub agents add|token|list|tokens|revoke`."""

from __future__ import annotations

import argparse
from datetime import datetime

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
        token = await agents.issue_token(session, agent, label=args.label,
                                         valid_days=args.days or settings.agents.token_days)
    print(f"new token for {args.name!r} (shown once): {token}")
    return 0


async def agents_list(settings: Settings, _args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session:
        for agent in await agents.list_agents(session):
            extensions = ", ".join(sorted(e.extension for e in agent.extensions)) or "-"
            print(f"{agent.name:20} {agent.role:6} extensions: {extensions}")
    return 0


async def agents_tokens(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session:
        agent = await agents.get_agent_by_name(session, args.name)
        tokens = await agents.list_tokens(session, agent, include_ended=args.all)
    if not tokens:
        print(f"{args.name!r} has no {'' if args.all else 'active '}tokens")
    for token in tokens:
        print(f"{token.id:>6}  {agents.token_state(token):8} {token.label or '-':12} created {_day(token.created_at)}"
              f"  expires {_day(token.expires_at)}  last used {_day(token.last_used_at)}")
    return 0


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


async def agents_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session, session.begin():
        agent = await agents.get_agent_by_name(session, args.name)
        if args.all:
            count = await agents.revoke_tokens(session, agent)
        else:
            await agents.revoke_token_id(session, args.token, agent_id=agent.id)
            count = 1
    print(f"revoked {count} token(s) of {args.name!r}; clients using them are refused from now on")
    return 0
