"""Erase one person (GDPR Art. 17): their file, what concerns only them, and their traces in the rest.

In one transaction:
- history entries linked to nobody else are deleted; an email among them is erased the way
  `DELETE /api/emails/{id}` does it (its key and content hash stay as tombstones, so the archiver
  never files it again);
- entries shared with other files (an email to several customers, a call matched to the person
  and their company) stay there with the person's name, numbers and addresses cut out, and the
  person's participant rows removed; the raw message is rewritten without them;
- calls nobody else's history refers to are deleted with their events; kept calls lose the number;
- the person's tasks, callback tasks for their numbers, and WebSocket backlog messages naming them go;
- blobs no message refers to any more are deleted;
- keyed digests of the numbers and addresses are kept (`erasure_tombstones`), so an import can
  tell that a row brings an erased person back.
The caller-ID match reads the numbers table, so the number matches nothing from the commit on.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.contacts.names import display_name
from commhub.gdpr.digests import digest, erasure_key
from commhub.gdpr.export import linked_entries
from commhub.gdpr.identifiers import Identifiers
from commhub.store import files
from commhub.store.mail_sql import MailSql
from commhub.store.models import (
    AgentMessage,
    Blob,
    Call,
    CallEventRow,
    Email,
    EmailAddressRow,
    EmailParticipant,
    ErasureTombstone,
    HistoryEntry,
    HistoryLink,
    PhoneNumberRow,
    Task,
    utcnow,
)
from commhub.store.sql_db import SessionDb


async def erase_contact(session: AsyncSession, contact_id: int, *, now: datetime | None = None) -> dict[str, int]:
    """Erase within the caller's transaction; the counts (never identifiers) for the audit trail."""
    now = now or utcnow()
    contact = await files.get_contact(session, contact_id)
    phones = list(await session.scalars(select(PhoneNumberRow).where(PhoneNumberRow.contact_id == contact_id)))
    addresses = list(await session.scalars(select(EmailAddressRow).where(EmailAddressRow.contact_id == contact_id)))
    full_name = display_name(contact.first_name, contact.last_name, contact.title)
    names = [full_name, f"{contact.first_name or ''} {contact.last_name or ''}".strip(),
             f"{contact.last_name or ''}, {contact.first_name or ''}"] if contact.first_name and contact.last_name else []
    who = Identifiers.of(names=names, numbers=[p.e164 for p in phones if p.e164],
                         raw_numbers=[p.raw for p in phones], addresses=[a.address for a in addresses])
    counts: Counter[str] = Counter(numbers=len(who.numbers), addresses=len(who.addresses))

    entries = await linked_entries(session, contact_id)
    links = await _link_counts(session, [entry.id for entry in entries])
    theirs = [entry for entry in entries if links[entry.id] <= 1]
    shared = [entry for entry in entries if links[entry.id] > 1]
    theirs_ids = {entry.id for entry in theirs}
    shared_ids = [entry.id for entry in shared]
    call_ids = {entry.call_id for entry in entries if entry.call_id is not None}
    if who.numbers:
        call_ids |= set(await session.scalars(select(Call.id).where(Call.customer_e164.in_(who.numbers))))

    blobs_before = await _blob_count(session)
    for entry in theirs:
        if entry.email_id is not None:
            email_id = entry.email_id  # the mail archive's own erasure, in this transaction
            counts["emails_erased"] += await session.run_sync(lambda sync: MailSql(SessionDb(sync)).erase(email_id, now))
    await session.execute(delete(HistoryEntry).where(HistoryEntry.id.in_(theirs_ids)))
    counts["entries_deleted"] = len(theirs)

    rewritten = 0
    for entry in await _reload(session, shared_ids):
        rewritten += await _keep_without(session, entry, contact_id, who)
        counts["entries_kept"] += 1
    for call_id in sorted(call_ids):
        counts["calls_kept" if await _keep_call(session, call_id, contact_id, who) else "calls_deleted"] += 1
    counts["tasks_deleted"] = await _drop_tasks(session, contact_id, who)
    counts["messages_dropped"] = await _drop_backlog(session, contact_id, who)
    counts["blobs_deleted"] = blobs_before + rewritten - await _blob_count(session)
    await _tombstones(session, who, now)
    await session.delete(contact)
    await session.flush()
    return {key: value for key, value in counts.items() if value}


async def _blob_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Blob)) or 0


async def _link_counts(session: AsyncSession, entry_ids: list[int]) -> Counter[int]:
    rows = await session.execute(select(HistoryLink.entry_id, func.count()).where(HistoryLink.entry_id.in_(entry_ids))
                                 .group_by(HistoryLink.entry_id))
    return Counter({entry_id: count for entry_id, count in rows.all()})


async def _reload(session: AsyncSession, entry_ids: list[int]) -> list[HistoryEntry]:
    return list(await session.scalars(select(HistoryEntry).where(HistoryEntry.id.in_(entry_ids))))


