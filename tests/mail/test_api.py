"""Mail over REST: a filed message as an agent sees it, unassigned mail, erasure, sending."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from mailbuild import mail, mailbox
from sqlalchemy import select
from support.dovecot import Dovecot

from commhub.app import build_app
from commhub.commands.common import Database
from commhub.contacts.records import ContactRecord
from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import OwnAddresses
from commhub.mail.imap import imap_session
from commhub.settings import Settings
from commhub.store import files
from commhub.store.mail_db import MailDatabase
from commhub.store.models import Email

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
HTML = ('<p>Guten Tag,</p><p onclick="steal()">anbei die <b>Preise</b>.</p>'
        '<script>alert(1)</script><img src="cid:logo@muster">')


@pytest.fixture
async def archived(dovecot: Dovecot, db: Database, settings: Settings) -> list[int]:
    """Two messages filed from the test Dovecot: one with HTML and a PDF, one from an unknown sender."""
    dovecot.append("INBOX", mail(1, html=HTML, attachment=b"%PDF-1.4 Angebot"))
    dovecot.append("INBOX", mail(2, sender="Jan Neu <jan.neu@neukunde.de>"))
    async with db.sessions() as session, session.begin():
        await files.create_file(session, ContactRecord(first_name="Erika", last_name="Muster",
                                                       emails=["erika.muster@muster-gmbh.de"]), "DE")
    database = MailDatabase(settings.database.url, db.sessions)
    box = mailbox(dovecot)
    try:
        async with imap_session(box) as imap:
            await FolderArchiver(box, "INBOX", database, OwnAddresses.of(["vertrieb@example.de"])).sync(imap)
    finally:
        database.close()
    async with db.sessions() as session:
        return list(await session.scalars(select(Email.id).order_by(Email.id)))


@pytest.fixture
async def api(settings: Settings, db: Database, archived: list[int]) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(settings))) as client:
        yield client


async def test_an_email_comes_with_sanitised_html_and_its_attachments(
        api: TestClient, agent_headers: dict[str, str], archived: list[int]) -> None:
    response = await api.get(f"/api/emails/{archived[0]}", headers=agent_headers)
    assert response.status == 200
    email = await response.json()
    assert email["subject"] == "Anfrage Angebot Nr. 1"
    assert email["from"] == {"name": "Erika Muster", "address": "erika.muster@muster-gmbh.de"}
    assert "<b>Preise</b>" in email["html"]
    assert "script" not in email["html"] and "onclick" not in email["html"]
    [pdf] = email["attachments"]
    assert (pdf["filename"], pdf["content_type"]) == ("Angebot 1.pdf", "application/pdf")
    assert email["locations"][0]["folder"] == "INBOX"

    download = await api.get(pdf["url"], headers=agent_headers)
    assert download.status == 200
    assert await download.read() == b"%PDF-1.4 Angebot"
    assert "Angebot%201.pdf" in download.headers["Content-Disposition"]


async def test_emails_need_a_token(api: TestClient, archived: list[int], agent_headers: dict[str, str]) -> None:
    assert (await api.get(f"/api/emails/{archived[0]}")).status == 401
    assert (await api.get(f"/api/emails/{archived[0]}/raw")).status == 401
    raw = await api.get(f"/api/emails/{archived[0]}/raw", headers=agent_headers)
    assert raw.content_type == "message/rfc822"
    assert b"Subject: Anfrage Angebot Nr. 1" in await raw.read()


async def test_unassigned_mail_is_filed_when_the_contact_is_created(
        api: TestClient, agent_headers: dict[str, str]) -> None:
    waiting = await (await api.get("/api/mail/unassigned", headers=agent_headers)).json()
    assert [item["from"]["address"] for item in waiting["items"]] == ["jan.neu@neukunde.de"]

    created = await api.post("/api/contacts", headers=agent_headers, json={
        "first_name": "Jan", "last_name": "Neu", "emails": ["jan.neu@neukunde.de"]})
    assert created.status == 201
    contact_id = (await created.json())["id"]

    history = await (await api.get(f"/api/contacts/{contact_id}/history", headers=agent_headers)).json()
    assert [(item["kind"], item["title"]) for item in history["items"]] == [("email", "Anfrage Angebot Nr. 2")]
    assert (await (await api.get("/api/mail/unassigned", headers=agent_headers)).json())["items"] == []


async def test_erasing_is_for_admins_and_removes_the_message_everywhere(
        api: TestClient, agent_headers: dict[str, str], admin_headers: dict[str, str], archived: list[int]) -> None:
    url = f"/api/emails/{archived[1]}"
    assert (await api.delete(url, headers=agent_headers)).status == 403
    assert (await api.delete(url, headers=admin_headers)).status == 204
    assert (await api.get(url, headers=agent_headers)).status == 404
    assert (await api.delete(url, headers=admin_headers)).status == 404
    assert (await (await api.get("/api/mail/unassigned", headers=agent_headers)).json())["items"] == []


async def test_send_says_queued_when_the_smtp_server_is_down(
        settings: Settings, db: Database, agent_headers: dict[str, str]) -> None:
    configured = Settings.model_validate({**settings.model_dump(by_alias=True), "smtp": {
        "host": "127.0.0.1", "port": 9, "tls": "none", "from": "vertrieb@example.de", "timeout_seconds": 2}})
    async with TestClient(TestServer(build_app(configured))) as client:
        response = await client.post("/api/mail/send", headers=agent_headers, json={
            "to": ["erika.muster@muster-gmbh.de"], "subject": "Rückruf", "text": "Bitte um Rückruf."})
        assert response.status == 202
        body = await response.json()
        assert body["status"] == "queued"
        stored = await (await client.get(f"/api/emails/{body['email_id']}", headers=agent_headers)).json()
        assert stored["status"] == "queued"

        bad = await client.post("/api/mail/send", headers=agent_headers, json={"to": ["kaputt"], "subject": "x",
                                                                                "text": "y"})
        assert bad.status == 400
        assert "not an email address" in (await bad.json())["error"]["message"]
