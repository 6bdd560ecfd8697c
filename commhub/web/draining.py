"""Draining a node on SIGTERM, before aiohttp's own cleanup.

aiohttp's cleanup closes every connection it has at once and ignores what still arrives on them: a
webhook whose body was on its way would get no answer. So a node first stops listening, says
`draining` in /readyz, sends its agents elsewhere (1012) and waits for the requests it is answering,
their bodies included, up to `[server] shutdown_seconds`; only then does the cleanup begin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from commhub.keys import DRAINING, HUB, IN_FLIGHT, NODE
from commhub.log import get_logger

log = get_logger("commhub.shutdown")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
POLL_S = 0.02


@web.middleware
async def count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every request but the long-lived WebSocket counts until its response is written."""
    if request.path == "/ws":
        return await handler(request)
    counter = request.app[IN_FLIGHT]
    counter[0] += 1
    try:
        response = await handler(request)
        if request.app[DRAINING].is_set():
            response.force_close()  # a keep-alive connection must not bring the next request here
        return response
    finally:
        counter[0] -= 1


async def begin(app: web.Application) -> None:
    """Say so, and send the agents to another node. Safe to call twice (SIGTERM, then the cleanup)."""
    if app[DRAINING].is_set():
        return
    app[DRAINING].set()
    log.info("shutdown.started", node=app[NODE], sockets=app[HUB].sessions(), requests=app[IN_FLIGHT][0])
    await app[HUB].close_all()


async def drain(app: web.Application, stop_listening: Callable[[], Awaitable[None]], within_s: float) -> None:
    await stop_listening()
    await begin(app)
    deadline = time.monotonic() + within_s
    while app[IN_FLIGHT][0] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    if app[IN_FLIGHT][0] > 0:
        log.warning("shutdown.requests_cut_off", node=app[NODE], requests=app[IN_FLIGHT][0])
