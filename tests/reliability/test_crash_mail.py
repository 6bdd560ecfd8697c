"""Crash safety of the mail archive: `commhub serve` watches a private Dovecot mailbox holding 2,000
messages and is SIGKILLed at random moments of its first import, then started again, as a supervisor
does. When it has caught up, every message is filed exactly once (one email per Message-ID, or per
content for mail without one, one location per UID, one history entry each) and none is missing.

Kills are tied to the import's progress (the folder's checkpoint in the database), not to the clock,
so they land during the import however fast or loaded the machine is; each comes a random moment
after the checkpoint passed a random point, so it may hit a download, a parse or a commit.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import random
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from support.dovecot import Dovecot
from support.load import KillableCommhub, kill_during, report, sqlite_rows, wait_for

SEED = int(os.environ.get("COMMHUB_RELIABILITY_SEED", "20261102"))
MESSAGES = 2000
KILLS = 6
BATCH_SIZE = 10  # small batches: many commits, so a kill can fall between any two
MAILBOX = "vertrieb"
OWN = "vertrieb@example.de"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FREE_MAIL = ("gmail.com", "web.de", "gmx.de")  # never filed by domain: such senders stay unassigned


def customers(count: int = 40) -> tuple[str, list[str]]:
    """A customer list (Outlook CSV) and the addresses its people write from."""
    lines = ['"First Name","Last Name","Company","E-mail Address"']
    addresses = []
    for index in range(count):
        address = f"kontakt{index}@kunde{index}-gmbh.de"
        addresses.append(address)
        lines.append(f'"Kunde","Nummer {index}","Kunde {index} GmbH","{address}"')
    return "\n".join(lines) + "\n", addresses


def business_mail(number: int, rng: random.Random, known: list[str]) -> tuple[bytes, str | None, str, bool]:
    """One realistic message: (raw bytes, its Message-ID or None, its subject, whether it is from a customer).
    Plain and HTML, some with a PDF, some replies, a few without Message-ID (keyed by their content)."""
    message = EmailMessage()
    from_customer = rng.random() < 0.6
    sender = rng.choice(known) if from_customer else f"anfrage{number}@{rng.choice(FREE_MAIL)}"
    message["From"] = f"Kunde <{sender}>"
    message["To"] = f"Vertrieb <{OWN}>"
    subject = f"Anfrage Nr. {number}: Angebot über {rng.randrange(1, 500)} Stück"
    message["Subject"] = subject
    message["Date"] = format_datetime(START + timedelta(minutes=7 * number))
    message_id = None if rng.random() < 0.03 else f"<reliability-{SEED}-{number}@mail.kunde.example>"
    if message_id:
        message["Message-ID"] = message_id
    if number > 10 and rng.random() < 0.1:
        parent = f"<reliability-{SEED}-{rng.randrange(number)}@mail.kunde.example>"
        message["In-Reply-To"] = parent
        message["References"] = parent
    text = (f"Sehr geehrte Damen und Herren,\n\nbitte senden Sie uns ein Angebot (Anfrage {number}).\n\n"
            "Mit freundlichen Grüßen\nKunde GmbH · Hauptstraße 5 · 50667 Köln\n")
    message.set_content(text)
    if rng.random() < 0.2:
        message.add_alternative(f"<p>Sehr geehrte Damen und Herren,</p><p>Anfrage <b>{number}</b>.</p>",
                                subtype="html")
    if rng.random() < 0.05:
        message.add_attachment(b"%PDF-1.4\n" + rng.randbytes(2000), maintype="application", subtype="pdf",
                               filename=f"Anfrage {number}.pdf")
    return message.as_bytes(), message_id, subject, from_customer


def append_all(dovecot: Dovecot, messages: list[bytes]) -> None:
    """MULTIAPPEND (RFC 3502) with non-synchronizing literals (RFC 7888): hundreds per command."""
    with imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=60) as imap:
        imap.login(dovecot.user, dovecot.password)
        for start in range(0, len(messages), 200):
            tag = f"M{start}".encode()
            parts = [tag + b' APPEND "INBOX"']
            for raw in messages[start:start + 200]:
                raw = re.sub(rb"\r?\n", b"\r\n", raw)
                parts += [b" {%d+}\r\n" % len(raw), raw]
            imap.send(b"".join(parts) + b"\r\n")
            while not (line := imap.readline()).startswith(tag):
                assert line, "Dovecot closed the connection during APPEND"
            assert line.startswith(tag + b" OK"), line


def checkpoint(database: Path) -> int:
    rows = sqlite_rows(database, "SELECT last_uid FROM mail_checkpoints WHERE mailbox = ?", (MAILBOX,))
    return int(rows[0][0]) if rows else 0


async def test_first_import_killed_at_random_moments_files_every_message_exactly_once(
        dovecot: Dovecot, tmp_path: Path) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    csv, known = customers()
    built = [business_mail(number, rng, known) for number in range(MESSAGES)]
    append_all(dovecot, [raw for raw, _, _, _ in built])
    uids = dovecot.uids("INBOX")
    assert len(uids) == MESSAGES
    (tmp_path / "commhub").mkdir()
    server = KillableCommhub(tmp_path / "commhub", extra_config=(
        f'[[mailboxes]]\nname = "{MAILBOX}"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
        f'username = "{dovecot.user}"\npassword = "{dovecot.password}"\nfolders = ["INBOX"]\n'
        f'addresses = ["{OWN}"]\nbatch_size = {BATCH_SIZE}\ntimeout_seconds = 30\n'))
    (tmp_path / "kunden.csv").write_text(csv, encoding="utf-8")
    server.cli("contacts", "import", str(tmp_path / "kunden.csv"))  # also creates the database

    done = asyncio.Event()
    import_started = time.monotonic()
    server.start()
    try:
        # Each kill a random number of messages past the checkpoint the restarted server began from, plus
        # a random moment: it may hit a download, a parse or a commit.
        points = [rng.randrange(10, 250) for _ in range(KILLS)]
        killer = asyncio.create_task(kill_during(
            server, random.Random(SEED + 1), points=points, progress=lambda: checkpoint(server.database),
            done=done, delay=(0.0, 0.15), relative=True))
        try:
            await wait_for(lambda: checkpoint(server.database) >= max(uids) or killer.done(), 300,
                           "the import to reach the last UID", interval=0.05)
        finally:
            done.set()
            kills = await asyncio.wait_for(killer, timeout=120)  # the server is up again when it ends
        await wait_for(lambda: checkpoint(server.database) >= max(uids), 300, "the import to finish",
                       interval=0.05)
        import_seconds = time.monotonic() - import_started
    finally:
        done.set()
        server.stop()

    db = server.database
    stored = Counter(dict(sqlite_rows(db, "SELECT message_key, count(*) FROM emails GROUP BY message_key")))
    by_message_id = Counter(dict(sqlite_rows(
        db, "SELECT message_id, count(*) FROM emails WHERE message_id IS NOT NULL GROUP BY message_id")))
    by_subject = Counter(dict(sqlite_rows(db, "SELECT subject, count(*) FROM emails GROUP BY subject")))
    locations = sqlite_rows(db, "SELECT uid, count(*) FROM email_locations WHERE mailbox = ? GROUP BY uid",
                            (MAILBOX,))
    entries = dict(sqlite_rows(db, "SELECT e.id, count(h.id) FROM emails e LEFT JOIN history_entries h "
                                   "ON h.email_id = e.id AND h.kind = 'email' GROUP BY e.id"))
    assigned = dict(sqlite_rows(db, "SELECT message_id, assigned FROM emails WHERE message_id IS NOT NULL"))

    expected_ids = [message_id for _, message_id, _, _ in built if message_id]
    without_id = [subject for _, message_id, subject, _ in built if message_id is None]
    missing = [m for m in expected_ids if by_message_id.get(m, 0) == 0]
    missing += [s for s in without_id if by_subject.get(s, 0) == 0]
    doubled = [m for m in expected_ids if by_message_id.get(m, 0) > 1]
    doubled += [s for s in without_id if by_subject.get(s, 0) > 1]
    doubled_keys = [key for key, count in stored.items() if count > 1]
    location_uids = {uid: count for uid, count in locations}
    missing_locations = sorted(set(uids) - set(location_uids))
    doubled_locations = sorted(uid for uid, count in location_uids.items() if count > 1)
    entry_problems = [email_id for email_id, count in entries.items() if count != 1]
    misfiled = [message_id for _, message_id, _, customer in built
                if message_id and message_id in assigned and bool(assigned[message_id]) != customer]

    figures = {
        "seed": SEED, "messages": MESSAGES, "without_message_id": len(without_id), "batch_size": BATCH_SIZE,
        "emails_stored": sum(stored.values()), "kills": len(kills),
        "kills_at_s_checkpoint_uptime": [kill.brief() for kill in kills],
        "server_down_s": round(server.down_seconds, 1), "duplicates": len(doubled) + len(doubled_keys),
        "missing": len(missing), "locations": len(location_uids), "missing_locations": len(missing_locations),
        "doubled_locations": len(doubled_locations), "history_entry_problems": len(entry_problems),
        "misfiled": len(misfiled), "import_s": round(import_seconds, 1),
        "runtime_s": round(time.monotonic() - began, 1),
    }
    report("crash_mail", figures)

    assert len(kills) == KILLS, f"only {len(kills)} of {KILLS} kills landed during the import"
    assert all(kill.progress < max(uids) for kill in kills)
    assert missing == [], missing[:5]
    assert doubled == [] and doubled_keys == [], (doubled[:5], doubled_keys[:5])
    assert sum(stored.values()) == MESSAGES
    assert missing_locations == [] and doubled_locations == [], (missing_locations[:5], doubled_locations[:5])
    assert entry_problems == [], entry_problems[:5]
    assert misfiled == [], misfiled[:5]
