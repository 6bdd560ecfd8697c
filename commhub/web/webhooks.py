"""`POST /hooks/{source}`: a phone system's call event, verified, stored, answered as the vendor expects.

Order matters: size limit, then verification over the raw bytes, then parsing, then storing; the
reply goes out only after the commit, so a vendor that gets a 2xx can forget the event. Nothing
that fails a check before the commit changes stored state.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from commhub.errors import CommhubError
from commhub.keys import CALL_DESK, METRICS, REPLAY_GUARD, SETTINGS, SOURCES
from commhub.log import get_logger
from commhub.store.outage import is_database_outage
from commhub.web.access import WEBHOOK, count_failure, refuse_blocked
from commhub.telephony.contract import IgnoredEvent, RawRequest, Reply
from commhub.web.bodies import CLIENT_GONE, body_cut_off

log = get_logger("commhub.hooks")
MAX_HOOK_BODY = 64 * 1024


class BodyTooLarge(CommhubError):
    status = 413
    code = "body_too_large"


async def read_limited(request: web.Request, limit: int = MAX_HOOK_BODY) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"the body may hold at most {limit} bytes")
    chunks, size = [], 0
    try:
        while chunk := await request.content.read(16 * 1024):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the body may hold at most {limit} bytes")
            chunks.append(chunk)
    except CLIENT_GONE:
        raise body_cut_off() from None
    return b"".join(chunks)


def base_url(request: web.Request) -> str:
    """The URL the outside world calls commhub by (`server.public_url`, else what this request used)."""
    configured = request.app[SETTINGS].server.public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


def raw_request(request: web.Request, body: bytes) -> RawRequest:
    return RawRequest(method=request.method, url=base_url(request) + request.path_qs, headers=request.headers,
                      query=dict(request.query), body=body, received_at=datetime.now(UTC))


# Results in /metrics' commhub_webhooks_total, by the status a refusal carries.
RESULTS = {400: "invalid", 401: "refused", 403: "refused", 404: "unknown_source", 413: "invalid",
           429: "blocked", 503: "unavailable"}


async def receive_hook(request: web.Request) -> web.Response:
    name = request.match_info["source"]
    label = name if name in request.app[SOURCES] else "(unknown)"  # no new label for every name sent
    result = "error"
    try:
        response, result = await _receive(request)
        return response
    except CommhubError as refused:
        result = RESULTS.get(refused.status, "error")
        raise
    except Exception as exc:
        result = "unavailable" if isinstance(exc, TimeoutError) or is_database_outage(exc) else "error"
        raise
    finally:
        request.app[METRICS].webhooks.labels(label, result).inc()


async def _receive(request: web.Request) -> tuple[web.Response, str]:
    source = request.app[SOURCES].get(request.match_info["source"])
    refuse_blocked(request, WEBHOOK)
    raw = raw_request(request, await read_limited(request))
    context = source.context(base_url(request), request.app[REPLAY_GUARD])
    try:
        source.spec.verify(raw, context)
    except CommhubError as refused:
        # An admin wants to see a phone system that keeps failing verification (a changed secret, a
        # proxy rewriting the URL); what it sent stays out of the log.
        log.warning("hook.refused", source=source.name, code=refused.code, status=refused.status)
        if refused.status == 401:  # a wrong secret or signature; a replay (403) is no guess at the secret
            count_failure(request, WEBHOOK)
        raise
    try:
        events = source.spec.parse(raw, context)
    except IgnoredEvent as ignored:
        log.info("hook.ignored", source=source.name, reason=ignored.reason)
        return reply_response(ignored.reply or Reply("")), "ignored"
    received = await request.app[CALL_DESK].receive(source.name, source.options, events, raw.received_at)
    reply = source.spec.reply(raw, events, context)
    response = reply_response(reply)
    response.headers["X-Commhub-Calls"] = ",".join(str(item.call_id) for item in received)
    return response, "duplicate" if received and all(item.duplicate for item in received) else "stored"


def reply_response(reply: Reply) -> web.Response:
    body = reply.body.encode() if isinstance(reply.body, str) else reply.body
    return web.Response(body=body, status=reply.status, content_type=reply.content_type,
                        charset="utf-8" if reply.content_type.startswith(("text/", "application/")) else None)
