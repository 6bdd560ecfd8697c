"""`commhub gdpr export ID`, `commhub gdpr erase ID` and `commhub gdpr retention`."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from commhub import audit
from commhub.commands.common import err, open_database
from commhub.gdpr.erase import erase_contact
from commhub.gdpr.export import export_contact
from commhub.gdpr.retention import run_retention
from commhub.settings import Settings
from commhub.store import files
from commhub.store.models import utcnow


async def gdpr_export(settings: Settings, args: argparse.Namespace) -> int:
    target = Path(args.out or f"commhub-contact-{args.id}.zip")
    if target.exists() and not args.force:
        err(f"{target} exists; choose another --out or add --force")
        return 1
    async with open_database(settings) as db, db.sessions() as session:
        archive = await export_contact(session, args.id, directory=target.parent if target.parent.is_dir() else None)
        audit.record(session, audit.Actor.cli(), "export", "contact", args.id,
                     details={"files": len(archive.files), "bytes": archive.size})
        await session.commit()
    size = archive.size
    shutil.move(archive.path, target)
    counts = ", ".join(f"{value} {name}" for name, value in archive.counts.items())
    print(f"exported contact {args.id} to {target} ({size} bytes: {counts})")
    return 0


async def gdpr_erase(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db:
        if not args.yes:
            async with db.sessions() as session:
                contact = await files.get_contact(session, args.id)  # NotFound before any question
                print(f"erase contact {contact.id} for good: the file, what concerns only them, and their "
                      "traces in shared entries. This cannot be undone.")
            if not sys.stdin.isatty():
                err("refusing without --yes (no terminal to confirm on)")
                return 1
            if input(f"type the contact id ({args.id}) to confirm: ").strip() != str(args.id):
                err("not confirmed; nothing erased")
                return 1
        async with db.sessions() as session, session.begin():
            counts = await erase_contact(session, args.id)
            audit.record(session, audit.Actor.cli(), "erase", "contact", args.id, details=counts)
    summary = ", ".join(f"{name.replace('_', ' ')}: {value}" for name, value in counts.items()) or "nothing else"
    print(f"erased contact {args.id} ({summary})")
    return 0


async def gdpr_retention(settings: Settings, _args: argparse.Namespace) -> int:
    if not settings.retention.enabled:
        print("no [retention] is configured: nothing is deleted for age")
        return 0
    async with open_database(settings) as db, db.sessions() as session, session.begin():
        counts = await run_retention(session, settings.retention, utcnow(), audit.Actor.cli())
    print("retention applied: " + (", ".join(f"{value} {kind}" for kind, value in counts.items()) or "nothing to do"))
    return 0
