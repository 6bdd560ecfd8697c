"""Who is asking: the client's address, and an agent token checked under the failure limit.

Every place that accepts credentials (the /api middleware, /ws, the console sign-in, webhooks and
the caller-name lookup) goes through here, so a guesser meets the same limit everywhere.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from commhub.errors import Unauthorized
from commhub.keys import LIMITER, SESSIONS, SETTINGS
from commhub.log import get_logger
from commhub.store.agents import authenticate
from commhub.store.models import Agent

log = get_logger("commhub.access")
LOGIN = "login"
WEBHOOK = "webhook"


def client_address(request: web.Request) -> str:
    """The peer's address; behind a configured proxy, the nearest forwarded address that is not a proxy."""
    remote = request.remote or "unknown"
    access = request.app[SETTINGS].access
    if not access.trusted_proxies or not access.is_trusted_proxy(remote):
        return remote
    hops = [hop.strip() for hop in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not access.is_trusted_proxy(hop):
            return hop if _is_ip(hop) else remote
    return remote


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def refuse_blocked(request: web.Request, kind: str) -> None:
    request.app[LIMITER].check(kind, client_address(request))


def count_failure(request: web.Request, kind: str) -> None:
    address = client_address(request)
    if request.app[LIMITER].failed(kind, address):
        # The address is the attacker's or a misconfigured client's: the admin needs it to act.
        log.warning("access.blocked", kind=kind, client=address,
                    seconds=request.app[SETTINGS].access.block_seconds)


async def agent_for_token(request: web.Request, token: str) -> Agent:
    """The active agent of this token, or 401 (counted) / 429 while the client is blocked."""
    refuse_blocked(request, LOGIN)
    async with request.app[SESSIONS]() as session:
        agent = await authenticate(session, token)
    if agent is None:
        count_failure(request, LOGIN)
        raise Unauthorized("unknown, revoked or expired token")
    return agent
