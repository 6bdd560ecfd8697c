"""Archiving against a real Dovecot: every message exactly once, whatever happens in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from mailbuild import mail, mailbox
from sqlalchemy import func, select
from support.dovecot import Dovecot

from commhub.commands.common import Database
from commhub.contacts.records import ContactRecord
from commhub.mail import preparing
from commhub.mail.archiver import FolderArchiver, FolderReport
from commhub.mail.filing import OwnAddresses
from commhub.mail.imap import imap_session
from commhub.settings import MailboxSettings
from commhub.store import files
from commhub.store.mail_db import MailDatabase
from commhub.store.models import (
    Email,
    EmailLocation,
    HistoryEntry,
    HistoryLink,
    MailCheckpoint,
    MailWarning,
)

OWN = OwnAddresses.of(["vertrieb@example.de"])


@pytest.fixture
async def mail_db(db: Database, settings) -> AsyncIterator[MailDatabase]:  # type: ignore[no-untyped-def]
    database = MailDatabase(settings.database.url, db.sessions)
    yield database
    database.close()


async def sync(box: MailboxSettings, database: MailDatabase) -> list[FolderReport]:
    async with imap_session(box) as imap:
        return [await FolderArchiver(box, folder, database, OWN).sync(imap) for folder in box.folders]


async def count(db: Database, model: type, *where: object) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def add_contact(db: Database, first: str, last: str, email: str, company: str = "",
                      domain: str = "") -> int:
    async with db.sessions() as session, session.begin():
        _kind, contact_id, _problems = await files.create_file(
            session, ContactRecord(first_name=first, last_name=last, emails=[email], company=company,
                                   company_domain=domain), "DE")
    return contact_id


async def test_first_import_files_every_message_once_into_the_senders_history(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    erika = await add_contact(db, "Erika", "Muster", "erika.muster@muster-gmbh.de")
    for number in range(230):
        dovecot.append("INBOX", mail(number))
    box = mailbox(dovecot, batch_size=50, connections=2)

    [report] = await sync(box, mail_db)

    assert (report.fetched, report.filed, report.known, report.warnings) == (230, 230, 0, 0)
    assert await count(db, Email) == 230
    assert await count(db, EmailLocation) == 230
    assert await count(db, HistoryEntry, HistoryEntry.kind == "email") == 230
    assert await count(db, HistoryLink, HistoryLink.contact_id == erika) == 230
    async with db.sessions() as session:
        checkpoint = await session.get(MailCheckpoint, ("vertrieb", "INBOX"))
    assert checkpoint is not None
    assert (checkpoint.uidvalidity, checkpoint.last_uid) == (dovecot.uidvalidity("INBOX"), max(dovecot.uids("INBOX")))
    # EXAMINE and BODY.PEEK[]: archiving leaves the mailbox as the user left it.
    assert "\\Seen" not in dovecot.flags("INBOX", dovecot.uids("INBOX")[0])


async def test_incremental_import_fetches_only_new_mail(dovecot: Dovecot, db: Database,
                                                        mail_db: MailDatabase) -> None:
    for number in range(5):
        dovecot.append("INBOX", mail(number))
    box = mailbox(dovecot)
    await sync(box, mail_db)
    for number in range(5, 8):
        dovecot.append("INBOX", mail(number))

    [report] = await sync(box, mail_db)
    [quiet] = await sync(box, mail_db)

    assert (report.fetched, report.filed) == (3, 3)
    assert (quiet.fetched, quiet.filed) == (0, 0)
    assert await count(db, Email) == 8


async def test_a_new_uidvalidity_rescans_the_folder_without_filing_anything_twice(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    for number in range(12):
        dovecot.append("INBOX", mail(number))
    box = mailbox(dovecot)
    await sync(box, mail_db)

    new_validity = await asyncio.to_thread(dovecot.change_uidvalidity, "INBOX")
    [report] = await sync(box, mail_db)

    assert report.rescanned
    assert (report.fetched, report.filed, report.known) == (12, 0, 12)
    assert await count(db, Email) == 12
    assert await count(db, HistoryEntry) == 12
    assert await count(db, EmailLocation, EmailLocation.uidvalidity == new_validity) == 12


async def test_the_same_message_in_two_folders_is_one_history_entry(dovecot: Dovecot, db: Database,
                                                                    mail_db: MailDatabase) -> None:
    dovecot.create_folder("Gesendete Objekte")
    raw = mail(1, sender="Vertrieb <vertrieb@example.de>", to="Erika Muster <erika.muster@muster-gmbh.de>")
    dovecot.append("INBOX", raw)
    dovecot.append("Gesendete Objekte", raw)
    erika = await add_contact(db, "Erika", "Muster", "erika.muster@muster-gmbh.de")

    reports = await sync(mailbox(dovecot, folders=["INBOX", "Gesendete Objekte"]), mail_db)

    assert [r.filed for r in reports] == [1, 0]
    assert [r.known for r in reports] == [0, 1]
    assert await count(db, Email) == 1
    assert await count(db, EmailLocation) == 2
    assert await count(db, HistoryLink, HistoryLink.contact_id == erika) == 1
    async with db.sessions() as session:
        email = (await session.scalars(select(Email))).one()
    assert email.direction == "out"  # from the mailbox's own address


async def test_a_message_over_the_size_limit_is_filed_from_its_header_with_a_warning(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    dovecot.append("INBOX", mail(1))
    dovecot.append("INBOX", mail(2, subject="Pläne (groß)", attachment=b"%PDF-1.4 " + b"x" * 300_000))
    dovecot.append("INBOX", mail(3))
    box = mailbox(dovecot, max_message_mb=0.1)

    [report] = await sync(box, mail_db)

    assert (report.filed, report.warnings) == (3, 1)
    async with db.sessions() as session:
        big = (await session.scalars(select(Email).where(Email.headers_only.is_(True)))).one()
        warning = (await session.scalars(select(MailWarning))).one()
    assert big.subject == "Pläne (groß)"
    assert big.size > 300_000
    assert (warning.kind, warning.email_id) == ("oversized", big.id)


async def test_a_poison_message_is_kept_raw_and_the_ones_after_it_are_filed(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    real_parse = preparing.parse_message

    def parse_or_choke(raw: bytes):  # type: ignore[no-untyped-def]
        if b"GIFTIG" in raw:
            raise RecursionError("maximum recursion depth exceeded")  # what deeply nested MIME once did
        return real_parse(raw)
    monkeypatch.setattr(preparing, "parse_message", parse_or_choke)
    dovecot.append("INBOX", mail(1))
    dovecot.append("INBOX", mail(2, subject="GIFTIG"))
    dovecot.append("INBOX", mail(3))

    [report] = await sync(mailbox(dovecot), mail_db)

    assert (report.filed, report.warnings) == (3, 1)
    async with db.sessions() as session:
        poison = (await session.scalars(select(Email).where(Email.unparsable.is_(True)))).one()
        warning = (await session.scalars(select(MailWarning))).one()
    assert warning.kind == "unparsable" and "RecursionError" in warning.detail
    assert poison.raw_sha256 is not None and poison.message_key.startswith("sha256:")
    assert await count(db, Email, Email.unparsable.is_(False)) == 2


async def test_unknown_senders_wait_unassigned_until_a_contact_with_their_address_appears(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    dovecot.append("INBOX", mail(1, sender="Jan Neu <jan.neu@neukunde.de>"))
    await sync(mailbox(dovecot), mail_db)
    assert await count(db, Email, Email.assigned.is_(False)) == 1

    async with db.sessions() as session, session.begin():
        _kind, jan, _problems = await files.create_file(
            session, ContactRecord(first_name="Jan", last_name="Neu", emails=["Jan.Neu@Neukunde.de"]), "DE")
        from commhub.mail.refiling import refile
        assert await refile(session, OWN, addresses=["jan.neu@neukunde.de"]) == 1

    assert await count(db, Email, Email.assigned.is_(False)) == 0
    assert await count(db, HistoryLink, HistoryLink.contact_id == jan) == 1


async def test_mail_from_a_known_company_domain_files_to_the_organization(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    await add_contact(db, "Erika", "Muster", "erika.muster@muster-gmbh.de", company="Muster GmbH",
                      domain="muster-gmbh.de")
    dovecot.append("INBOX", mail(1, sender="Buchhaltung <buchhaltung@muster-gmbh.de>"))
    dovecot.append("INBOX", mail(2, sender="Privat <someone@gmx.de>"))
    await sync(mailbox(dovecot), mail_db)

    assert await count(db, HistoryLink, HistoryLink.organization_id.is_not(None)) == 1
    assert await count(db, Email, Email.assigned.is_(False)) == 1  # a freemail domain is nobody's company
