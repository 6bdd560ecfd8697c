"""Each route's policy from the route table, applied in one place: the admin role, and the audit trail.

The handlers check the role too (defence in depth), but this middleware is what makes "every
admin route refuses an agent" true by construction, and what writes the audit event of every
read and change of personal data (`Route.audit`). The event is written before the response
leaves: a read the trail cannot record is not served (503).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from commhub import audit
from commhub.errors import Forbidden, Unauthorized
from commhub.keys import AGENT, AUTH, SESSIONS
from commhub.web.access import client_address

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTE_TABLE = web.AppKey("route_table", dict)
# Counts a handler adds to its audit event (what an erasure removed); keys from audit.DETAIL_KEYS.
AUDIT_DETAILS = web.RequestKey("audit_details", dict)
AUDITED = web.RequestKey("audited", bool)
METHOD_ACTIONS = {"GET": "read", "POST": "create", "PUT": "change", "PATCH": "change", "DELETE": "delete"}
# Query parameters whose names (never values) say what a search or list was for.
NEVER_NAMED = frozenset({"token"})


@web.middleware
async def route_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = _route(request)
    if route is None or route.public:
        return await handler(request)
    if request.get(AGENT) is None:  # every non-public route is under /api, where require_agent ran
        raise Unauthorized("send an agent token")
    if route.admin and request[AGENT].role != "admin":
        await _record(request, route, "denied", 403, _path_id(request))
        raise Forbidden("this needs the admin role")
    response = await handler(request)
    if route.audit is not None and response.status < 400 and not request.get(AUDITED, False):
        action = route.action or METHOD_ACTIONS[request.method]
        await _record(request, route, action, response.status, _subject_id(request, response))
    return response


def _route(request: web.Request) -> Any:
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return request.app[ROUTE_TABLE].get((request.method, resource.canonical))


def _path_id(request: web.Request) -> int | None:
    raw = request.match_info.get("id")
    return int(raw) if raw is not None and raw.isdigit() and len(raw) <= 12 else None


def _subject_id(request: web.Request, response: web.StreamResponse) -> int | None:
    if "id" in request.match_info:
        return _path_id(request)
    # A create answers with the new file: its id is the subject.
    if isinstance(response, web.Response) and response.status == 201 and response.content_type == "application/json":
        try:
            found = json.loads(response.body or b"{}").get("id")  # type: ignore[arg-type]
        except (ValueError, AttributeError):
            return None
        return found if isinstance(found, int) else None
    return None


async def record_before_sending(request: web.Request, status: int) -> None:
    """For a handler that streams its answer (the GDPR export): the event is written before the first
    byte leaves, and the middleware does not write it again."""
    route = _route(request)
    action = route.action or METHOD_ACTIONS[request.method]
    await _record(request, route, action, status, _path_id(request))
    request[AUDITED] = True


async def _record(request: web.Request, route: Any, action: str, status: int, subject_id: int | None) -> None:
    agent = request[AGENT]
    via = "console" if request.get(AUTH) == "cookie" else "api"
    actor = audit.Actor.of_agent(agent, via, client_address(request))
    # Only the names the route declares: a client could send anything as a name, a number included.
    named = sorted(name for name in set(request.query) if name in route.query and name not in NEVER_NAMED)
    details = {**({"by": named} if named else {}), **request.get(AUDIT_DETAILS, {})}
    async with request.app[SESSIONS]() as session, session.begin():
        audit.record(session, actor, action, route.audit, subject_id, route=f"{request.method} {route.path}",
                     status=status, details=details)
