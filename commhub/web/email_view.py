"""`GET /api/emails/{id}/body.html`: an email as a small document for the console's `<iframe sandbox>`.

Served from commhub's own origin, so the console can frame it. The response's own CSP does the
containment whatever the iframe says: `sandbox` (no scripts, forms or popups, an opaque origin),
images only from commhub or data:, no remote loads at all, so a stranger's HTML can neither run nor
tell the sender it was read.

Embedded images (`cid:`) become data: URIs. The opaque origin makes every request the document
sends cross-site, so the browser leaves the SameSite=Strict console cookie off and an attachment URL
would answer 401 (seen in Chromium). Parts too large for the budget, or not a plain image type, point
at their attachment URL instead.
"""

from __future__ import annotations

import base64
import html
import re
from urllib.parse import unquote

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.errors import NotFound
from commhub.keys import SESSIONS
from commhub.store.models import Blob, Email, EmailAttachment
from commhub.web.api_mail import sanitise
from commhub.web.bodies import path_id

BODY_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'"
# nh3 writes every attribute it keeps double-quoted, so this reads its output reliably.
REMOTE_IMAGE = re.compile(r"<img\b[^>]*\ssrc=\"https?://", re.IGNORECASE)
# Only picks which parts to load; the sanitiser decides what the document may contain.
CID_REFERENCE = re.compile(r"cid:([^\"'\s>)]+)", re.IGNORECASE)
# Raster types only: an SVG is a document of its own.
EMBEDDABLE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Signature logos and the odd screenshot fit; a mail of photos falls back to links for the rest.
EMBED_BUDGET = 5 * 1024 * 1024


async def email_body(request: web.Request) -> web.Response:
    email_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        email = await session.get(Email, email_id)
        if email is None:
            raise NotFound(f"email {email_id} does not exist")
        if email.html_body:
            body = sanitise(email.html_body, await _cid_urls(session, email_id, email.html_body))
        else:
            body = f'<pre style="white-space: pre-wrap">{html.escape(email.text_body or "")}</pre>'
    return web.Response(
        text=f"<!doctype html><meta charset=utf-8>{body}", content_type="text/html", charset="utf-8",
        headers={"Content-Security-Policy": BODY_POLICY, "X-Frame-Options": "SAMEORIGIN",
                 # Remote images stay in the markup, where the policy blocks them, so the console
                 # can tell the agent how many the sender tried to load.
                 "X-Remote-Images": str(len(REMOTE_IMAGE.findall(body))),
                 "Cache-Control": "private, no-cache"})


async def _cid_urls(session: AsyncSession, email_id: int, source: str) -> dict[str, str]:
    """{content id: data: URI or attachment URL} for the parts the HTML refers to."""
    referenced = {unquote(found) for found in CID_REFERENCE.findall(source)}
    if not referenced:
        return {}
    # Any part with a Content-ID, not only those marked inline: senders mark an embedded logo
    # either way. Filtered here rather than in SQL: a message has few parts, its HTML may name
    # thousands of ids.
    parts = (await session.execute(
        select(EmailAttachment.content_id, EmailAttachment.id, EmailAttachment.content_type,
               EmailAttachment.size, EmailAttachment.blob_sha256)
        .where(EmailAttachment.email_id == email_id, EmailAttachment.content_id.is_not(None))
        .order_by(EmailAttachment.id))).all()
    urls: dict[str, str] = {}
    embed: dict[str, tuple[str, str]] = {}  # content id -> (type, blob)
    budget = EMBED_BUDGET
    for content_id, attachment_id, content_type, size, blob in parts:
        if content_id in urls or content_id not in referenced:
            continue
        urls[content_id] = f"/api/emails/{email_id}/attachments/{attachment_id}"
        if content_type in EMBEDDABLE and size <= budget:
            embed[content_id] = (content_type, blob)
            budget -= size
    if embed:
        data = dict((await session.execute(select(Blob.sha256, Blob.data).where(
            Blob.sha256.in_({blob for _, blob in embed.values()})))).all())
        for content_id, (content_type, blob) in embed.items():
            if blob in data:
                urls[content_id] = f"data:{content_type};base64,{base64.b64encode(data[blob]).decode()}"
    return urls
