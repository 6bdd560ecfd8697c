"""Every response carries the security headers; every failure becomes a JSON error body; every
/api request carries a known agent."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from commhub.errors import CommhubError, TooManyRequests, Unauthorized, Unavailable
from commhub.keys import AGENT, AUTH
from commhub.log import get_logger
from commhub.store.outage import is_database_outage
from commhub.web.access import agent_for_token
from commhub.web.console_session import credentials, refuse_cross_site

log = get_logger("commhub.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# /api/session signs in (no credentials yet) and out (answers 204 with or without a cookie).
PUBLIC_API_PATHS = frozenset({"/api/openapi.json", "/api/session"})
# JSON and files need no more than this: nothing may load, nothing may frame it. Pages and the
# email view set their own, wider policy.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, so JSON errors, 404s and files get the headers too; setdefault, so a handler's own
    policy (the sandboxed email view, attachments) stays."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect json_errors lets through
        _harden(request, exc.headers)
        raise
    # A prepared response (the WebSocket, once it has closed) has sent its headers already.
    if not response.prepared:
        _harden(request, response.headers)
    return response


def _harden(request: web.Request, headers: MutableMapping[str, str]) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # A handler that says who may frame it (the email view: its own origin) keeps that answer.
    if "X-Frame-Options" not in headers and "frame-ancestors" not in headers.get("Content-Security-Policy", ""):
        headers["X-Frame-Options"] = "DENY"
    headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    # Only over HTTPS: sent over plain HTTP it is ignored, and a test setup on http must stay usable.
    if request.secure:
        headers.setdefault("Strict-Transport-Security", HSTS)


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
        if isinstance(exc, (TooManyRequests, Unavailable)):
            response.headers["Retry-After"] = str(exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 413 else "request body too large"
        response = error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), message)
        for header in ("Allow", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
    except Exception as exc:
        if is_database_outage(exc):
            # Warning, not exception: an outage is the operator's to fix, and every request would
            # otherwise dump the same traceback.
            log.warning("request.database_unavailable", method=request.method, path=request.path,
                        error=type(exc).__name__)
            response = error_response(503, Unavailable.code, "the database is unavailable; retry later")
            response.headers["Retry-After"] = str(Unavailable.retry_after)
            return response
        log.exception("request.failed", method=request.method, path=request.path)
        response = error_response(500, "internal_error", "internal error; the details are in the server log")
    log.debug("request", method=request.method, path=request.path, status=response.status,
              ms=round((time.perf_counter() - started) * 1000, 2))
    return response


@web.middleware
async def require_agent(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
        return await handler(request)
    found = credentials(request)
    if found is None:
        raise Unauthorized("send an agent token: Authorization: Bearer <token> (or sign in to the console)")
    if found.via == "cookie":
        refuse_cross_site(request)  # before any database work: a refused write costs nothing
    agent = await agent_for_token(request, found.token)
    request[AGENT] = agent
    request[AUTH] = found.via
    return await handler(request)
