"""Sending through a real aiosmtpd server: filed once, queued while the server is down, copied to Sent."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator, Callable
from email import policy

import pytest
from mailbuild import mail, mailbox
from sqlalchemy import func, select
from support.dovecot import Dovecot
from support.smtp_server import SmtpServer

from commhub.commands.common import Database
from commhub.contacts.records import ContactRecord
from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import own_addresses
from commhub.mail.imap import imap_session
from commhub.mail.outbox import Outbox
from commhub.mail.sending import ComposeError, Draft
from commhub.settings import Settings
from commhub.store import files
from commhub.store.mail_db import MailDatabase
from commhub.store.models import Email, HistoryEntry, HistoryLink, OutboxMessage

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DRAFT = Draft(to=["Erika Muster <erika.muster@muster-gmbh.de>"], subject="Ihr Angebot über 40 Stück",
              text="Sehr geehrte Frau Muster,\n\nanbei unser Angebot.\n", bcc=["chef@example.de"])


@pytest.fixture
async def mail_db(db: Database, settings: Settings) -> AsyncIterator[MailDatabase]:
    database = MailDatabase(settings.database.url, db.sessions)
    yield database
    database.close()


SmtpServerFactory = Callable[..., SmtpServer]


def with_smtp(settings: Settings, port: int, **smtp: object) -> Settings:
    values = {"host": "127.0.0.1", "port": port, "tls": "none", "username": "mailer", "password": "mailer-secret",
              "from": "Vertrieb Beispiel GmbH <vertrieb@example.de>", **smtp}
    return Settings.model_validate({**settings.model_dump(by_alias=True), "smtp": values})


async def test_a_sent_message_reaches_the_server_and_the_contacts_history(
        db: Database, mail_db: MailDatabase, settings: Settings, smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory()
    async with db.sessions() as session, session.begin():
        _kind, erika, _ = await files.create_file(
            session, ContactRecord(first_name="Erika", last_name="Muster", emails=["erika.muster@muster-gmbh.de"]), "DE")

    sent = await Outbox(with_smtp(settings, server.port), mail_db).submit(DRAFT)

    assert sent.status == "sent"
    [received] = server.messages
    assert received.login == server.user
    assert sorted(received.rcpt_tos) == ["chef@example.de", "erika.muster@muster-gmbh.de"]
    wire = email.message_from_bytes(received.content, policy=policy.default)
    assert wire["Bcc"] is None  # blind copies stay blind
    assert wire["Message-ID"] == sent.message_id and sent.message_id.endswith("@example.de>")
    async with db.sessions() as session:
        stored = await session.get(Email, sent.email_id)
        links = list(await session.scalars(select(HistoryLink.contact_id)))
    assert stored is not None and (stored.status, stored.direction) == ("sent", "out")
    assert links == [erika]


async def test_when_the_smtp_server_is_down_the_message_is_queued_and_sent_later(
        db: Database, mail_db: MailDatabase, settings: Settings, smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(start=False)
    outbox = Outbox(with_smtp(settings, server.port, timeout_seconds=2), mail_db)

    queued = await outbox.submit(DRAFT)
    assert queued.status == "queued" and queued.error
    async with db.sessions() as session:
        assert (await session.get(Email, queued.email_id)).status == "queued"  # type: ignore[union-attr]
        row = (await session.scalars(select(OutboxMessage))).one()
        row.next_attempt_at = row.created_at  # due now instead of in 30 s
        await session.commit()

    server.start()
    assert await outbox.deliver_due() == 1

    assert len(server.messages) == 1
    async with db.sessions() as session:
        assert (await session.get(Email, queued.email_id)).status == "sent"  # type: ignore[union-attr]
        assert await session.scalar(select(func.count()).select_from(HistoryEntry)) == 1
    assert await outbox.deliver_due() == 0  # nothing sent twice


async def test_a_message_being_sent_is_not_sent_again_by_the_outbox_of_another_node(
        db: Database, mail_db: MailDatabase, settings: Settings, smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory()
    server.data_delay = 1.0
    configured = with_smtp(settings, server.port, timeout_seconds=5)
    here, elsewhere = Outbox(configured, mail_db), Outbox(configured, mail_db)

    sending = asyncio.create_task(here.submit(DRAFT))
    await asyncio.sleep(0.5)  # the attempt is waiting for the server's answer to DATA
    assert await elsewhere.deliver_due() == 0
    assert (await sending).status == "sent"
    assert await elsewhere.deliver_due() == 0
    assert len(server.messages) == 1


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
async def test_tls_and_xoauth2(db: Database, mail_db: MailDatabase, settings: Settings,
                               smtp_server_factory: SmtpServerFactory, tls: str) -> None:
    server = smtp_server_factory(tls=tls)
    configured = with_smtp(settings, server.port, tls=tls, host="localhost", ca_file=str(server.ca_file),
                           auth="xoauth2", password=None, oauth_token=server.oauth_token)
    sent = await Outbox(configured, mail_db).submit(DRAFT)
    assert sent.status == "sent", sent.error
    assert server.messages[0].login == server.user


async def test_a_bad_address_is_refused_before_anything_is_stored(
        db: Database, mail_db: MailDatabase, settings: Settings, smtp_server: object) -> None:
    outbox = Outbox(with_smtp(settings, 1), mail_db)
    with pytest.raises(ComposeError, match="to: 'erika at muster' is not an email address"):
        await outbox.submit(Draft(to=["erika at muster"], subject="x", text="y"))
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Email)) == 0


async def test_the_copy_in_sent_is_not_filed_a_second_time(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase, settings: Settings,
        smtp_server_factory: SmtpServerFactory) -> None:
    dovecot.create_folder("Sent")
    box = mailbox(dovecot, folders=["INBOX", "Sent"])
    server = smtp_server_factory()
    configured = Settings.model_validate({
        **with_smtp(settings, server.port).model_dump(by_alias=True),
        "mailboxes": [box.model_dump()], "smtp": {**with_smtp(settings, server.port).smtp.model_dump(by_alias=True),
                                                  "sent_mailbox": "vertrieb", "sent_folder": "Sent"}})
    sent = await Outbox(configured, mail_db).submit(DRAFT)
    assert sent.status == "sent"
    assert len(dovecot.uids("Sent")) == 1
    dovecot.append("INBOX", mail(1, in_reply_to=sent.message_id, sender="erika.muster@muster-gmbh.de",
                                 subject="Re: Ihr Angebot über 40 Stück"))

    async with imap_session(box) as imap:
        reports = [await FolderArchiver(box, folder, mail_db, own_addresses(configured)).sync(imap)
                   for folder in box.folders]

    assert [(r.filed, r.known) for r in reports] == [(1, 0), (0, 1)]
    async with db.sessions() as session:
        emails = list(await session.scalars(select(Email).order_by(Email.id)))
    assert len(emails) == 2
    assert emails[1].thread_key == emails[0].thread_key == sent.message_id  # the answer threads to it
