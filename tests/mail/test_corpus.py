"""Every message of the Python standard library's email test corpus, archived without an error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mailbuild import append_many, mailbox
from sqlalchemy import func, select
from support.dovecot import Dovecot
from support.email_corpus import require_corpus

from commhub.commands.common import Database
from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import OwnAddresses
from commhub.mail.imap import imap_session
from commhub.settings import Settings
from commhub.store.mail_db import MailDatabase
from commhub.store.models import Email, EmailLocation, MailWarning

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
async def mail_db(db: Database, settings: Settings) -> AsyncIterator[MailDatabase]:
    database = MailDatabase(settings.database.url, db.sessions)
    yield database
    database.close()


async def test_the_whole_corpus_is_archived_and_parsed(dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    messages = [path.read_bytes() for path in require_corpus()]
    append_many(dovecot, "INBOX", messages)
    box = mailbox(dovecot, batch_size=20)

    async with imap_session(box) as imap:
        report = await FolderArchiver(box, "INBOX", mail_db, OwnAddresses()).sync(imap)

    assert report.fetched == len(messages)
    async with db.sessions() as session:
        locations = await session.scalar(select(func.count()).select_from(EmailLocation))
        unparsable = list(await session.scalars(select(MailWarning.detail).where(MailWarning.kind == "unparsable")))
        emails = await session.scalar(select(func.count()).select_from(Email))
    assert locations == len(messages)
    assert unparsable == []
    # Some corpus files are the same message (same Message-ID) on purpose: those share one entry.
    assert emails == report.filed and report.filed + report.known == len(messages)
