"""`commhub mail test|sync|send|unassigned|warnings`."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from commhub.commands.common import err, open_database
from commhub.errors import ConfigError
from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import own_addresses
from commhub.mail.imap import ImapError, ImapSession
from commhub.mail.outbox import Outbox
from commhub.mail.sending import ComposeError, Draft
from commhub.settings import MailboxSettings, Settings
from commhub.store.mail_db import MailDatabase
from commhub.store.models import Email, MailWarning

# Capabilities commhub uses when the server has them, and what it does without.
CAPABILITIES = (
    ("IDLE", "new mail arrives within seconds", "polled every poll_seconds instead"),
    ("UIDPLUS", "after_archive = delete expunges only archived messages", "EXPUNGE removes every \\Deleted message"),
    ("MOVE", "after_archive = move:… moves atomically", "moved by COPY + delete"),
)


def _mailbox(settings: Settings, name: str) -> MailboxSettings:
    for mailbox in settings.mailboxes:
        if mailbox.name == name:
            return mailbox
    known = ", ".join(m.name for m in settings.mailboxes) or "none configured"
    raise ConfigError(f"no mailbox named {name!r} in [[mailboxes]] (known: {known})")


async def mail_test(settings: Settings, args: argparse.Namespace) -> int:
    """Connect, log in, list folders and capabilities; say exactly what is wrong."""
    mailbox = _mailbox(settings, args.mailbox)
    print(f"{mailbox.name}: {mailbox.host}:{mailbox.imap_port}, tls {mailbox.tls}, {mailbox.auth} as {mailbox.username}")
    imap = ImapSession(mailbox)
    try:
        await imap.open()
        print("  login: ok")
        capabilities = imap.capabilities
        for name, with_it, without in CAPABILITIES:
            print(f"  {name}: {'yes - ' + with_it if name in capabilities else 'no - ' + without}")
        if mailbox.mode == "idle" and "IDLE" not in capabilities:
            print(f"  note: mode = \"idle\" but the server has no IDLE: polling every {mailbox.poll_seconds} s")
        existing = await imap.folders()
        problems = 0
        for folder in mailbox.folders:
            if folder not in existing:
                problems += 1
                print(f"  folder {folder!r}: MISSING (the server has: {', '.join(existing)})")
                continue
            state = await imap.open_folder(folder, readonly=True)
            print(f"  folder {folder!r}: {state.exists} messages, UIDVALIDITY {state.uidvalidity}")
        target = mailbox.move_target
        if target is not None and target not in existing:
            problems += 1
            print(f"  after_archive folder {target!r}: MISSING")
    except ImapError as exc:
        print(f"  FAILED: {exc}")
        return 1
    finally:
        await imap.close()
    print("  ok" if not problems else f"  {problems} problem(s)")
    return 0 if not problems else 1


async def mail_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Archive what is new in the configured folders once, then exit (a cron job, a first import)."""
    mailboxes = [_mailbox(settings, args.mailbox)] if args.mailbox else list(settings.mailboxes)
    if not mailboxes:
        raise ConfigError("no [[mailboxes]] configured")
    failed = 0
    async with open_database(settings) as db:
        database = MailDatabase(settings.database.url, db.sessions)
        own = own_addresses(settings)
        try:
            for mailbox in mailboxes:
                imap = ImapSession(mailbox)
                try:
                    await imap.open()
                    for folder in mailbox.folders:
                        report = await FolderArchiver(mailbox, folder, database, own).sync(imap)
                        print(f"{mailbox.name}/{folder}: {report.fetched} fetched, {report.filed} filed, "
                              f"{report.known} already known, {report.erased} erased before, "
                              f"{report.warnings} warnings ({report.seconds:.1f} s)"
                              + (" - UIDVALIDITY changed, folder read again" if report.rescanned else ""))
                        sys.stdout.flush()
                except ImapError as exc:
                    failed += 1
                    err(f"{mailbox.name}: {exc}")
                finally:
                    await imap.close()
        finally:
            database.close()
    return 1 if failed else 0


async def mail_send(settings: Settings, args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else sys.stdin.read()
    draft = Draft(to=args.to or [], cc=args.cc or [], bcc=args.bcc or [], subject=args.subject, text=text)
    async with open_database(settings) as db:
        database = MailDatabase(settings.database.url, db.sessions)
        try:
            sent = await Outbox(settings, database).submit(draft, contact_ids=[args.contact] if args.contact else [])
        except ComposeError as exc:
            err(f"commhub: {exc}")
            return 2
        finally:
            database.close()
    if sent.status == "sent":
        print(f"sent: email {sent.email_id}, {sent.message_id}")
        return 0
    # Not an error: the message is kept and the running server's outbox retries it.
    print(f"queued: email {sent.email_id} ({sent.error}); commhub serve retries it")
    return 0


async def mail_unassigned(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session:
        found = list(await session.scalars(
            select(Email).where(Email.assigned.is_(False)).order_by(Email.id.desc()).limit(args.limit)))
    for email in found:
        when = email.sent_at.strftime("%Y-%m-%d %H:%M") if email.sent_at else "-"
        print(f"{email.id:>8}  {when}  {email.from_address or '-':40}  {email.subject}")
    if not found:
        print("no unassigned mail")
    return 0


async def mail_warnings(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db, db.sessions() as session:
        found = list(await session.scalars(select(MailWarning).order_by(MailWarning.id.desc()).limit(args.limit)))
    for warning in found:
        where = "/".join(str(p) for p in (warning.mailbox, warning.folder, warning.uid) if p is not None)
        print(f"{warning.created_at:%Y-%m-%d %H:%M}  {warning.kind:12} {where}: {warning.detail}"
              + (f" (email {warning.email_id})" if warning.email_id else ""))
    if not found:
        print("no warnings")
    return 0
