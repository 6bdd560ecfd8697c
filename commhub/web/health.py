"""/healthz (liveness), /readyz (readiness) and /metrics (Prometheus).

Liveness restarts a process; readiness takes a node out of the load balancer. So /readyz fails
only for what this node cannot serve without: its database, a current schema, its push bus, its
mail duties' machinery, and not while it is shutting down. A mail server that does not answer is
shown but does not fail it: every node would fail alike, and the calls still work.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from commhub import __version__
from commhub.errors import Unauthorized
from commhub.keys import BUS, DRAINING, ENGINE, MAIL_SERVICE, METRICS, NODE, SCHEMA_HEADS, SETTINGS
from commhub.web.access import LOGIN, count_failure, refuse_blocked

HEALTH_QUERY_TIMEOUT_S = 2.0
OUTBOX_QUEUED = text("SELECT count(*) FROM mail_outbox WHERE status = 'queued'")


async def healthz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(HEALTH_QUERY_TIMEOUT_S), request.app[ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy", with the reason
        return web.json_response({"status": "error", "database": type(exc).__name__}, status=503)
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    reasons: list[str] = []
    body: dict[str, Any] = {"node": app[NODE], "version": __version__}
    try:
        async with asyncio.timeout(HEALTH_QUERY_TIMEOUT_S), app[ENGINE].connect() as connection:
            applied = set((await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        body["database"] = "ok"
        body["migrations"] = "current" if applied == app[SCHEMA_HEADS] else "pending"
        if applied != app[SCHEMA_HEADS]:
            reasons.append("database schema is not current: run `commhub db upgrade`")
    except Exception as exc:  # noqa: BLE001 - unreachable, timed out, no schema: all mean "not ready"
        body["database"] = type(exc).__name__
        reasons.append("database not reachable")
    bus = app.get(BUS)
    if bus is not None:
        body["push"] = "listening" if bus.connected.is_set() else "not listening"
        if not bus.connected.is_set():
            reasons.append("push bus not listening: pops of other nodes would not reach this node's agents")
    mail = app[MAIL_SERVICE]
    reasons.extend(mail.problems())
    body["mail"] = [{key: folder[key] for key in ("mailbox", "folder", "held_here", "connected", "error")}
                    for folder in mail.status()]
    if app[DRAINING].is_set():
        body.update(status="draining", reasons=["shutting down"])
        return web.json_response(body, status=503)
    if reasons:
        body.update(status="not ready", reasons=reasons)
        return web.json_response(body, status=503)
    return web.json_response({"status": "ready", **body})


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    _check_metrics_token(request)
    registry = app[METRICS]
    try:
        async with asyncio.timeout(HEALTH_QUERY_TIMEOUT_S):
            async with app[ENGINE].connect() as connection:
                queued = (await connection.execute(OUTBOX_QUEUED)).scalar_one()
            registry.outbox_size.set(queued)
    except Exception:  # noqa: BLE001 - a scrape during an outage still shows the rest
        pass
    response = web.Response(body=generate_latest(registry.registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def _check_metrics_token(request: web.Request) -> None:
    expected = request.app[SETTINGS].server.metrics_token
    if expected is None:
        return
    refuse_blocked(request, LOGIN)
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sent, expected.get_secret_value().encode()):
        count_failure(request, LOGIN)
        raise Unauthorized("send the metrics token: Authorization: Bearer <[server] metrics_token>")
