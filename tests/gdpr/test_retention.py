"""`[retention]`: what is older than its kind's months goes, the rest stays; old mail is not fetched again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from commhub import app as app_module
from commhub.app import build_app
from commhub.audit import Actor
from commhub.commands.common import Database
from commhub.gdpr.retention import months_before, run_retention
from commhub.mail.filing import OwnAddresses
from commhub.mail.preparing import prepare
from commhub.settings import DatabaseSettings, RetentionSettings, Settings
from commhub.store.mail_db import MailDatabase
from commhub.store.models import AuditEvent, Call, Email, HistoryEntry, Task

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
POLICY = RetentionSettings(calls_months=12, notes_months=24, emails_months=12, tasks_months=6)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_months_are_calendar_months() -> None:
    assert months_before(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2028, 3, 31, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 2) == datetime(2025, 11, 15, tzinfo=UTC)
    assert months_before(NOW, 12) == datetime(2025, 11, 24, 9, 0, tzinfo=UTC)


def mail(number: int, sent: datetime) -> bytes:
    message = EmailMessage()
    message["From"] = "kunde@example.org"
    message["To"] = "vertrieb@example.de"
    message["Subject"] = f"Nachricht {number}"
    message["Message-ID"] = f"<m{number}@example.org>"
    message["Date"] = format_datetime(sent)
    message.set_content("Text")
    return message.as_bytes()


OLD_MAIL, NEW_MAIL = mail(1, NOW - timedelta(days=400)), mail(2, NOW - timedelta(days=30))


async def file(database: MailDatabase, *messages: bytes, first_uid: int = 1) -> int:
    items = [prepare(first_uid + n, len(raw), raw, False) for n, raw in enumerate(messages)]
    result = await database.run(lambda sql: sql.file_batch(
        "vertrieb", "INBOX", 1, items, OwnAddresses.of(["vertrieb@example.de"]), first_uid + len(items) - 1, NOW))
    return result.erased


async def seed(db: Database, settings: Settings) -> MailDatabase:
    async with db.sessions() as session, session.begin():
        for name, age in (("old", 400), ("new", 30)):
            call = Call(source="pbx", provider_call_id=name, direction="in", state="completed",
                        started_at=NOW - timedelta(days=age))
            session.add(call)
            await session.flush()
            session.add(HistoryEntry(kind="call", occurred_at=call.started_at, call_id=call.id, title=name))
        for age in (800, 400):
            session.add(HistoryEntry(kind="note", occurred_at=NOW - timedelta(days=age), title=f"note {age}"))
        for status, age in (("done", 400), ("cancelled", 200), ("open", 400), ("done", 30)):
            session.add(Task(title=f"{status} {age}", status=status, created_at=NOW - timedelta(days=age)))
    database = MailDatabase(settings.database.url, db.sessions)
    await file(database, OLD_MAIL, NEW_MAIL)
    return database


async def test_each_kind_goes_after_its_months_and_old_mail_never_returns(db: Database, settings: Settings) -> None:
    database = await seed(db, settings)
    try:
        async with db.sessions() as session, session.begin():
            counts = await run_retention(session, POLICY, NOW, Actor.cli())
        assert counts == {"calls": 1, "notes": 1, "emails": 1, "tasks": 2}
        async with db.sessions() as session:
            assert list(await session.scalars(select(Call.provider_call_id))) == ["new"]
            assert sorted(await session.scalars(select(HistoryEntry.title).where(HistoryEntry.kind != "email"))) == [
                "new", "note 400"]
            assert sorted(await session.scalars(select(Task.title))) == ["done 30", "open 400"]
            assert list(await session.scalars(select(Email.subject))) == ["Nachricht 2"]
            event = (await session.scalars(select(AuditEvent))).one()
            assert (event.action, event.details["kinds"]) == ("retention", counts)
        assert await file(database, OLD_MAIL, first_uid=10) == 1  # a rescan meets its tombstone
    finally:
        database.close()


@SQLITE
async def test_the_daemon_applies_retention_without_being_asked(
        db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(database=DatabaseSettings(url=database_url), retention=POLICY)
    (await seed(db, settings)).close()
    monkeypatch.setattr(app_module, "RETENTION_FIRST_RUN_S", 0)
    async with TestClient(TestServer(build_app(settings))):
        for _ in range(100):
            async with db.sessions() as session:
                if await session.scalar(select(func.count()).select_from(AuditEvent)):
                    break
            await asyncio.sleep(0.05)
    async with db.sessions() as session:
        event = (await session.scalars(select(AuditEvent))).one()
        assert (event.actor, event.action) == ("daemon", "retention")
        assert await session.scalar(select(func.count()).select_from(Call)) == 1
