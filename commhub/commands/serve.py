"""`commhub serve [--demo]`."""

from __future__ import annotations

import argparse

from aiohttp import web

from commhub.app import build_app
from commhub.commands.common import open_database
from commhub.demo.load import demo_token, load_demo
from commhub.log import get_logger
from commhub.settings import Settings

log = get_logger("commhub.serve")


async def prepare_demo(settings: Settings) -> str:
    async with open_database(settings) as db:
        loaded = await load_demo(db.sessions, settings.phone.default_region)
        token = await demo_token(db.sessions)
    log.info("demo.ready", loaded=loaded)
    return token


def print_welcome(settings: Settings, token: str | None) -> None:
    base = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    print(f"commhub is starting on {base}/ — API {base}/api (OpenAPI: {base}/api/openapi.json), "
          f"health {base}/healthz", flush=True)
    if token:
        print(f"demo agent 'anna' (admin), token: {token}", flush=True)
        print(f"try: curl -H 'Authorization: Bearer {token}' '{base}/api/contacts?phone=030%201234567-10'",
              flush=True)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    token = asyncio.run(prepare_demo(settings)) if args.demo else None
    print_welcome(settings, token)
    web.run_app(build_app(settings), host=settings.server.host, port=settings.server.port, print=None,
                access_log=None)
    return 0
