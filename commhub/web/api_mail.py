"""Emails over REST: one message (HTML sanitised), its attachments and raw source, the unassigned
list, admin warnings, erasure, and sending."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import nh3
from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.errors import BadRequest, NotFound
from commhub.keys import MAIL_DATABASE, MAIL_SERVICE, SESSIONS
from commhub.log import get_logger
from commhub.mail.sending import ComposeError, Draft
from commhub.store.models import (
    Blob,
    Contact,
    Email,
    EmailAttachment,
    EmailLocation,
    HistoryEntry,
    HistoryLink,
    MailWarning,
    utcnow,
)
from commhub.web.bodies import current_agent, int_param, path_id, read_json, require_admin
from commhub.web.schemas import Body

log = get_logger(__name__)
# Types a browser may show inline; anything else is offered as a download (an HTML or SVG
# attachment opened inline would run in commhub's origin).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"})


class MailIn(Body):
    # Checked when the message is composed, so the error names the value ("to: 'kaputt' is not …").
    to: list[str] = Field(default_factory=list, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    bcc: list[str] = Field(default_factory=list, max_length=100)
    subject: str = Field(max_length=500)
    text: str = Field(max_length=1_000_000)
    html: str | None = Field(None, max_length=2_000_000)
    reply_to_email_id: int | None = None  # threads the message as an answer to this one
    contact_id: int | None = None  # files it to this contact too, whatever the addresses say


def sanitise(html: str, cid_urls: Mapping[str, str] | None = None) -> str:
    """What a browser may render of a stranger's HTML: no scripts, styles, forms or remote loads
    beyond plain links and images (nh3, the Rust `ammonia` sanitiser).

    With `cid_urls` ({content id: URL}), `cid:` references to the message's own parts become those
    URLs and unknown ones are dropped; without it nh3 drops every `cid:` (not a scheme it allows)."""
    if cid_urls is None:
        return nh3.clean(html, link_rel="noopener noreferrer nofollow")

    def resolve(_tag: str, _attribute: str, value: str) -> str | None:
        # nh3 checks schemes before calling this, so every other value arrives already vetted.
        if value[:4].lower() != "cid:":
            return value
        return cid_urls.get(unquote(value[4:]))

    return nh3.clean(html, link_rel="noopener noreferrer nofollow", attribute_filter=resolve,
                     url_schemes=nh3.ALLOWED_URL_SCHEMES | {"cid"})


async def _email(session: AsyncSession, email_id: int) -> Email:
    found = await session.get(Email, email_id)
    if found is None:
        raise NotFound(f"email {email_id} does not exist")
    return found


def _summary(email: Email) -> dict[str, Any]:
    return {"id": email.id, "subject": email.subject, "from": {"name": email.from_name, "address": email.from_address},
            "sent_at": email.sent_at.isoformat() if email.sent_at else None, "direction": email.direction,
            "status": email.status, "flags": email.flags, "assigned": email.assigned}


async def get_email(request: web.Request) -> web.Response:
    email_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        email = await _email(session, email_id)
        attachments = list(await session.scalars(
            select(EmailAttachment).where(EmailAttachment.email_id == email_id).order_by(EmailAttachment.id)))
        locations = list(await session.scalars(
            select(EmailLocation).where(EmailLocation.email_id == email_id).order_by(EmailLocation.id)))
        thread = list(await session.scalars(
            select(Email).where(Email.thread_key == email.thread_key).order_by(Email.sent_at, Email.id).limit(200)))
        links = (await session.execute(
            select(HistoryLink.contact_id, HistoryLink.organization_id).join(
                HistoryEntry, HistoryEntry.id == HistoryLink.entry_id).where(HistoryEntry.email_id == email_id))).all()
    return web.json_response({
        **_summary(email),
        "message_id": email.message_id, "in_reply_to": email.in_reply_to, "references": email.refs,
        "addresses": email.addresses, "text": email.text_body,
        "html": sanitise(email.html_body) if email.html_body else None,
        "size": email.size, "headers_only": email.headers_only, "unparsable": email.unparsable,
        "problems": email.problems,
        "attachments": [{"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "inline": a.inline, "content_id": a.content_id,
                         "url": f"/api/emails/{email_id}/attachments/{a.id}"} for a in attachments],
        "locations": [{"mailbox": loc.mailbox, "folder": loc.folder, "uidvalidity": loc.uidvalidity, "uid": loc.uid}
                      for loc in locations],
        "thread": [_summary(item) for item in thread],
        "contact_ids": [c for c, _ in links if c is not None],
        "organization_ids": [o for _, o in links if o is not None],
    })


async def get_attachment(request: web.Request) -> web.Response:
    email_id, attachment_id = path_id(request), path_id(request, "attachment_id")
    async with request.app[SESSIONS]() as session:
        attachment = await session.get(EmailAttachment, attachment_id)
        if attachment is None or attachment.email_id != email_id:
            raise NotFound(f"email {email_id} has no attachment {attachment_id}")
        blob = await session.get(Blob, attachment.blob_sha256)
    if blob is None:
        raise NotFound(f"the content of attachment {attachment_id} is gone")
    inline = attachment.content_type in INLINE_TYPES
    return web.Response(body=blob.data, content_type=attachment.content_type if inline else "application/octet-stream",
                        headers=_disposition("inline" if inline else "attachment", attachment.filename or "attachment"))


async def get_raw(request: web.Request) -> web.Response:
    email_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        email = await _email(session, email_id)
        blob = await session.get(Blob, email.raw_sha256) if email.raw_sha256 else None
    if blob is None:
        raise NotFound(f"the source of email {email_id} is not kept")
    return web.Response(body=blob.data, content_type="message/rfc822",
                        headers=_disposition("attachment", f"email-{email_id}.eml"))


def _disposition(kind: str, filename: str) -> dict[str, str]:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    return {"Content-Disposition": f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


async def delete_email(request: web.Request) -> web.Response:
    """Erase a message: it, its history entry and attachments go; its hashes stay so it never returns."""
    admin = require_admin(request)
    email_id = path_id(request)
    erased = await request.app[MAIL_DATABASE].run(lambda sql: sql.erase(email_id, utcnow()))
    if not erased:
        raise NotFound(f"email {email_id} does not exist")
    log.info("email.erased", id=email_id, by=admin.id)
    return web.Response(status=204)


async def unassigned(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, high=200)
    before = int_param(request, "before", 0, low=0, high=2**62) if "before" in request.query else None
    statement = select(Email).where(Email.assigned.is_(False)).order_by(Email.id.desc()).limit(limit + 1)
    if before:
        statement = statement.where(Email.id < before)
    async with request.app[SESSIONS]() as session:
        found = list(await session.scalars(statement))
    page = found[:limit]
    return web.json_response({"items": [_summary(e) for e in page],
                              "next": str(page[-1].id) if len(found) > limit else None})


async def warnings(request: web.Request) -> web.Response:
    require_admin(request)
    limit = int_param(request, "limit", 50, high=500)
    async with request.app[SESSIONS]() as session:
        found = list(await session.scalars(select(MailWarning).order_by(MailWarning.id.desc()).limit(limit)))
    return web.json_response({"items": [{
        "id": w.id, "mailbox": w.mailbox, "folder": w.folder, "uid": w.uid, "kind": w.kind, "detail": w.detail,
        "email_id": w.email_id, "created_at": w.created_at.isoformat()} for w in found]})


async def status(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response({"folders": request.app[MAIL_SERVICE].status()})


async def send(request: web.Request) -> web.Response:
    """File the message, queue it and try to send it now: 201 "sent", or 202 "queued" when the SMTP
    server cannot take it yet (the outbox keeps trying)."""
    agent = current_agent(request)
    body = await read_json(request, MailIn)
    draft = Draft(to=body.to, cc=body.cc, bcc=body.bcc, subject=body.subject, text=body.text, html=body.html)
    contact_ids: list[int] = []
    async with request.app[SESSIONS]() as session:
        if body.reply_to_email_id is not None:
            answered = await _email(session, body.reply_to_email_id)
            if answered.message_id:
                draft.in_reply_to, draft.references = answered.message_id, list(answered.refs)
        if body.contact_id is not None:
            if await session.get(Contact, body.contact_id) is None:
                raise BadRequest(f"contact_id {body.contact_id} does not exist")
            contact_ids.append(body.contact_id)
    try:
        sent = await request.app[MAIL_SERVICE].outbox.submit(draft, agent_id=agent.id, contact_ids=contact_ids)
    except ComposeError as exc:
        raise BadRequest(str(exc)) from None
    log.info("email.submitted", id=sent.email_id, status=sent.status, by=agent.id)
    return web.json_response({"email_id": sent.email_id, "message_id": sent.message_id, "status": sent.status,
                              "error": sent.error}, status=201 if sent.status == "sent" else 202)
