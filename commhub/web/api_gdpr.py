"""`GET /api/gdpr/contacts/{id}/export` and `POST /api/gdpr/contacts/{id}/erase` (admin)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from commhub.gdpr.erase import erase_contact
from commhub.gdpr.export import export_contact
from commhub.keys import SESSIONS
from commhub.log import get_logger
from commhub.web.bodies import path_id, require_admin
from commhub.web.route_policy import AUDIT_DETAILS, record_before_sending

log = get_logger("commhub.gdpr")
CHUNK = 256 * 1024


async def export(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    contact_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        archive = await export_contact(session, contact_id)
    try:
        request[AUDIT_DETAILS] = {"files": len(archive.files), "bytes": archive.size}
        await record_before_sending(request, 200)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="commhub-contact-{contact_id}.zip"'})
        response.content_length = archive.size
        await response.prepare(request)
        with archive.path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        with contextlib.suppress(OSError):
            archive.path.unlink()


async def erase(request: web.Request) -> web.Response:
    admin = require_admin(request)
    contact_id = path_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        counts = await erase_contact(session, contact_id)
    request[AUDIT_DETAILS] = counts
    log.info("contact.erased", by=admin.id, **counts)
    return web.json_response({"erased": True, "counts": counts})
