"""The browser console's server side: its files, the session cookie, cross-site refusal, security
headers on every response, the sandboxed email view, assignee names on tasks."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from commhub.app import build_app
from commhub.commands.common import Database
from commhub.mail.filing import OwnAddresses
from commhub.mail.preparing import prepare
from commhub.settings import ServerSettings, Settings
from commhub.store.mail_db import MailDatabase
from commhub.store.models import AgentToken, Contact, Email, EmailAttachment, Task, utcnow
from commhub.web import console, email_view
from commhub.web.console_session import COOKIE

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def sign_in(client: TestClient, token: str) -> str:
    """Sign in and return the cookie's value; the client's own jar is emptied so every later request
    says explicitly whether it carries the cookie."""
    response = await client.post("/api/session", json={"token": token})
    assert response.status == 200, await response.text()
    value = response.cookies[COOKIE].value
    client.session.cookie_jar.clear()
    return value


def with_cookie(value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}", **headers}


def origin(client: TestClient) -> str:
    return f"http://{client.host}:{client.port}"


async def test_sign_in_sets_an_httponly_strict_cookie_holding_a_new_token(
        client: TestClient, agent_headers: dict[str, str]) -> None:
    response = await client.post("/api/session", json={"token": f"  {token_of(agent_headers)}\n"})
    assert response.status == 200
    assert (await response.json())["agent"]["name"] == "agent"
    [set_cookie] = response.headers.getall("Set-Cookie")
    attributes = [part.strip() for part in set_cookie.split(";")]
    assert attributes[0].startswith(f"{COOKIE}=chub_")
    assert {"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"} <= set(attributes)
    assert "Secure" not in attributes  # plain http, no https public URL
    assert token_of(agent_headers) not in set_cookie
    assert response.headers["Cache-Control"] == "no-store"


@SQLITE
async def test_the_cookie_is_secure_when_the_public_url_is_https(
        settings: Settings, db: Database, agent_headers: dict[str, str]) -> None:
    public = settings.model_copy(update={"server": ServerSettings(public_url="https://crm.example.de")})
    async with TestClient(TestServer(build_app(public))) as client:
        response = await client.post("/api/session", json={"token": token_of(agent_headers)})
        assert response.status == 200
        assert "Secure" in [part.strip() for part in response.headers["Set-Cookie"].split(";")]
        gone = await client.delete("/api/session")
        assert "Secure" in [part.strip() for part in gone.headers["Set-Cookie"].split(";")]


async def test_the_cookie_alone_signs_in_api_and_socket_until_sign_out(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    cookie = await sign_in(client, token_of(agent_headers))
    me = await client.get("/api/me", headers=with_cookie(cookie))
    assert me.status == 200 and (await me.json())["name"] == "agent"
    async with client.ws_connect("/ws", headers=with_cookie(cookie, Origin=origin(client))) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["agent"]["name"] == "agent"

    out = await client.delete("/api/session", headers=with_cookie(cookie, Origin=origin(client)))
    assert out.status == 204
    assert "Max-Age=0" in out.headers["Set-Cookie"] and f"{COOKIE}=" in out.headers["Set-Cookie"]
    assert (await client.get("/api/me", headers=with_cookie(cookie))).status == 401
    with pytest.raises(Exception) as refused:
        await client.ws_connect("/ws", headers=with_cookie(cookie, Origin=origin(client)))
    assert getattr(refused.value, "status", None) == 401
    # Only the console token went: the agent's own token still works.
    assert (await client.get("/api/me", headers=agent_headers)).status == 200
    async with db.sessions() as session:
        labels = dict((await session.execute(select(AgentToken.label, AgentToken.revoked_at))).all())
    assert labels["console"] is not None and labels[""] is None

    again = await client.delete("/api/session", headers=with_cookie(cookie, Origin=origin(client)))
    assert again.status == 204 and "Max-Age=0" in again.headers["Set-Cookie"]
    nothing = await client.delete("/api/session")
    assert nothing.status == 204 and "Max-Age=0" in nothing.headers["Set-Cookie"]


@SQLITE
async def test_a_wrong_token_gets_401_and_no_cookie(client: TestClient, agent_headers: dict[str, str]) -> None:
    for body in ({"token": "chub_not-a-real-token"}, {"token": "x"}):
        response = await client.post("/api/session", json=body)
        assert response.status == 401, body
        assert "Set-Cookie" not in response.headers
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert (await client.post("/api/session", json={"token": ""})).status == 422
    assert (await client.post("/api/session", json={"token": token_of(agent_headers), "x": 1})).status == 422


@SQLITE
async def test_an_agent_token_cannot_be_signed_in_from_a_foreign_page(
        client: TestClient, agent_headers: dict[str, str]) -> None:
    response = await client.post("/api/session", json={"token": token_of(agent_headers)},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403 and "Set-Cookie" not in response.headers


@SQLITE
async def test_an_expired_console_session_is_refused(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    cookie = await sign_in(client, token_of(agent_headers))
    async with db.sessions() as session, session.begin():
        await session.execute(update(AgentToken).where(AgentToken.label == "console")
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await client.get("/api/me", headers=with_cookie(cookie))).status == 401
    with pytest.raises(Exception) as refused:
        await client.ws_connect("/ws", headers=with_cookie(cookie))
    assert getattr(refused.value, "status", None) == 401


@SQLITE
async def test_cookie_writes_need_our_own_origin_bearer_writes_do_not(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    cookie = await sign_in(client, token_of(agent_headers))
    for headers in (with_cookie(cookie), with_cookie(cookie, Origin="https://evil.example"),
                    with_cookie(cookie, Origin="null")):
        refused = await client.post("/api/contacts", json={"last_name": "Fremd"}, headers=headers)
        assert refused.status == 403, headers
        assert (await refused.json())["error"]["message"] == "cross-site request refused"
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 0

    own = await client.post("/api/contacts", json={"last_name": "Eigen"},
                            headers=with_cookie(cookie, Origin=origin(client)))
    assert own.status == 201
    bearer = await client.post("/api/contacts", json={"last_name": "Skript"}, headers=agent_headers)
    assert bearer.status == 201
    # Reads by cookie need no Origin (a browser sends none on same-origin GETs).
    assert (await client.get("/api/contacts", headers=with_cookie(cookie))).status == 200


@pytest.fixture
def static_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for commhub/web/static/, so the tests never depend on (or write) the real console."""
    directory = tmp_path / "static"
    directory.mkdir()
    (directory / "index.html").write_text('<!doctype html><script src="/console/app.js"></script>')
    (directory / "app.js").write_text("console.log(1)")
    (directory / "style.css").write_text("body{}")
    (directory / "x.py").write_text("secret = 1")
    (tmp_path / "settings.py").write_text("secret = 1")
    monkeypatch.setattr(console, "STATIC_DIR", directory)
    return directory


