"""`GET /api/audit` (admin): the audit trail, newest first, filtered like `commhub audit`."""

from __future__ import annotations

from aiohttp import web

from commhub import audit
from commhub.commands.audit import parse_day, parse_subject
from commhub.keys import SESSIONS
from commhub.web.bodies import int_param


async def audit_trail(request: web.Request) -> web.Response:
    query = request.query
    kind, subject_id = parse_subject(query.get("subject"))
    limit = int_param(request, "limit", 100, high=1000)
    wanted = audit.AuditQuery(
        subject_kind=kind, subject_id=subject_id, action=query.get("action"),
        agent_id=int_param(request, "agent_id", 0, low=1, high=2**31 - 1) if "agent_id" in query else None,
        since=parse_day(query.get("since"), "since"), until=parse_day(query.get("until"), "until"),
        before=int_param(request, "before", 0, low=1, high=2**62) if "before" in query else None, limit=limit + 1)
    async with request.app[SESSIONS]() as session:
        events = list(await audit.query(session, wanted))
    page = events[:limit]
    return web.json_response({"items": [audit.event_json(event) for event in page],
                              "next": str(page[-1].id) if len(events) > limit else None})
