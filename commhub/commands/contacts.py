"""`commhub contacts import|find|duplicates`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from commhub.app import caller_index
from commhub.commands.common import err, open_database
from commhub.contacts.caller_id import CallerId
from commhub.contacts.duplicates import find_duplicates
from commhub.contacts.importer import Importer, ImportReport
from commhub.contacts.matching import CallerMatch
from commhub.mail.filing import own_addresses
from commhub.settings import Settings

PROGRESS_EVERY_S = 1.0


async def contacts_import(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        err(f"{path}: cannot read: {exc.strerror}")
        return 1
    async with open_database(settings) as db:
        importer = Importer(db.sessions, region=settings.phone.default_region, progress=_progress_printer(),
                            own=own_addresses(settings))
        report = await importer.run_file(path.name, data)
    _print_report(path, report, show_warnings=not args.quiet)
    return 1 if report.rows and len(report.rejected) == report.rows else 0


def _progress_printer() -> Callable[[ImportReport], None]:
    last = time.monotonic()

    def show(report: ImportReport) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            print(f"… {report.rows:,} rows read, {report.created:,} created, {report.updated:,} updated",
                  file=sys.stderr, flush=True)
    return show


def _print_report(path: Path, report: ImportReport, *, show_warnings: bool) -> None:
    print(f"{path.name}: {report.summary()}")
    for line, reason in report.rejected:
        print(f"  rejected line {line}: {reason}")
    if show_warnings:
        for line, message in report.warnings:
            print(f"  warning line {line}: {message}")


async def contacts_find(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db:
        index = caller_index(settings.database.url, db.engine)
        try:
            match = await CallerId(index, region=settings.phone.default_region, language=args.language,
                                   locate=True).match(args.number)
        finally:
            index.close()
    print(json.dumps(match.to_json(), ensure_ascii=False, indent=2) if args.json else describe_match(match))
    return 0 if match.candidates else 3


def describe_match(match: CallerMatch) -> str:
    lines = [match.explain()]
    facts = match.facts
    if facts.get("e164"):
        where = ", ".join(str(facts[k]) for k in ("location", "region") if facts.get(k))
        carrier = f", carrier {facts['carrier']}" if facts.get("carrier") else ""
        valid = "" if facts.get("valid") else ", NOT a valid number for its region"
        lines.append(f"  number: {facts['international']} ({where}; {facts['line_type']}{carrier}{valid})")
    for rank, candidate in enumerate(match.candidates, 1):
        company = f" — {candidate.company}" if candidate.company and candidate.kind == "contact" else ""
        klass = f" — class {candidate.customer_class}" if candidate.customer_class else ""
        lines.append(f"  {rank}. {candidate.name}{company}{klass} [{candidate.kind} #{candidate.id}]: "
                     f"{candidate.reason()}")
    return "\n".join(lines)


async def contacts_duplicates(settings: Settings, _args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session:
        pairs = await find_duplicates(session)
    if not pairs:
        print("no likely duplicates")
    for pair in pairs:
        print(f"#{pair.first.id} {pair.first.name} ⟷ #{pair.second.id} {pair.second.name}: "
              f"{'; '.join(pair.reasons)}")
    return 0
