"""Retention: records of a kind are deleted once they are older than the configured number of months.

`[retention]` keys are per kind and off by default: `calls_months` (call records and their
timeline entries), `notes_months`, `emails_months` (erased like `DELETE /api/emails/{id}`, with
tombstones, so the archiver does not fetch them again from a server that still holds them) and
`tasks_months` (done or cancelled tasks). The daemon applies it at start and then daily; `commhub
gdpr retention` applies it once. Each run is one audit event with the counts.
"""

from __future__ import annotations

import calendar
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub import audit
from commhub.audit import Actor
from commhub.settings import RetentionSettings
from commhub.store.mail_sql import MailSql
from commhub.store.models import Call, Email, HistoryEntry, Task
from commhub.store.sql_db import SessionDb


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the 31st becomes the month's last day)."""
    total = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


async def apply_retention(session: AsyncSession, policy: RetentionSettings, now: datetime) -> dict[str, int]:
    """Delete what is past its time, in the caller's transaction; counts per kind."""
    counts: dict[str, int] = {}
    if policy.calls_months:
        cutoff = months_before(now, policy.calls_months)
        ids = list(await session.scalars(select(Call.id).where(Call.started_at < cutoff)))
        await session.execute(delete(HistoryEntry).where(HistoryEntry.call_id.in_(ids), HistoryEntry.kind == "call"))
        await session.execute(delete(Call).where(Call.id.in_(ids)))
        counts["calls"] = len(ids)
    if policy.notes_months:
        cutoff = months_before(now, policy.notes_months)
        notes = delete(HistoryEntry).where(HistoryEntry.kind == "note", HistoryEntry.occurred_at < cutoff)
        counts["notes"] = (await session.execute(notes)).rowcount or 0
    if policy.emails_months:
        cutoff = months_before(now, policy.emails_months)
        # The message's own date: a first import of an old mailbox files years of mail today.
        ids = list(await session.scalars(select(Email.id).where(func.coalesce(Email.sent_at, Email.created_at) < cutoff)))
        erased = await session.run_sync(lambda sync: sum(MailSql(SessionDb(sync)).erase(i, now) for i in ids))
        counts["emails"] = erased
    if policy.tasks_months:
        cutoff = months_before(now, policy.tasks_months)
        ended = select(Task.id).where(Task.status.in_(("done", "cancelled")), Task.created_at < cutoff)
        ids = list(await session.scalars(ended))
        await session.execute(delete(Task).where(Task.id.in_(ids)))
        counts["tasks"] = len(ids)
    return counts


async def run_retention(session: AsyncSession, policy: RetentionSettings, now: datetime, actor: Actor) -> dict[str, int]:
    """Apply the policy and write its audit event, in one transaction the caller commits."""
    counts = await apply_retention(session, policy, now)
    audit.record(session, actor, "retention", details={"count": sum(counts.values()), "kinds": counts}, at=now)
    return counts
