"""/healthz: the process is up and its database answers."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from commhub import __version__
from commhub.keys import ENGINE

HEALTH_QUERY_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(HEALTH_QUERY_TIMEOUT_S), request.app[ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy", with the reason
        return web.json_response({"status": "error", "database": type(exc).__name__}, status=503)
    return web.json_response({"status": "ok", "version": __version__})