async def _keep_without(session: AsyncSession, entry: HistoryEntry, contact_id: int, who: Identifiers) -> int:
    """Unlink the person and cut them out; 1 when a rewritten raw message became a new blob."""
    await session.execute(delete(HistoryLink).where(HistoryLink.entry_id == entry.id,
                                                    HistoryLink.contact_id == contact_id))
    entry.title, entry.body, entry.data = who.scrub(entry.title), who.scrub(entry.body), who.scrub(entry.data)
    if entry.email_id is not None:
        email = await session.get(Email, entry.email_id)
        if email is not None:
            return await _scrub_email(session, email, who)
    return 0


async def _scrub_email(session: AsyncSession, email: Email, who: Identifiers) -> int:
    if email.from_address and email.from_address.lower() in who.addresses:
        email.from_address = None
    email.from_name = who.scrub(email.from_name)
    email.addresses = {role: [pair for pair in pairs if str(pair[1]).lower() not in who.addresses]
                       for role, pairs in (email.addresses or {}).items()}
    email.addresses = who.scrub(email.addresses)
    email.subject, email.text_body = who.scrub(email.subject), who.scrub(email.text_body)
    email.html_body = who.scrub(email.html_body) if email.html_body else email.html_body
    await session.execute(delete(EmailParticipant).where(EmailParticipant.email_id == email.id,
                                                         func.lower(EmailParticipant.address).in_(who.addresses)))
    if email.raw_sha256:
        old = await session.get(Blob, email.raw_sha256)
        cleaned = who.scrub_bytes(old.data) if old is not None else None
        if old is not None and cleaned != old.data:
            await session.flush()
            email_id, now = email.id, utcnow()
            await session.run_sync(lambda sync: MailSql(SessionDb(sync)).replace_raw(email_id, cleaned, now))
            session.expire(email)
            return 1
    return 0


async def _keep_call(session: AsyncSession, call_id: int, contact_id: int, who: Identifiers) -> bool:
    """Delete a call nobody else's history shows; else keep it without the person. True when kept."""
    call = await session.get(Call, call_id)
    if call is None:
        return False
    still_shown = await session.scalar(select(func.count()).select_from(HistoryLink).join(
        HistoryEntry, HistoryEntry.id == HistoryLink.entry_id).where(HistoryEntry.call_id == call_id))
    if not still_shown:
        await session.execute(delete(HistoryEntry).where(HistoryEntry.call_id == call_id))
        await session.delete(call)
        return False
    for column in ("caller_e164", "customer_e164"):
        if getattr(call, column) in who.numbers:
            setattr(call, column, None)
    call.caller_raw, call.caller_name = who.scrub(call.caller_raw), who.scrub(call.caller_name)
    call.matches = [m for m in call.matches if not (m.get("kind") == "contact" and m.get("id") == contact_id)]
    call.matches = who.scrub(call.matches)
    for event in await session.scalars(select(CallEventRow).where(CallEventRow.call_id == call_id)):
        event.data = who.scrub(event.data)
    return True


async def _drop_tasks(session: AsyncSession, contact_id: int, who: Identifiers) -> int:
    dropped = 0
    concerned = Task.contact_id == contact_id
    if who.numbers:
        concerned = concerned | Task.phone_e164.in_(who.numbers)
    for task in list(await session.scalars(select(Task).where(concerned))):
        if task.contact_id == contact_id or (task.contact_id is None and task.organization_id is None):
            await session.delete(task)
            dropped += 1
        else:  # a company's callback task for the person's direct line: the company keeps the task
            task.phone_e164 = None
            task.title, task.data = who.scrub(task.title), who.scrub(task.data)
    return dropped


async def _drop_backlog(session: AsyncSession, contact_id: int, who: Identifiers) -> int:
    """Pops and history messages waiting for a `resume` that name the person."""
    dropped = 0
    for message in await session.scalars(select(AgentMessage)):
        if who.mentioned_in(message.payload) or _names_contact(message.payload, contact_id):
            await session.delete(message)
            dropped += 1
    return dropped


def _names_contact(payload: Any, contact_id: int) -> bool:
    if isinstance(payload, dict):
        if payload.get("kind") == "contact" and payload.get("id") == contact_id:
            return True
        if contact_id in (payload.get("contact_ids") or []) or payload.get("contact_id") == contact_id:
            return True
        return any(_names_contact(value, contact_id) for value in payload.values())
    if isinstance(payload, list):
        return any(_names_contact(item, contact_id) for item in payload)
    return False


async def _tombstones(session: AsyncSession, who: Identifiers, now: datetime) -> None:
    key = await erasure_key(session)
    wanted = {("phone", digest(key, "phone", n)) for n in who.numbers}
    wanted |= {("email", digest(key, "email", a)) for a in who.addresses}
    for kind, value in sorted(wanted):
        if await session.get(ErasureTombstone, (kind, value)) is None:
            session.add(ErasureTombstone(kind=kind, digest=value, erased_at=now))
