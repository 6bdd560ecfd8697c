"""Every failure becomes a JSON error body; every /api request carries a known agent."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from commhub.errors import CommhubError, Unauthorized
from commhub.keys import AGENT, SESSIONS
from commhub.log import get_logger
from commhub.store.agents import authenticate

log = get_logger("commhub.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_API_PATHS = frozenset({"/api/openapi.json"})


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except CommhubError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 413 else "request body too large"
        response = error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), message)
        for header in ("Allow", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
    except Exception:
        log.exception("request.failed", method=request.method, path=request.path)
        response = error_response(500, "internal_error", "internal error; the details are in the server log")
    log.debug("request", method=request.method, path=request.path, status=response.status,
              ms=round((time.perf_counter() - started) * 1000, 2))
    return response


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@web.middleware
async def require_agent(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("send an agent token: Authorization: Bearer <token>")
    async with request.app[SESSIONS]() as session:
        agent = await authenticate(session, token)
    if agent is None:
        raise Unauthorized("unknown, revoked or expired token")
    request[AGENT] = agent
    return await handler(request)
