"""Watching a folder: IDLE delivery, a server that restarts, after_archive, erasure that lasts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from mailbuild import mail, mailbox
from sqlalchemy import func, select
from support.dovecot import Dovecot

from commhub.commands.common import Database
from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import OwnAddresses
from commhub.mail.imap import imap_session
from commhub.store.mail_db import MailDatabase
from commhub.store.models import Email, HistoryEntry, utcnow

OWN = OwnAddresses.of(["vertrieb@example.de"])
# One backend is enough here: what is tested is the IMAP side; the storage is shared with test_archive.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def mail_db(db: Database, settings) -> AsyncIterator[MailDatabase]:  # type: ignore[no-untyped-def]
    database = MailDatabase(settings.database.url, db.sessions)
    yield database
    database.close()


async def emails(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Email)) or 0)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Seconds until `check` holds; fails after `seconds`."""
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if await check():
            return time.perf_counter() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


async def test_with_idle_a_new_message_is_in_the_history_within_seconds(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    archiver = FolderArchiver(mailbox(dovecot), "INBOX", mail_db, OWN)
    task = asyncio.create_task(archiver.run_forever())
    try:
        await eventually(lambda: _true(archiver.last_sync is not None), 10)
        await asyncio.sleep(0.3)  # IDLE is running
        await asyncio.to_thread(dovecot.append, "INBOX", mail(1))
        latency = await eventually(lambda: _count_is(db, 1), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert latency < 5


async def test_after_a_dovecot_restart_it_reconnects_and_files_what_arrived_meanwhile(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    dovecot.append("INBOX", mail(1))
    archiver = FolderArchiver(mailbox(dovecot), "INBOX", mail_db, OWN)
    task = asyncio.create_task(archiver.run_forever())
    try:
        await eventually(lambda: _count_is(db, 1), 10)
        await asyncio.to_thread(dovecot.stop)
        await eventually(lambda: _true(not archiver.connected), 10)
        await asyncio.to_thread(dovecot.start)
        await asyncio.to_thread(dovecot.append, "INBOX", mail(2))
        await asyncio.to_thread(dovecot.append, "INBOX", mail(3))
        await eventually(lambda: _count_is(db, 3), 20)
        assert archiver.connected and archiver.connects == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not archiver.connected  # stopped: logged out


async def test_idle_is_renewed_on_the_same_connection(dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    archiver = FolderArchiver(mailbox(dovecot), "INBOX", mail_db, OWN)
    archiver.idle_seconds = 0.2  # instead of minutes: renewed several times during the test
    task = asyncio.create_task(archiver.run_forever())
    try:
        await eventually(lambda: _true(archiver.last_sync is not None), 10)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(dovecot.append, "INBOX", mail(1))
        await eventually(lambda: _count_is(db, 1), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert archiver.connects == 1


async def test_a_server_that_stops_answering_is_noticed_and_left_for_a_new_connection(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    archiver = FolderArchiver(mailbox(dovecot, timeout_seconds=1), "INBOX", mail_db, OWN)
    archiver.idle_seconds = 0.5
    task = asyncio.create_task(archiver.run_forever())
    try:
        await eventually(lambda: _true(archiver.last_sync is not None), 10)
        dovecot.freeze()  # SIGSTOP: the TCP connection stays open, nothing answers
        try:
            await eventually(lambda: _true(not archiver.connected), 10)
        finally:
            dovecot.thaw()
        await asyncio.to_thread(dovecot.append, "INBOX", mail(1))
        await eventually(lambda: _count_is(db, 1), 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert archiver.connects >= 2


async def test_seen_marks_only_archived_messages(dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    uid = dovecot.append("INBOX", mail(1))
    box = mailbox(dovecot, after_archive="seen")
    async with imap_session(box) as imap:
        await FolderArchiver(box, "INBOX", mail_db, OWN).sync(imap)
    assert "\\Seen" in dovecot.flags("INBOX", uid)


async def test_move_takes_archived_mail_out_of_the_folder_after_the_commit(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    dovecot.create_folder("Archiv")
    for number in range(3):
        dovecot.append("INBOX", mail(number))
    box = mailbox(dovecot, after_archive="move:Archiv")
    async with imap_session(box) as imap:
        await FolderArchiver(box, "INBOX", mail_db, OWN).sync(imap)
    assert dovecot.uids("INBOX") == []
    assert len(dovecot.uids("Archiv")) == 3
    assert await emails(db) == 3


async def test_delete_removes_archived_mail(dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    dovecot.append("INBOX", mail(1))
    box = mailbox(dovecot, after_archive="delete")
    async with imap_session(box) as imap:
        await FolderArchiver(box, "INBOX", mail_db, OWN).sync(imap)
    assert dovecot.uids("INBOX") == []
    assert await emails(db) == 1


async def test_an_erased_message_is_never_filed_again_from_the_server(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    dovecot.append("INBOX", mail(1, subject="Bitte löschen"))
    dovecot.append("INBOX", mail(2))
    box = mailbox(dovecot)
    async with imap_session(box) as imap:
        await FolderArchiver(box, "INBOX", mail_db, OWN).sync(imap)
    async with db.sessions() as session:
        doomed = (await session.scalars(select(Email).where(Email.subject == "Bitte löschen"))).one()
    assert await mail_db.run(lambda sql: sql.erase(doomed.id, utcnow()))

    await asyncio.to_thread(dovecot.change_uidvalidity, "INBOX")  # forces a full rescan
    async with imap_session(box) as imap:
        report = await FolderArchiver(box, "INBOX", mail_db, OWN).sync(imap)

    assert (report.erased, report.known, report.filed) == (1, 1, 0)
    async with db.sessions() as session:
        subjects = list(await session.scalars(select(Email.subject)))
        titles = list(await session.scalars(select(HistoryEntry.title)))
    assert subjects == ["Anfrage Angebot Nr. 2"]
    assert titles == ["Anfrage Angebot Nr. 2"]


async def _true(value: bool) -> bool:
    return value


async def _count_is(db: Database, expected: int) -> bool:
    return await emails(db) == expected


async def test_mail_that_arrives_while_a_sync_is_storing_is_filed_without_waiting_for_the_next_notice(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    """The server announces such mail during the sync's FETCH, not in the IDLE that follows."""
    dovecot.append("INBOX", mail(1))

    class DeliveredMeanwhile(FolderArchiver):
        delivered = False

        async def _extra_sessions(self, batch_count: int):  # type: ignore[no-untyped-def]
            # After the sync listed the new UIDs, before it fetches them on this connection.
            if not self.delivered:
                self.delivered = True
                await asyncio.to_thread(dovecot.append, "INBOX", mail(2))
            return await super()._extra_sessions(batch_count)

    archiver = DeliveredMeanwhile(mailbox(dovecot), "INBOX", mail_db, OWN)
    task = asyncio.create_task(archiver.run_forever())
    try:
        # Without a second look it waited for Dovecot's next notice: 5 s here, minutes in the wild.
        await eventually(lambda: _count_is(db, 2), 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_archiver_stopped_while_idling_logs_out_at_once(
        dovecot: Dovecot, db: Database, mail_db: MailDatabase) -> None:
    archiver = FolderArchiver(mailbox(dovecot), "INBOX", mail_db, OWN)
    task = asyncio.create_task(archiver.run_forever())
    await eventually(lambda: _true(archiver.last_sync is not None), 10)
    await asyncio.sleep(0.3)  # IDLE is running
    started = time.perf_counter()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert time.perf_counter() - started < 2  # DONE, then LOGOUT: no wait for a timeout
    await eventually(lambda: _true("Logged out" in dovecot.log_file.read_text(errors="replace")), 5)
    assert "IDLE running" not in dovecot.log_file.read_text(errors="replace")
