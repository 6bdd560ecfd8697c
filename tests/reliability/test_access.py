"""Access control, driven by the route table: every route in `ROUTES` is tried, so a new route is
covered the day it is added (a new path parameter must name its record in `World.path_values`,
a new public route must be reviewed in `OPEN_BY_DESIGN` / `OWN_AUTH`).

- Without credentials, and with a malformed, unknown, revoked, expired or deactivated token (or a
  signed-out or expired console cookie), every route that is not public by design is refused, and
  refused before any data is touched: path parameters name records that exist and bodies are valid,
  so a route that forgot its check would answer 2xx (or 404/400), never 401; the whole database is
  compared before and after.
- An agent gets 403 on every `admin=True` route and changes nothing; an admin gets through; an
  agent reaches every other /api route (the control that the tokens used here do work).
- A console cookie writes only from commhub's own Origin; /ws refuses a foreign Origin.
- The per-client failure limit: 429 with Retry-After only after repeated failures, and nothing gets
  through while it blocks.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from yarl import URL

from commhub.app import build_app
from commhub.commands.common import Database
from commhub.keys import HUB, MAIL_DATABASE
from commhub.mail.filing import OwnAddresses
from commhub.mail.preparing import prepare
from commhub.settings import AccessSettings, DatabaseSettings, ServerSettings, Settings, SourceSettings
from commhub.store import agents
from commhub.store.models import Agent, AgentToken, Base, EmailAttachment, utcnow
from commhub.telephony.registry import available
from commhub.web.console_session import CONSOLE_LABEL, COOKIE
from commhub.web.routes import ROUTES, Route
from support.migrated import fresh_copy

PUBLIC_URL = "https://commhub.example.com"
FOREIGN_ORIGIN = "https://evil.example"

# Public by design: they hold no data (health, the API description, the console's static files) or
# are the sign-in and sign-out themselves.
# The probes and /metrics hold no personal data (tests/operations); `[server] metrics_token` closes /metrics.
OPEN_BY_DESIGN = frozenset({
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/api/openapi.json"), ("GET", "/"),
    ("GET", "/console/{name}"), ("POST", "/api/session"), ("DELETE", "/api/session"),
})
# Marked public because they check credentials of their own (source secret or signature; agent token).
OWN_AUTH = frozenset({
    ("POST", "/hooks/{source}"), ("GET", "/hooks/{source}"), ("GET", "/lookup/{source}"), ("GET", "/ws"),
})
GUARDED = [r for r in ROUTES if (r.method, r.path) not in OPEN_BY_DESIGN]
API_GUARDED = [r for r in GUARDED if r.path.startswith("/api/")]
ADMIN_ROUTES = [r for r in ROUTES if r.admin]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Deletions last, so the control run of every agent route finds its records.
AGENT_ROUTES = sorted((r for r in API_GUARDED if not r.admin), key=lambda r: r.method == "DELETE")

# Valid bodies, so a route that forgot its check would act on them. A body model not listed here
# gets `{}`: a refused request never reads it, and an unrefused one answers 400/422, not 401.
BODIES: dict[str, dict[str, Any]] = {
    "ContactIn": {"first_name": "Mallory", "last_name": "Eindringling", "phones": [{"number": "+49 89 7654321"}]},
    "ContactPatch": {"last_name": "Überschrieben", "class": "C"},
    "OrganizationIn": {"name": "Eindringling AG"},
    "NoteIn": {"text": "written by whoever got in"},
    "AgentIn": {"name": "mallory", "role": "admin", "extensions": ["66"]},
    "TaskPatch": {"status": "done"},
    "MailIn": {"to": ["j.mueller@mueller-haustechnik.de"], "subject": "Angebot", "text": "Guten Tag"},
}
# What the world's records hold: no refusal may show any of it.
WORLD_MARKERS = (b"mueller-haustechnik", b"Wartungsvertrag", b"4930123456710", b"Auftrag", b"M\\u00fcller",
                 "Müller".encode())
# Written by a successful sign-in by design (once a minute), not a change of data.
VOLATILE_COLUMNS = frozenset({"last_used_at"})
# A refusal may leave exactly one trace: the audit trail's record of it.
AUDIT_TABLE, REFUSAL_ACTIONS = "audit_events", frozenset({"denied"})


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


def source_secret(name: str) -> str:
    return f"{name}-secret-for-access-tests"


@pytest.fixture
def database_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """SQLite only (access control sits in front of the database; tests/web runs both backends)."""
    return fresh_copy(migrated_sqlite, tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Every installed adapter as a source named like it, and an https public URL (so the console
    cookie is Secure, and commhub's own origin is both the Host and the public URL). The failure
    limit is out of reach, so each refusal shows its own status; the limit has tests of its own."""
    return Settings(database=DatabaseSettings(url=database_url), server=ServerSettings(public_url=PUBLIC_URL),
                    sources=[SourceSettings(name=name, adapter=name, secret=source_secret(name))
                             for name in sorted(available())],
                    access=AccessSettings(failure_limit=10_000))


