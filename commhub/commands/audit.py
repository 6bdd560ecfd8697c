"""`commhub audit`: query the audit trail (newest first)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from commhub import audit
from commhub.commands.common import open_database
from commhub.errors import BadRequest
from commhub.settings import Settings
from commhub.store import agents


def parse_day(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{flag}: {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_subject(text: str | None) -> tuple[str | None, int | None]:
    """`contact:17` → ("contact", 17); `contact` → ("contact", None)."""
    if text is None:
        return None, None
    kind, _, number = text.partition(":")
    if number and not number.isdigit():
        raise BadRequest(f"--subject: {text!r} is not KIND or KIND:ID (e.g. contact:17)")
    return kind, int(number) if number else None


async def audit_query(settings: Settings, args: argparse.Namespace) -> int:
    if args.limit < 1:
        # SQLite reads LIMIT -1 as "no limit", PostgreSQL refuses it: neither is what was asked.
        raise BadRequest(f"--limit: at least 1, got {args.limit}")
    kind, subject_id = parse_subject(args.subject)
    if args.contact is not None:
        kind, subject_id = "contact", args.contact
    async with open_database(settings) as db, db.sessions() as session:
        agent_id = (await agents.get_agent_by_name(session, args.agent)).id if args.agent else None
        events = await audit.query(session, audit.AuditQuery(
            subject_kind=kind, subject_id=subject_id, agent_id=agent_id, action=args.action,
            since=parse_day(args.since, "--since"), until=parse_day(args.until, "--until"), limit=args.limit))
    for event in events:
        found = audit.event_json(event)
        if args.json:
            print(json.dumps(found, ensure_ascii=False))
            continue
        details = " ".join(f"{key}={value}" for key, value in found["details"].items())
        print(f"{found['at'][:19]}  {found['actor']:14} {found['action']:13} {found['subject'] or '-':18} "
              f"{found['via']:8} {found['client'] or '-':15} {found['route'] or ''} {details}".rstrip())
    if not events and not args.json:
        print("no audit events match")
    return 0