@SQLITE
async def test_the_console_page_and_its_files(client: TestClient, static_dir: Path) -> None:
    page = await client.get("/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "/console/app.js" in await page.text()
    policy = page.headers["Content-Security-Policy"]
    assert policy == ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      f"connect-src 'self' ws://{client.host}:{client.port} wss://{client.host}:{client.port}; "
                      "frame-src 'self'; media-src 'self'; base-uri 'none'; form-action 'self'; "
                      "frame-ancestors 'none'")
    assert "unsafe-inline" not in policy
    assert page.headers["Cache-Control"] == "no-cache"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert SECURITY_HEADERS.items() <= page.headers.items()
    assert "Strict-Transport-Security" not in page.headers

    script = await client.get("/console/app.js")
    assert script.status == 200 and await script.text() == "console.log(1)"
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert script.headers["Cache-Control"] == "no-cache"
    again = await client.get("/console/app.js", headers={"If-None-Match": script.headers["ETag"]})
    assert again.status == 304
    style = await client.get("/console/style.css")
    assert style.headers["Content-Type"] == "text/css; charset=utf-8"

    # A crafted Host header cannot add directives to the page's policy.
    crafted = await client.get("/", headers={"Host": "x; script-src *"})
    assert "script-src *" not in crafted.headers["Content-Security-Policy"]


@SQLITE
@pytest.mark.parametrize("path", ["/console/..%2fsettings.py", "/console/..%2F..%2Fsettings.py",
                                  "/console/sub/x.js", "/console/x.py", "/console/App.js",
                                  "/console/.hidden.js", "/console/missing.js", "/console/"])
