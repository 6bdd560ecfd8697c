"""The browser console's sign-in, and the one reader of a request's credentials.

`POST /api/session` trades an agent token for a cookie holding a fresh console token of its own:
HttpOnly, so the page's JavaScript never holds a credential an injected script could carry off,
and revocable on its own at sign-out without ending the agent's API token.

The /api middleware and the agent WebSocket both read credentials and judge Origin headers here,
so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

from commhub.errors import Forbidden
from commhub.keys import SESSIONS, SETTINGS
from commhub.log import get_logger
from commhub.store import agents
from commhub.web.access import agent_for_token
from commhub.web.api_agents import agent_json
from commhub.web.bodies import read_json
from commhub.web.schemas import SessionIn

log = get_logger("commhub.console")
COOKIE = "commhub_session"
# Console tokens carry this label so a sign-out can only ever revoke a console token.
CONSOLE_LABEL = "console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Via = Literal["bearer", "cookie", "query"]


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    via: Via


def _token(value: str | None) -> str | None:
    """Tokens are ASCII. Header bytes that are not UTF-8 reach us as surrogate escapes, which no token
    matches and which hashing the token could not even encode: such a value is no token at all."""
    return value if value and value.isascii() else None


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return _token(token.strip()) if scheme.lower() == "bearer" else None


def session_cookie(request: web.Request) -> str | None:
    return _token(request.cookies.get(COOKIE))


def credentials(request: web.Request, *, query: bool = False) -> Credentials | None:
    """The token a request presents. Explicit credentials (the header, then `?token=` where the
    caller allows it) win over the cookie, which a browser attaches whether the page meant it or not."""
    if token := bearer_token(request):
        return Credentials(token, "bearer")
    if query and (token := _token(request.query.get("token"))):
        return Credentials(token, "query")
    if token := session_cookie(request):
        return Credentials(token, "cookie")
    return None


def origin_allowed(request: web.Request, origin: str | None) -> bool:
    """True when `origin` is commhub itself: the host the request was sent to, or the public URL's
    host (behind a proxy that rewrites Host)."""
    if not origin:
        return False
    allowed = {request.host.lower()}
    public = request.app[SETTINGS].server.public_url
    try:
        if public:
            allowed.add(urlsplit(public).netloc.lower())
        return urlsplit(origin).netloc.lower() in allowed
    except ValueError:  # "http://[::1" and the like: not an origin we know
        return False


def refuse_cross_site(request: web.Request) -> None:
    """A browser attaches the cookie to requests a foreign page triggers too. SameSite=Strict stops
    those in current browsers; requiring our own Origin on writes stops them everywhere else."""
    if request.method not in SAFE_METHODS and not origin_allowed(request, request.headers.get("Origin")):
        raise Forbidden("cross-site request refused")


def _secure(request: web.Request) -> bool:
    public = request.app[SETTINGS].server.public_url or ""
    # Behind a TLS-terminating proxy request.secure is False; the configured public URL says https.
    return request.secure or public.startswith("https")


async def sign_in(request: web.Request) -> web.Response:
    body = await read_json(request, SessionIn)
    # No cookie is involved yet, but a foreign page could still sign a browser into someone else's
    # account (login CSRF); tools without an Origin header are fine.
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(request, origin):
        raise Forbidden("cross-site request refused")
    hours = request.app[SETTINGS].agents.session_hours
    agent = await agent_for_token(request, body.token)
    async with request.app[SESSIONS]() as session:
        console_token = await agents.issue_token(session, agent, label=CONSOLE_LABEL, valid_hours=hours)
        await session.commit()
        payload = agent_json(await agents.agent_with_extensions(session, agent.id))
    response = web.json_response({"agent": payload}, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, console_token, max_age=hours * 3600, path="/", httponly=True,
                        samesite="Strict", secure=_secure(request) or None)
    log.info("console.signed_in", agent_id=payload["id"], hours=hours)
    return response


async def sign_out(request: web.Request) -> web.Response:
    """Revoke the cookie's console token and clear the cookie; signing out twice is no error."""
    token = session_cookie(request)
    if token:
        refuse_cross_site(request)
        async with request.app[SESSIONS]() as session, session.begin():
            agent_id = await agents.revoke_token(session, token, label=CONSOLE_LABEL)
        if agent_id is not None:
            log.info("console.signed_out", agent_id=agent_id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=_secure(request) or None)
    return response
