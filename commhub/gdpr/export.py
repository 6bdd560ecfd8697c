"""Everything commhub holds about one person, as one zip archive (GDPR Art. 15 access, Art. 20 portability).

    manifest.json            what is in the archive: each file with its size and SHA-256, the counts
    contact.json             the customer file: names, class, company, numbers, addresses, attributes
    timeline.json            every history entry (calls, notes, emails, tasks), oldest first
    calls.json               the call records behind the call entries
    tasks.json               the person's tasks
    emails/<id>.eml          each message as received or sent (RFC 5322)
    emails/<id>/<n>-<name>   its attachments
    LIESMICH.txt / README.txt  the same, in words

The archive is built in a temporary file (mail archives can be large) and handed over as a path.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub import __version__
from commhub.store import files
from commhub.store.history import entries_json
from commhub.store.models import Blob, Call, Email, EmailAttachment, HistoryEntry, HistoryLink, Task, utcnow

README = """commhub: data export for contact {id} ({at})

manifest.json    list of all files with size and SHA-256
contact.json     the customer file
timeline.json    every history entry (calls, notes, emails, tasks), oldest first
calls.json       the call records
tasks.json       the tasks
emails/ID.eml    each email as received or sent; emails/ID/ holds its attachments
"""
LIESMICH = """commhub: Datenauskunft für Kontakt {id} ({at})

manifest.json    Verzeichnis aller Dateien mit Größe und SHA-256
contact.json     die Kundenakte
timeline.json    alle Einträge der Historie (Anrufe, Notizen, E-Mails, Aufgaben), älteste zuerst
calls.json       die Anrufdaten
tasks.json       die Aufgaben
emails/ID.eml    jede E-Mail, wie sie empfangen oder gesendet wurde; emails/ID/ enthält ihre Anhänge
"""


@dataclass
class Archive:
    path: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.path.stat().st_size


async def export_contact(session: AsyncSession, contact_id: int, directory: Path | None = None) -> Archive:
    """Write the archive for this contact; raises NotFound for an unknown id."""
    contact = await files.get_contact(session, contact_id)
    entries = await linked_entries(session, contact_id)
    calls = list(await session.scalars(select(Call).where(Call.id.in_({e.call_id for e in entries if e.call_id}))
                                       .order_by(Call.started_at)))
    tasks = list(await session.scalars(select(Task).where(Task.contact_id == contact_id).order_by(Task.id)))
    emails = list(await session.scalars(select(Email).where(Email.id.in_({e.email_id for e in entries if e.email_id}))
                                        .order_by(Email.id)))
    handle = tempfile.NamedTemporaryFile(prefix=f"commhub-export-{contact_id}-", suffix=".zip", dir=directory,
                                         delete=False)
    handle.close()
    archive = Archive(Path(handle.name))
    try:
        await _write(session, archive, contact_id, contact, entries, calls, tasks, emails)
    except BaseException:
        archive.path.unlink(missing_ok=True)  # no half archive of personal data left in a temp dir
        raise
    return archive


async def _write(session: AsyncSession, archive: Archive, contact_id: int, contact: Any, entries: list[HistoryEntry],
                 calls: list[Call], tasks: list[Task], emails: list[Email]) -> None:
    now = utcnow().isoformat(timespec="seconds")
    with zipfile.ZipFile(archive.path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        def put(name: str, data: bytes, kind: str) -> None:
            zipped.writestr(name, data)
            archive.files.append({"path": name, "kind": kind, "bytes": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()})

        put("contact.json", _json(await files.contact_json(session, contact)), "contact")
        timeline = await session.run_sync(entries_json, entries)
        put("timeline.json", _json(timeline), "timeline")
        put("calls.json", _json([call_json(call) for call in calls]), "calls")
        put("tasks.json", _json([task_json(task) for task in tasks]), "tasks")
        for email in emails:
            await _put_email(session, email, put)
        put("README.txt", README.format(id=contact_id, at=now).encode(), "readme")
        put("LIESMICH.txt", LIESMICH.format(id=contact_id, at=now).encode(), "readme")
        archive.counts = {"entries": len(entries), "calls": len(calls), "tasks": len(tasks), "emails": len(emails),
                          "attachments": sum(1 for f in archive.files if f["kind"] == "attachment")}
        manifest = {"format": "commhub-export/1", "commhub": __version__, "contact_id": contact_id,
                    "exported_at": now, "counts": archive.counts, "files": archive.files}
        zipped.writestr("manifest.json", _json(manifest))


async def linked_entries(session: AsyncSession, contact_id: int) -> list[HistoryEntry]:
    linked = select(HistoryLink.entry_id).where(HistoryLink.contact_id == contact_id)
    return list(await session.scalars(select(HistoryEntry).where(HistoryEntry.id.in_(linked))
                                      .order_by(HistoryEntry.occurred_at, HistoryEntry.id)))


async def _put_email(session: AsyncSession, email: Email, put: Any) -> None:
    if email.raw_sha256:
        blob = await session.get(Blob, email.raw_sha256)
        if blob is not None:
            put(f"emails/{email.id}.eml", blob.data, "email")
    attachments = list(await session.scalars(select(EmailAttachment).where(EmailAttachment.email_id == email.id)
                                             .order_by(EmailAttachment.id)))
    for number, attachment in enumerate(attachments, start=1):
        blob = await session.get(Blob, attachment.blob_sha256)
        if blob is not None:
            put(f"emails/{email.id}/{number}-{safe_name(attachment.filename)}", blob.data, "attachment")


def safe_name(filename: str) -> str:
    """An attachment's name as a plain archive member name: no directories, no control characters."""
    name = re.sub(r"[\x00-\x1f/\\:*?\"<>|]+", "_", filename.rsplit("/", 1)[-1]).strip(" .")
    return name[:120] or "attachment"


def call_json(call: Call) -> dict[str, Any]:
    return {"id": call.id, "source": call.source, "direction": call.direction, "state": call.state,
            "caller": call.caller_raw, "caller_e164": call.caller_e164, "callee": call.callee_raw,
            "customer_e164": call.customer_e164, "started_at": _iso(call.started_at),
            "answered_at": _iso(call.answered_at), "ended_at": _iso(call.ended_at), "duration": call.duration,
            "answered_by": call.answered_by}


def task_json(task: Task) -> dict[str, Any]:
    return {"id": task.id, "kind": task.kind, "title": task.title, "status": task.status,
            "due_at": _iso(task.due_at), "created_at": _iso(task.created_at), "done_at": _iso(task.done_at),
            "phone_e164": task.phone_e164}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode("utf-8")