async def test_nothing_but_plain_console_files_is_served(client: TestClient, static_dir: Path, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


@SQLITE
async def test_the_page_is_a_json_404_until_the_console_is_installed(
        client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "STATIC_DIR", tmp_path / "nothing")
    response = await client.get("/")
    assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"


@SQLITE
async def test_security_headers_on_json_errors_and_files(
        client: TestClient, agent_headers: dict[str, str]) -> None:
    for response in (await client.get("/api/me", headers=agent_headers), await client.get("/nothing-here"),
                     await client.get("/api/me"), await client.get("/healthz")):
        assert SECURITY_HEADERS.items() <= response.headers.items(), response.url
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert "Strict-Transport-Security" not in response.headers


LOGO = b"\x89PNG\r\n\x1a\n logo"


def message_with_images() -> bytes:
    """An HTML mail with a script, a tracking pixel and an embedded logo (multipart/related)."""
    message = EmailMessage()
    message["From"] = "Erika Muster <erika.muster@muster-gmbh.de>"
    message["To"] = "vertrieb@example.de"
    message["Subject"] = "Angebot"
    message["Message-ID"] = "<body-view@muster-gmbh.de>"
    message.set_content("Guten Tag")
    message.add_alternative('<p>Guten Tag</p><script>alert(1)</script>'
                            '<img src="https://tracker.example/x.png"><img src="cid:logo@x">', subtype="html")
    message.get_payload()[1].add_related(LOGO, maintype="image", subtype="png",
                                         cid="<logo@x>", filename="logo.png")
    return message.as_bytes()


def text_message() -> bytes:
    message = EmailMessage()
    message["From"] = "jan@neukunde.de"
    message["Subject"] = "Nur Text"
    message["Message-ID"] = "<text-only@neukunde.de>"
    message.set_content("<b>kein HTML</b> & Zeilen\nzwei")
    return message.as_bytes()


@pytest.fixture
async def stored_emails(settings: Settings, db: Database) -> AsyncIterator[list[int]]:
    """The two messages filed as the archiver files them, without an IMAP server in between."""
    database = MailDatabase(settings.database.url, db.sessions)
    items = [prepare(uid, len(raw), raw, False) for uid, raw in enumerate((message_with_images(), text_message()), 1)]
    try:
        await database.run(lambda sql: sql.file_batch("vertrieb", "INBOX", 1, items,
                                                      OwnAddresses.of(["vertrieb@example.de"]), 2, utcnow()))
    finally:
        database.close()
    async with db.sessions() as session:
        yield list(await session.scalars(select(Email.id).order_by(Email.id)))


@SQLITE
async def test_the_email_view_is_sanitised_sandboxed_and_shows_embedded_images(
        client: TestClient, db: Database, agent_headers: dict[str, str], stored_emails: list[int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    html_id, text_id = stored_emails
    async with db.sessions() as session:
        logo = await session.scalar(select(EmailAttachment.id).where(EmailAttachment.email_id == html_id))
    response = await client.get(f"/api/emails/{html_id}/body.html", headers=agent_headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Remote-Images"] == "1"
    assert SECURITY_HEADERS.items() <= response.headers.items()
    body = await response.text()
    assert body.startswith("<!doctype html><meta charset=utf-8>")
    assert "script" not in body and "alert" not in body
    # Embedded as data: the sandboxed document's requests go without the console cookie.
    assert f'<img src="data:image/png;base64,{base64.b64encode(LOGO).decode()}">' in body
    assert "cid:" not in body

    monkeypatch.setattr(email_view, "EMBED_BUDGET", len(LOGO) - 1)
    over_budget = await (await client.get(f"/api/emails/{html_id}/body.html", headers=agent_headers)).text()
    assert f'<img src="/api/emails/{html_id}/attachments/{logo}">' in over_budget
    image = await client.get(f"/api/emails/{html_id}/attachments/{logo}", headers=agent_headers)
    assert image.status == 200 and image.content_type == "image/png"

    text = await (await client.get(f"/api/emails/{text_id}/body.html", headers=agent_headers)).text()
    assert '<pre style="white-space: pre-wrap">&lt;b&gt;kein HTML&lt;/b&gt; &amp; Zeilen\nzwei' in text

    assert (await client.get(f"/api/emails/{html_id}/body.html")).status == 401
    assert (await client.get("/api/emails/999/body.html", headers=agent_headers)).status == 404


@SQLITE
async def test_the_email_view_opens_with_the_console_cookie(
        client: TestClient, agent_headers: dict[str, str], stored_emails: list[int]) -> None:
    cookie = await sign_in(client, token_of(agent_headers))
    response = await client.get(f"/api/emails/{stored_emails[0]}/body.html", headers=with_cookie(cookie))
    assert response.status == 200


async def test_tasks_name_their_assignees(client: TestClient, db: Database, agent_headers: dict[str, str],
                                          admin_headers: dict[str, str]) -> None:
    me = await (await client.get("/api/me", headers=agent_headers)).json()
    async with db.sessions() as session, session.begin():
        session.add_all([Task(title="Rückruf Muster", assignee_agent_id=me["id"]), Task(title="Niemandes")])
    tasks = await (await client.get("/api/tasks", headers=admin_headers)).json()
    assert sorted(task["title"] for task in tasks["items"]) == ["Niemandes", "Rückruf Muster"]
    assert tasks["agents"] == {str(me["id"]): "agent"}
    assert (await (await client.get("/api/tasks?status=done", headers=agent_headers)).json())["agents"] == {}
