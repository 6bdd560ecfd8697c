"""A person asks what commhub holds about them, then to be forgotten: the export has everything,
the erasure removes them and only them, and nothing brings them back."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from adapters.generic.verify import sign
from commhub.app import build_app
from commhub.commands.common import Database
from commhub.keys import MAIL_DATABASE
from commhub.mail.filing import OwnAddresses
from commhub.mail.preparing import prepare
from commhub.settings import DatabaseSettings, Settings, SourceSettings
from commhub.store.models import AgentMessage, AuditEvent, Blob, Call, Email, ErasureTombstone, MailTombstone, Task, utcnow

SECRET = "gdpr-test-secret-0123456789"
OWN = OwnAddresses.of(["vertrieb@example.de"])
PDF = b"%PDF-1.4 Angebot 4711 for Otto only\n%%EOF"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=database_url),
                    sources=[SourceSettings(name="pbx", adapter="generic", secret=SECRET)])


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(settings))) as test_client:
        yield test_client


class Files:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    async def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        async with self.client.request(method, path, headers=self.headers, **kwargs) as response:
            assert response.status == status, await response.text()
            if response.content_type == "application/json":
                return await response.json()
            return await response.read()

    async def hook(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Commhub-Timestamp": str(stamp),
                   "X-Commhub-Signature": sign(SECRET, stamp, body)}
        async with self.client.post("/hooks/pbx", data=body, headers=headers) as response:
            assert response.status == 200, await response.text()

    async def file_mail(self, *messages: bytes, uid: int = 1) -> Any:
        items = [prepare(uid + n, len(raw), raw, False) for n, raw in enumerate(messages)]
        return await self.client.server.app[MAIL_DATABASE].run(
            lambda sql: sql.file_batch("vertrieb", "INBOX", 1, items, OWN, uid + len(messages) - 1, utcnow()))


def _offer_from_otto() -> bytes:
    message = EmailMessage()
    message["From"] = "Otto Brandt <otto.brandt@brandt-bau.de>"
    message["To"] = "vertrieb@example.de"
    message["Subject"] = "Angebot Dachsanierung"
    message["Message-ID"] = "<offer-1@brandt-bau.de>"
    message.set_content("Guten Tag, anbei das Angebot. Erreichbar unter 0171 5551234. Otto Brandt")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="angebot.pdf")
    return message.as_bytes()


def _invitation_to_both() -> bytes:
    message = EmailMessage()
    message["From"] = "vertrieb@example.de"
    message["To"] = "Otto Brandt <otto.brandt@brandt-bau.de>, Paula Schulz <paula@schulz-immobilien.de>"
    message["Subject"] = "Einladung zur Baustellenbegehung"
    message["Message-ID"] = "<invite-1@example.de>"
    message.set_content("Hallo Otto Brandt, hallo Paula Schulz, wir treffen uns am Montag.")
    return message.as_bytes()


# Built once: a MIME boundary is random, and the tests compare bytes.
OFFER, INVITATION = _offer_from_otto(), _invitation_to_both()


@pytest.fixture
async def office(client: TestClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    files = Files(client, admin_headers)
    otto = await files.call("POST", "/api/contacts", 201, json={
        "first_name": "Otto", "last_name": "Brandt", "company": "Brandt Bau GmbH", "class": "A",
        "phones": [{"number": "0171 5551234", "kind": "mobile"}, {"number": "030 9876543", "kind": "work"}],
        "emails": ["otto.brandt@brandt-bau.de"]})
    paula = await files.call("POST", "/api/contacts", 201, json={
        "first_name": "Paula", "last_name": "Schulz", "phones": [{"number": "089 445566"}],
        "emails": ["paula@schulz-immobilien.de"]})
    await files.call("POST", f"/api/contacts/{otto['id']}/notes", 201,
                     json={"text": "Otto Brandt möchte im Frühjahr sanieren."})
    await files.hook({"event": "ringing", "call_id": "otto-1", "direction": "in", "from": "+491715551234",
                      "targets": ["90"]})
    await files.hook({"event": "ended", "call_id": "otto-1", "direction": "in", "from": "+491715551234",
                      "outcome": "missed"})
    await files.file_mail(OFFER, INVITATION)
    return {"files": files, "otto": otto["id"], "paula": paula["id"],
            "organization": otto["organization"]["id"]}


async def test_the_export_holds_the_file_the_whole_timeline_and_the_raw_mail(office: dict[str, Any]) -> None:
    files: Files = office["files"]
    data = await files.call("GET", f"/api/gdpr/contacts/{office['otto']}/export")
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["contact_id"] == office["otto"] and manifest["format"] == "commhub-export/1"
    for entry in manifest["files"]:  # every file is listed with its true size and hash
        content = archive.read(entry["path"])
        assert (len(content), hashlib.sha256(content).hexdigest()) == (entry["bytes"], entry["sha256"])
    assert {e["path"] for e in manifest["files"]} | {"manifest.json"} == set(archive.namelist())

    contact = json.loads(archive.read("contact.json"))
    assert (contact["first_name"], contact["organization"]["name"]) == ("Otto", "Brandt Bau GmbH")
    assert sorted(p["e164"] for p in contact["phones"]) == ["+49171 5551234".replace(" ", ""), "+49309876543"]
    timeline = json.loads(archive.read("timeline.json"))
    assert sorted(entry["kind"] for entry in timeline) == ["call", "email", "email", "note"]
    assert [call["state"] for call in json.loads(archive.read("calls.json"))] == ["missed"]
    assert [task["kind"] for task in json.loads(archive.read("tasks.json"))] == ["callback"]
    emails = sorted(name for name in archive.namelist() if name.endswith(".eml"))
    assert [archive.read(name) for name in emails] == [OFFER, INVITATION]
    assert [archive.read(n) for n in archive.namelist() if n.endswith("-angebot.pdf")] == [PDF]
    assert manifest["counts"] == {"entries": 4, "calls": 1, "tasks": 1, "emails": 2, "attachments": 1}
    assert "Datenauskunft" in archive.read("LIESMICH.txt").decode()


async def test_erasure_removes_the_person_keeps_shared_entries_for_others_and_never_refiles(
        office: dict[str, Any], db: Database) -> None:
    files: Files = office["files"]
    otto, paula = office["otto"], office["paula"]
    backlog_before = await _backlog(db)
    answer = await files.call("POST", f"/api/gdpr/contacts/{otto}/erase")
    dropped = answer["counts"]["messages_dropped"]
    assert answer["counts"] == {"numbers": 2, "addresses": 1, "entries_deleted": 2, "emails_erased": 1,
                                "entries_kept": 2, "calls_deleted": 1, "tasks_deleted": 1, "blobs_deleted": 3,
                                "messages_dropped": dropped}
    # The pops of Otto's call waited for a `resume`: they are gone, and no kept message names him.
    backlog_after = await _backlog(db)
    assert dropped > 0 and len(backlog_after) == len(backlog_before) - dropped
    assert not any(trace in message for message in backlog_after
                   for trace in ("brandt", "5551234", "9876543", f'"id": {otto},'))
    await files.call("GET", f"/api/contacts/{otto}", 404)
    # The caller-ID match no longer knows either number.
    for number in ("0171 5551234", "+49 30 9876543"):
        assert (await files.call("GET", "/api/contacts", params={"phone": number}))["matches"] == []

    # Paula keeps the invitation, without Otto in it: not in the text, the addresses, nor the raw message.
    kept = (await files.call("GET", f"/api/contacts/{paula}/history"))["items"]
    assert [entry["kind"] for entry in kept] == ["email"]
    email = await files.call("GET", f"/api/emails/{await _only_email_id(db)}")
    shown = json.dumps(email, ensure_ascii=False) + json.dumps(kept, ensure_ascii=False)
    raw = await files.call("GET", f"/api/emails/{email['id']}/raw")
    for trace in ("otto.brandt@brandt-bau.de", "Otto Brandt"):
        assert trace.lower() not in shown.lower() and trace.lower().encode() not in raw.lower()
    assert "paula@schulz-immobilien.de" in shown and b"Paula Schulz" in raw
    # The company keeps the note written on Otto (notes on a person show in their company's file too).
    company = (await files.call("GET", f"/api/organizations/{office['organization']}/history"))["items"]
    assert [(e["kind"], e["body"]) for e in company] == [("note", "[erased] möchte im Frühjahr sanieren.")]

    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 0
        assert await session.scalar(select(func.count()).select_from(Task)) == 0
        assert await session.scalar(select(func.count()).select_from(Email)) == 1
        blobs = set(await session.scalars(select(Blob.sha256)))
        assert hashlib.sha256(PDF).hexdigest() not in blobs and len(blobs) == 1  # the rewritten invitation
        tombstones = list(await session.scalars(select(ErasureTombstone)))
        assert sorted(t.kind for t in tombstones) == ["email", "phone", "phone"]
        assert not any("5551234" in t.digest or "brandt" in t.digest for t in tombstones)
        assert await session.scalar(select(func.count()).select_from(MailTombstone)) == 2
        erased = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "erase"))).one()
        assert (erased.subject_kind, erased.subject_id, erased.details["entries_deleted"]) == ("contact", otto, 2)
        trail = json.dumps([list(row) for row in (await session.execute(text("SELECT * FROM audit_events"))).all()],
                           default=str).lower()
    assert not any(trace in trail for trace in ("brandt", "otto", "5551234", "9876543"))

    # The archiver meets the offer again (a rescan): it is never filed again.
    result = await files.file_mail(OFFER, uid=10)
    assert result.erased == 1
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Email)) == 1


async def _backlog(db: Database) -> list[str]:
    async with db.sessions() as session:
        return [json.dumps(payload).lower() for payload in await session.scalars(select(AgentMessage.payload))]


async def _only_email_id(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(Email.id)) or 0)


async def test_only_admins_export_and_erase_and_an_unknown_id_is_a_404(
        office: dict[str, Any], client: TestClient, agent_headers: dict[str, str]) -> None:
    agent = Files(client, agent_headers)
    await agent.call("GET", f"/api/gdpr/contacts/{office['otto']}/export", 403)
    await agent.call("POST", f"/api/gdpr/contacts/{office['otto']}/erase", 403)
    await office["files"].call("GET", f"/api/contacts/{office['otto']}")  # still there
    await office["files"].call("POST", "/api/gdpr/contacts/999999/erase", 404)
    await office["files"].call("GET", "/api/gdpr/contacts/999999/export", 404)