# --- the world the requests aim at -------------------------------------------------------------


@dataclass
class World:
    client: TestClient
    db: Database
    admin: dict[str, str]
    agent: dict[str, str]
    agent_id: int
    agent_cookie: str  # the agent's console session (a console token of its own)
    admin_cookie: str
    path_values: dict[tuple[str, str], str]  # (segment before the parameter, parameter) -> existing value
    bad: dict[str, dict[str, str]]  # kind of dead credential -> request headers carrying it
    dead_tokens: dict[str, str]  # kind -> a token that is not, or no longer, valid

    def origin(self) -> str:
        return f"http://{self.client.host}:{self.client.port}"

    def path(self, route: Route) -> str:
        def fill(match: re.Match[str]) -> str:
            before = route.path[:match.start()].rstrip("/").rpartition("/")[2]
            key = (before, match[1])
            if key not in self.path_values:
                pytest.fail(f"{route_id(route)}: no existing record for {{{match[1]}}} after /{before}/; "
                            "add one to World.path_values in tests/reliability/test_access.py")
            return self.path_values[key]
        return re.sub(r"\{(\w+)\}", fill, route.path)


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def cookie_headers(value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}", **headers}


async def expect(response: aiohttp.ClientResponse, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if response.content_type == "application/json" else None


async def sign_in(client: TestClient, token: str) -> str:
    response = await client.post("/api/session", json={"token": token})
    assert response.status == 200, await response.text()
    value = response.cookies[COOKIE].value
    client.session.cookie_jar.clear()  # every later request says itself whether it carries a cookie
    return value


def email_bytes() -> bytes:
    message = EmailMessage()
    message["From"] = "Jürgen Müller <j.mueller@mueller-haustechnik.de>"
    message["To"] = "Vertrieb <vertrieb@example.de>"
    message["Subject"] = "Auftrag Heizungswartung"
    message["Date"] = "Tue, 24 Nov 2026 08:30:00 +0000"
    message["Message-ID"] = "<access-test-1@mueller-haustechnik.de>"
    message.set_content("Guten Tag,\n\nanbei unser Auftrag.\n\nJürgen Müller\n")
    message.add_alternative("<p>Guten Tag,</p><p>anbei unser <b>Auftrag</b>.</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4 Auftrag", maintype="application", subtype="pdf", filename="Auftrag.pdf")
    return message.as_bytes()


async def dying_tokens(db: Database) -> tuple[dict[str, str], str, str]:
    """Admins' tokens about to stop counting: to be revoked, to expire, of an agent to be
    deactivated; a console token to expire; an admin to sign out. Admins, so a dead token wrongly
    accepted would open even the admin routes."""
    async with db.sessions() as session, session.begin():
        revoked = await agents.create_agent(session, "revoked-rita", role="admin")
        expired = await agents.create_agent(session, "expired-emil", role="admin")
        retired = await agents.create_agent(session, "retired-rolf", role="admin")
        signed_out = await agents.create_agent(session, "signed-out-sina", role="admin")
        tokens = {"revoked": await agents.issue_token(session, revoked),
                  "expired": await agents.issue_token(session, expired, valid_hours=1),
                  "deactivated": await agents.issue_token(session, retired)}
        expired_console = await agents.issue_token(session, expired, label=CONSOLE_LABEL, valid_hours=1)
        return tokens, expired_console, await agents.issue_token(session, signed_out)


async def kill_tokens(db: Database) -> None:
    async with db.sessions() as session, session.begin():
        assert await agents.revoke_tokens(session, await agents.get_agent_by_name(session, "revoked-rita")) == 1
        expired = await agents.get_agent_by_name(session, "expired-emil")
        await session.execute(update(AgentToken).where(AgentToken.agent_id == expired.id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.execute(update(Agent).where(Agent.name == "retired-rolf").values(active=False))


@pytest.fixture
async def world(client: TestClient, db: Database, admin_headers: dict[str, str],
                agent_headers: dict[str, str]) -> World:
    """A contact in an organization with a note, a missed call with its callback task, an email with
    an attachment; an agent and an admin with tokens and console sessions; tokens that no longer count."""
    org = await expect(await client.post("/api/organizations", headers=admin_headers, json={
        "name": "Müller Haustechnik GmbH", "phones": [{"number": "+49 30 1234567", "kind": "switchboard"}]}), 201)
    contact = await expect(await client.post("/api/contacts", headers=admin_headers, json={
        "first_name": "Jürgen", "last_name": "Müller", "organization_id": org["id"],
        "phones": [{"number": "+49 30 1234567-10"}], "emails": ["j.mueller@mueller-haustechnik.de"]}), 201)
    await expect(await client.post(f"/api/contacts/{contact['id']}/notes", headers=admin_headers,
                                   json={"text": "Wartungsvertrag verlängert"}), 201)
    hook = f"/hooks/generic?token={source_secret('generic')}"
    ring = await client.post(hook, data={"event": "newCall", "callId": "access-1", "direction": "in",
                                         "from": "4930123456710", "to": "4930555000", "user": "91"})
    assert ring.status == 200, await ring.text()
    missed = await client.post(hook, data={"event": "hangup", "callId": "access-1", "direction": "in",
                                           "cause": "cancel"})
    assert missed.status == 200, await missed.text()
    [task] = (await expect(await client.get("/api/tasks", headers=admin_headers), 200))["items"]

    raw = email_bytes()
    filed = await client.server.app[MAIL_DATABASE].run(lambda sql: sql.file_batch(
        "vertrieb", "INBOX", 1, [prepare(1, len(raw), raw, False)], OwnAddresses.of(["vertrieb@example.de"]),
        1, utcnow()))
    [email_id] = filed.filed

    dying, expired_console, signed_out_token = await dying_tokens(db)
    async with db.sessions() as session, session.begin():
        attachment_id = await session.scalar(select(EmailAttachment.id).where(EmailAttachment.email_id == email_id))
        agent = await agents.get_agent_by_name(session, "agent")
        # a spare token of the agent's: what /api/tokens/{id} may revoke without ending the test's session
        await agents.issue_token(session, agent, label="spare")
        spare_id = await session.scalar(select(AgentToken.id).where(AgentToken.label == "spare"))
    agent_cookie = await sign_in(client, bearer(agent_headers))
    admin_cookie = await sign_in(client, bearer(admin_headers))
    signed_out_cookie = await sign_in(client, signed_out_token)

    # Each of these works now: what refuses them below is the revocation, expiry, deactivation, sign-out.
    for token in dying.values():
        await expect(await client.get("/api/me", headers={"Authorization": f"Bearer {token}"}), 200)
    await expect(await client.get("/api/me", headers=cookie_headers(expired_console)), 200)
    await expect(await client.get("/api/me", headers=cookie_headers(signed_out_cookie)), 200)
    await kill_tokens(db)
    await expect(await client.delete("/api/session", headers=cookie_headers(signed_out_cookie, Origin=PUBLIC_URL)),
                 204)

    unknown = agents.new_token()
    bad = {
        "malformed: Basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "malformed: empty Bearer": {"Authorization": "Bearer "},
        "malformed: token without scheme": {"Authorization": unknown},
        "unknown token": {"Authorization": f"Bearer {unknown}"},
        **{f"{kind} token": {"Authorization": f"Bearer {token}"} for kind, token in dying.items()},
        # from our own origin, so what refuses them is the token, not the cross-site check
        "signed-out console cookie": cookie_headers(signed_out_cookie, Origin=PUBLIC_URL),
        "expired console cookie": cookie_headers(expired_console, Origin=PUBLIC_URL),
    }
    values = {
        ("contacts", "id"): str(contact["id"]), ("organizations", "id"): str(org["id"]),
        ("calls", "id"): ring.headers["X-Commhub-Calls"], ("tasks", "id"): str(task["id"]),
        ("emails", "id"): str(email_id), ("attachments", "attachment_id"): str(attachment_id),
        ("agents", "id"): str(agent.id), ("tokens", "id"): str(spare_id),
        ("hooks", "source"): "generic", ("lookup", "source"): "generic", ("console", "name"): "app.js",
    }
    return World(client, db, admin_headers, agent_headers, agent.id, agent_cookie, admin_cookie, values, bad,
                 {"unknown": unknown, **dying, "signed-out console": signed_out_cookie,
                  "expired console": expired_console})


Snapshot = dict[str, list[dict[str, Any]]]


async def snapshot(db: Database) -> Snapshot:
    """Every row of every table (without the columns a sign-in touches by design), in key order."""
    out = {}
    async with db.sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
            rows = await session.execute(select(*columns).order_by(*table.primary_key.columns))
            out[table.name] = [dict(row._mapping) for row in rows]
    return out


async def assert_unchanged(db: Database, before: Snapshot) -> None:
    """Nothing changed but, at most, new audit records of refusals."""
    after = await snapshot(db)
    assert [name for name in before if name != AUDIT_TABLE and before[name] != after[name]] == []
    old, new = before.get(AUDIT_TABLE, []), after.get(AUDIT_TABLE, [])
    assert new[:len(old)] == old
    assert [row for row in new[len(old):] if row["action"] not in REFUSAL_ACTIONS] == []


def body_for(route: Route) -> Any:
    if route.body is not None:
        return BODIES.get(route.body.__name__, {})
    return {} if route.method in WRITES else None


async def exchange(world: World, route: Route, headers: dict[str, str], *, path: str | None = None,
                   params: dict[str, str] | None = None) -> tuple[int, bytes]:
    """The route's status and body for this request; for /ws the handshake's status (101 when the
    socket opened) and no body."""
    target = path or world.path(route)
    client = world.client
    if route.path == "/ws":
        try:
            async with client.ws_connect(target, headers=headers, params=params) as ws:
                await ws.close()
                return 101, b""
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status, b""
    async with client.request(route.method, target, json=body_for(route), headers=headers,
                              params=params) as response:
        return response.status, await response.read()


async def send(world: World, route: Route, headers: dict[str, str], *, path: str | None = None,
               params: dict[str, str] | None = None) -> int:
    return (await exchange(world, route, headers, path=path, params=params))[0]


# --- 1. the route table itself -----------------------------------------------------------------


def test_public_routes_are_exactly_the_reviewed_ones() -> None:
    """A new `public=True` route must be reviewed here: public means no agent-token check at all."""
    public = {(r.method, r.path) for r in ROUTES if r.public}
    assert public == OPEN_BY_DESIGN | OWN_AUTH, (
        f"unreviewed public routes: {sorted(public - OPEN_BY_DESIGN - OWN_AUTH)}; "
        f"reviewed but no longer public: {sorted((OPEN_BY_DESIGN | OWN_AUTH) - public)}")
    assert [route_id(r) for r in ROUTES if r.admin and r.public] == []
    assert {r.method for r in ROUTES} <= {"GET", "POST", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("route", [r for r in ROUTES if (r.method, r.path) in OPEN_BY_DESIGN], ids=route_id)
async def test_routes_open_by_design_answer_without_credentials_and_change_nothing(
        world: World, route: Route) -> None:
    before = await snapshot(world.db)
    status = await send(world, route, {})
    assert status not in (401, 403) and status < 500, status
    if route.method == "GET":
        assert status == 200
    await assert_unchanged(world.db, before)


async def test_console_files_come_from_the_console_folder_only(world: World) -> None:
    """`/console/{name}` is public: no spelling of a name may reach a file outside its folder."""
    base = str(world.client.make_url("")).rstrip("/")
    names = ["..%2Froutes.py", "%2e%2e%2f%2e%2e%2fsettings.py", "..%2f..%2f..%2f..%2fetc%2fpasswd", "app.js%00.png",
             ".%2e%2fconsole.py", "..%5Cconsole.py", "%2Fetc%2Fpasswd", ".env", "app.py", "__init__.py"]
    served = {}
    for name in names:
        async with world.client.session.get(URL(f"{base}/console/{name}", encoded=True)) as response:
            if response.status not in (400, 404):
                served[name] = (response.status, (await response.read())[:100])
    assert served == {}


# --- 1. no, malformed, unknown, revoked, expired credentials -----------------------------------


@pytest.mark.parametrize("route", GUARDED, ids=route_id)
async def test_every_guarded_route_refuses_missing_and_dead_credentials(world: World, route: Route) -> None:
    before = await snapshot(world.db)
    outcomes: dict[str, tuple[int, bytes]] = {"no credentials": await exchange(world, route, {})}
    if route.path in ("/hooks/{source}", "/lookup/{source}"):
        for name in sorted(available()):  # every source, whatever its adapter
            path = world.path(route).replace("/generic", f"/{name}")
            outcomes[f"source {name}: no credentials"] = await exchange(world, route, {}, path=path)
            # one source's secret is no key to another
            other = "generic" if name != "generic" else "asterisk"
            outcomes[f"source {name}: the secret of source {other}"] = await exchange(
                world, route, {}, path=path, params={"token": source_secret(other)})
    if route.path == "/hooks/{source}":
        outcomes["an admin's token (a phone system is no agent)"] = await exchange(world, route, world.admin)
    else:  # the routes that take agent tokens
        for kind, headers in world.bad.items():
            outcomes[kind] = await exchange(world, route, headers)
        if route.path.startswith("/api/"):
            # /api reads no token from the URL (it would end up in logs and the browser history)
            outcomes["a valid admin token in ?token="] = await exchange(world, route, {},
                                                                        params={"token": bearer(world.admin)})
        else:
            for kind, token in world.dead_tokens.items():
                outcomes[f"{kind} token in ?token="] = await exchange(world, route, {}, params={"token": token})
    # The REST API and the socket say 401; a webhook and the lookup say 401 for a missing or wrong
    # secret (403 is a webhook's answer to a replay; never expected here).
    wrong = {kind: status for kind, (status, _) in outcomes.items() if status != 401}
    assert wrong == {}, f"{route_id(route)} not refused with 401: {wrong}"
    leaked = {kind: body[:200] for kind, (_, body) in outcomes.items()
              if any(marker in body for marker in WORLD_MARKERS)}
    assert leaked == {}
    # No oracle: an unknown token and a revoked, expired or deactivated one are refused alike.
    dead = {outcomes[kind][1] for kind in ("unknown token", "revoked token", "expired token", "deactivated token")
            if kind in outcomes}
    assert len(dead) <= 1, dead
    await assert_unchanged(world.db, before)


async def test_a_console_cookie_writes_only_from_our_own_origin(world: World) -> None:
    """A browser attaches the cookie to a foreign page's request too: every write needs our Origin.
    An admin's cookie, so nothing but the origin check stands in the way."""
    before = await snapshot(world.db)
    own = world.origin().removeprefix("http://")
    origins = (None, FOREIGN_ORIGIN, "null", f"{PUBLIC_URL}.evil.example", f"http://{own}.evil.example",
               f"http://evil.example@{own}", "http://[::1")
    wrong = {}
    for route in (r for r in API_GUARDED if r.method in WRITES):
        for origin in origins:
            status = await send(world, route, cookie_headers(world.admin_cookie, **({"Origin": origin} if origin
                                                                                     else {})))
            if status != 403:
                wrong[f"{route_id(route)} from {origin!r}"] = status
    assert wrong == {}
    await assert_unchanged(world.db, before)


async def test_no_spelling_of_an_api_path_slips_past_the_token_check(world: World) -> None:
    """The check and the router read the same path: no spelling reaches a handler without a token."""
    base = str(world.client.make_url("")).rstrip("/")
    wrong = {}
    for route in API_GUARDED:
        path = world.path(route)
        spellings = [path + "/", "/" + path, path.replace("/api/", "/api//", 1), path.replace("/api/", "/api/./", 1),
                     path.replace("/api/", "/api%2F", 1), path.replace("/api/", "/%61pi/", 1), path.upper(),
                     path.replace("/api/", "/x/../api/", 1), path + "%00", path + ";x=1", path + "%20"]
        for spelling in spellings:
            for method in {route.method, "HEAD", "OPTIONS"}:
                async with world.client.session.request(method, URL(base + spelling, encoded=True),
                                                        allow_redirects=False) as response:
                    await response.read()
                    if response.status not in (400, 401, 404, 405):
                        wrong[f"{method} {spelling}"] = response.status
    assert wrong == {}


# --- 2. roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=route_id)
async def test_an_agent_is_refused_every_admin_route_and_changes_nothing(world: World, route: Route) -> None:
    before = await snapshot(world.db)
    by_bearer = await send(world, route, world.agent)
    by_cookie = await send(world, route, cookie_headers(world.agent_cookie, Origin=world.origin()))
    assert (by_bearer, by_cookie) == (403, 403)
    await assert_unchanged(world.db, before)
    if route.method == "DELETE":  # e.g. the contact an agent tried to delete is still there
        assert (await world.client.get(world.path(route), headers=world.admin)).status == 200


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=route_id)
async def test_an_admin_gets_through_every_admin_route(world: World, route: Route) -> None:
    status = await send(world, route, world.admin)
    assert status not in (401, 403) and status < 500, status
    if route.body is None or route.body.__name__ in BODIES:  # existing records, a valid body
        assert 200 <= status < 300, status
    if route.method == "DELETE":
        assert (await world.client.get(world.path(route), headers=world.admin)).status == 404


async def test_an_agent_reaches_every_other_api_route(world: World) -> None:
    """The control for the refusals above: the agent's token, bearer or cookie, does open these."""
    refusals = {}
    for route in AGENT_ROUTES:
        for how, headers in (("bearer", world.agent),
                             ("cookie", cookie_headers(world.agent_cookie, Origin=world.origin()))):
            status = await send(world, route, headers)
            if status in (401, 403):
                refusals[f"{route_id(route)} by {how}"] = status
    assert refusals == {}


# --- 4. the agent WebSocket -------------------------------------------------------------------------


async def handshake(world: World, headers: dict[str, str], params: dict[str, str] | None = None) -> int:
    [route] = [r for r in ROUTES if r.path == "/ws"]
    return await send(world, route, headers, params=params)


async def test_the_socket_refuses_a_foreign_origin_even_with_a_valid_session(world: World) -> None:
    hub = world.client.server.app[HUB]
    own = world.origin()
    host = own.removeprefix("http://")
    foreign = [FOREIGN_ORIGIN, "null", f"{own}.evil.example", f"http://evil.example@{host}",
               f"http://{host.split(':')[0]}", "http://[::1", "file://"]
    refusals = {}
    for origin in foreign:
        refusals[origin] = (await handshake(world, cookie_headers(world.agent_cookie, Origin=origin)),
                            await handshake(world, {**world.agent, "Origin": origin}),
                            await handshake(world, {"Origin": origin}, params={"token": bearer(world.agent)}))
    assert refusals == {origin: (403, 403, 403) for origin in foreign}
    assert hub.sessions() == 0
    # The same session from commhub's own pages (its Host, or its public URL) opens the socket.
    assert await handshake(world, cookie_headers(world.agent_cookie, Origin=own)) == 101
    assert await handshake(world, cookie_headers(world.agent_cookie, Origin=PUBLIC_URL)) == 101


async def test_the_socket_refuses_missing_and_dead_credentials_and_a_signed_out_session(world: World) -> None:
    own = {"Origin": world.origin()}
    statuses = {"none": await handshake(world, {}), "none, own origin": await handshake(world, own)}
    for kind, headers in world.bad.items():
        statuses[kind] = await handshake(world, {**headers, **own})
    for kind, token in world.dead_tokens.items():
        statuses[f"{kind} in ?token="] = await handshake(world, own, params={"token": token})
    assert {kind: status for kind, status in statuses.items() if status != 401} == {}
    assert world.client.server.app[HUB].sessions() == 0
    # the session that opens the socket now is refused once signed out
    assert await handshake(world, cookie_headers(world.agent_cookie, **own)) == 101
    await expect(await world.client.delete("/api/session", headers=cookie_headers(world.agent_cookie, **own)), 204)
    assert await handshake(world, cookie_headers(world.agent_cookie, **own)) == 401


# --- the sign-in itself: public, but it mints no session for a dead token or a foreign page ------


async def test_sign_in_refuses_dead_tokens_and_foreign_pages_and_mints_nothing(world: World) -> None:
    before = await snapshot(world.db)
    for kind, token in world.dead_tokens.items():
        response = await world.client.post("/api/session", json={"token": token})
        assert (response.status, COOKIE in response.cookies) == (401, False), kind
    for origin in (FOREIGN_ORIGIN, "null"):
        response = await world.client.post("/api/session", json={"token": bearer(world.admin)},
                                           headers={"Origin": origin})
        assert (response.status, COOKIE in response.cookies) == (403, False), origin
    world.client.session.cookie_jar.clear()
    await assert_unchanged(world.db, before)


# --- the failure limit: 429 only after repeated failures, and nothing gets through meanwhile ------


LIMIT = 3


@pytest.fixture
async def limited(settings: Settings, world: World) -> AsyncIterator[TestClient]:
    """A second commhub on the same database with a failure limit of 3 (blocking for a minute)."""
    strict = settings.model_copy(update={"access": AccessSettings(failure_limit=LIMIT, block_seconds=60)})
    client = TestClient(TestServer(build_app(strict)))
    await client.start_server()
    yield client
    await client.close()


def assert_limited(statuses: list[int], retry_after: list[str | None], refused: int) -> None:
    """`LIMIT` plain refusals, then 429 with Retry-After for every further attempt."""
    assert statuses == [refused] * LIMIT + [429] * (len(statuses) - LIMIT), statuses
    assert all(value is not None and value.isdigit() and 0 < int(value) <= 60 for value in retry_after[LIMIT:])


async def test_repeated_bad_tokens_are_limited_and_the_right_token_waits_too(world: World,
                                                                             limited: TestClient) -> None:
    before = await snapshot(world.db)
    statuses, retry_after = [], []
    for _ in range(LIMIT + 3):
        async with limited.get("/api/contacts", headers=world.bad["unknown token"]) as response:
            statuses.append(response.status)
            retry_after.append(response.headers.get("Retry-After"))
    assert_limited(statuses, retry_after, 401)
    # Blocked is blocked: a right guess would otherwise show as a 2xx; the socket and sign-in wait too.
    assert (await limited.post("/api/contacts", json=BODIES["ContactIn"], headers=world.admin)).status == 429
    assert (await limited.post("/api/session", json={"token": bearer(world.admin)})).status == 429
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await limited.ws_connect("/ws", headers=world.admin)
    assert refused.value.status == 429
    # Requests without credentials are no guesses: still a plain 401.
    assert (await limited.get("/api/contacts")).status == 401
    await assert_unchanged(world.db, before)


async def test_repeated_wrong_webhook_secrets_are_limited_and_store_nothing(world: World,
                                                                            limited: TestClient) -> None:
    before = await snapshot(world.db)
    event = {"event": "newCall", "callId": "limit-1", "direction": "in", "from": "4930123456710", "to": "4930555000"}
    statuses, retry_after = [], []
    for attempt in range(LIMIT + 3):
        async with limited.post(f"/hooks/generic?token=guess-{attempt}", data=event) as response:
            statuses.append(response.status)
            retry_after.append(response.headers.get("Retry-After"))
    assert_limited(statuses, retry_after, 401)
    # the right secret from the blocked client waits as well, and the lookup shares the limit
    assert (await limited.post(f"/hooks/generic?token={source_secret('generic')}", data=event)).status == 429
    lookup = await limited.get("/lookup/generic", params={"number": "030 1234567",
                                                          "token": source_secret("generic")})
    assert lookup.status == 429
    await assert_unchanged(world.db, before)
