"""Email archiving: commhub's first import of an IMAP folder against mbsync and against its client library.

    .venv/bin/python bench/mail.py [--messages 10000] [--quick] [--rounds 3] [--batch-size N] [--connections N]
                                   [--profile] [--json FILE] [--docs] [--out bench/out]

One run, one private Dovecot (tests/support/dovecot.py, never the machine's) on loopback, one folder of
N messages built by bench/mailcorpus.py (German/English business mail, attachments, the stdlib's email
test corpus; loaded with MULTIAPPEND, not measured). Then, in rounds that rotate who goes first, each
reader copies the whole folder onto a fresh target:
  (a) commhub: `FolderArchiver.sync` in this process into a fresh SQLite file (migrated, with a few
      hundred contacts whose addresses and domains occur in the mail): parse, match, store, commit;
  (b) mbsync (isync), the fast reference of IMAP-NOTES, copying the folder to a fresh Maildir, once with
      its default `FSync yes` (a flush per message) and once with `FSync no`, because on a shared disk the
      flushes, not the copying, set its pace (measured: 6.5-28 s for the same 10,000 messages, 3-5 s of CPU);
  (c) the floor: stock aioimaplib, `UID FETCH a:b (UID BODY.PEEK[])` in batches of 50, no parsing.
After each commhub import, on the same session, `sync` runs 20 more times and finds nothing new
(target: under 50 ms per folder). With --profile, one more commhub import runs under cProfile, on the
event loop and on the mail thread that parses and writes, and the report says where its time goes.
Figures are medians over the rounds; the machine is shared, so compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import imaplib
import io
import json
import os
import pstats
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aioimaplib
import psutil
from aioimaplib import aioimaplib as imap_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lookup import REPO, CodeState, cpu_counters, cpu_window, machine_lines, progress  # noqa: E402
from mailcorpus import Corpus, Person, build_corpus  # noqa: E402

sys.path.append(str(REPO / "tests"))
from support.dovecot import Dovecot  # noqa: E402

from commhub.commands.common import open_database  # noqa: E402
from commhub.contacts.records import ContactRecord  # noqa: E402
from commhub.log import configure_logging  # noqa: E402
from commhub.mail.archiver import FolderArchiver, FolderReport  # noqa: E402
from commhub.mail.filing import OwnAddresses  # noqa: E402
from commhub.mail.imap import ImapSession, imap_session  # noqa: E402
from commhub.settings import DatabaseSettings, MailboxSettings, Settings  # noqa: E402
from commhub.store.files import create_file  # noqa: E402
from commhub.store.mail_db import MailDatabase  # noqa: E402

SEED = 20261126
FOLDER = "INBOX"
TOOLS = ("commhub", "mbsync", "mbsync-nofsync", "floor")
FLOOR_BATCH = 50  # IMAP-NOTES: stock aioimaplib is fastest at 50-200 messages per FETCH
IDLE_SYNCS = 20
TARGET_RATIO = 1.0  # commhub must file at least as fast as mbsync merely copies
TARGET_IDLE_MS = 50.0
APPEND_MESSAGES = 500  # per MULTIAPPEND command while loading
APPEND_BYTES = 16 << 20
TOP_FUNCTIONS = 25
MBSYNC_TIMEOUT_S = 1800.0


class BenchmarkError(Exception):
    """The benchmark measured something other than what it claims (a reader copied or filed too little)."""


# === the mailbox ==============================================================================================

def append_all(dovecot: Dovecot, messages: list[bytes]) -> float:
    """Load the folder over one stdlib imaplib connection; seconds taken.

    One APPEND per message waits a round trip for each `+` continuation; MULTIAPPEND (RFC 3502) with
    non-synchronizing literals (LITERAL+, RFC 7888) sends hundreds per command without waiting. Dovecot
    has both. imaplib has no command for it, so we write it with imaplib's `send` and `readline`.
    """
    started = time.perf_counter()
    with imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=120) as imap:
        imap.login(dovecot.user, dovecot.password)
        _, data = imap.capability()  # Dovecot names MULTIAPPEND only after LOGIN; imaplib keeps the first list
        missing = {"MULTIAPPEND", "LITERAL+"} - set((data[0] or b"").decode().split())
        if missing:
            raise BenchmarkError(f"Dovecot lacks {', '.join(sorted(missing))}")
        for number, chunk in enumerate(chunks(messages), 1):
            multiappend(imap, f"L{number:05d}", chunk)
        _, data = imap.select(FOLDER, readonly=True)
        stored = int(data[0] or 0)
    if stored != len(messages):
        raise BenchmarkError(f"{FOLDER} holds {stored:,} messages after loading {len(messages):,}")
    return time.perf_counter() - started


def chunks(messages: list[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for message in messages:
        if chunk and (len(chunk) >= APPEND_MESSAGES or size + len(message) > APPEND_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += len(message)
    if chunk:
        yield chunk


def multiappend(imap: imaplib.IMAP4, tag: str, messages: list[bytes]) -> None:
    parts = [f"{tag} APPEND {FOLDER}".encode()]
    for message in messages:
        parts += [f" {{{len(message)}+}}\r\n".encode(), message]
    imap.send(b"".join(parts) + b"\r\n")
    while not (line := imap.readline()).startswith(tag.encode()):
        if not line:
            raise BenchmarkError("Dovecot closed the connection during APPEND")
    if not line.startswith(f"{tag} OK".encode()):
        raise BenchmarkError(f"APPEND refused: {line.decode(errors='replace').strip()}")


# === commhub's database =======================================================================================

def sqlite_settings(path: Path) -> Settings:
    return Settings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))


def contact_record(person: Person) -> ContactRecord:
    company = person.company
    return ContactRecord(salutation=person.salutation, first_name=person.first, last_name=person.last,
                         company=company.name if company else "", company_domain=company.domain if company else "",
                         position=person.position, emails=[person.address])


async def seed_template(path: Path, contacts: list[Person]) -> int:
    """A migrated database with the CRM's contacts (and their companies, with domains); organizations made."""
    async with open_database(sqlite_settings(path)) as db, db.sessions() as session, session.begin():
        for person in contacts:
            await create_file(session, contact_record(person), "DE")
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM organizations").fetchone()[0])


def copy_database(template: Path, target: Path) -> None:
    """A fresh file with the template's content (the backup API also copies what is still in the WAL)."""
    source, copy = sqlite3.connect(template), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def mailbox_settings(dovecot: Dovecot, args: argparse.Namespace) -> MailboxSettings:
    values: dict[str, Any] = {"name": "bench", "host": "127.0.0.1", "port": dovecot.port, "tls": "none",
                              "username": dovecot.user, "password": dovecot.password, "folders": [FOLDER]}
    if args.batch_size:
        values["batch_size"] = args.batch_size
    if args.connections:
        values["connections"] = args.connections
    return MailboxSettings.model_validate(values)


# === measuring ================================================================================================

@dataclass(slots=True)
class Measurement:
    """One reader copying the whole folder once."""

    tool: str
    round: int
    seconds: float
    messages: int
    bytes: int
    cpu_seconds: float  # the reader's own CPU: this process (commhub, floor) or the mbsync process
    dovecot_cpu_seconds: float
    machine_busy: float  # share of all cores busy, any process
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds


def dovecot_cpu() -> float:
    """CPU seconds of our Dovecot: its master (our child), the services alive now and those it reaped."""
    total = 0.0
    for master in psutil.Process().children():
        with suppress(psutil.NoSuchProcess):
            if master.name() != "dovecot":
                continue
            times = master.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in master.children(recursive=True):
                with suppress(psutil.NoSuchProcess):
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
    return total


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Wall time and CPU (the reader's, Dovecot's, the machine's) of one run."""

    def __init__(self, own_process: bool) -> None:
        """own_process: the reader runs in this process (commhub, the floor), else it is a child (mbsync)."""
        gc.collect()
        self.who = resource.RUSAGE_SELF if own_process else resource.RUSAGE_CHILDREN
        self.counters = cpu_counters()
        self.dovecot = dovecot_cpu()
        self.cpu = cpu_seconds(self.who)
        self.started = time.perf_counter()

    def stop(self, tool: str, round_: int, messages: int, size: int) -> Measurement:
        seconds = time.perf_counter() - self.started
        cpu = cpu_seconds(self.who) - self.cpu
        return Measurement(tool, round_, seconds, messages, size, cpu, dovecot_cpu() - self.dovecot,
                           cpu_window(self.counters).machine_busy)


# --- (a) commhub ------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class CommhubRun:
    measurement: Measurement
    idle_ms: list[float]


def thread_cpu(name_prefix: str) -> float:
    """CPU seconds of this process's threads whose name starts with `name_prefix` (the mail thread)."""
    ids = {thread.native_id for thread in threading.enumerate() if thread.name.startswith(name_prefix)}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


async def commhub_import(template: Path, work: Path, box: MailboxSettings, corpus: Corpus,
                         round_: int) -> CommhubRun:
    """Archive the folder into a fresh copy of the template database, then sync again with nothing new."""
    path = work / f"commhub-{round_}.db"
    copy_database(template, path)
    try:
        settings = sqlite_settings(path)
        async with open_database(settings) as db:
            database = MailDatabase(settings.database.url, db.sessions)
            try:
                run = await archive(FolderArchiver(box, FOLDER, database, OwnAddresses.of([])), corpus, round_)
            finally:
                database.close()
        run.measurement.detail |= stored_counts(path)
        return run
    finally:
        remove_database(path)


async def archive(archiver: FolderArchiver, corpus: Corpus, round_: int) -> CommhubRun:
    meter, loop_cpu = Meter(own_process=True), time.thread_time()
    async with imap_session(archiver.settings) as imap:
        report = await archiver.sync(imap)
        measurement = meter.stop("commhub", round_, report.filed, corpus.total_bytes)
        # Read before the mail thread ends with database.close().
        measurement.detail = {"loop_thread_cpu_s": time.thread_time() - loop_cpu,
                              "mail_thread_cpu_s": thread_cpu("commhub-mail"), "report": asdict(report)}
        check_filed(report, len(corpus.messages))
        return CommhubRun(measurement, await idle_syncs(archiver, imap))


async def idle_syncs(archiver: FolderArchiver, imap: ImapSession) -> list[float]:
    """`sync` on the open session when nothing arrived: what every IDLE wake-up or poll costs a folder."""
    timings = []
    for _ in range(IDLE_SYNCS):
        started = time.perf_counter()
        report = await archiver.sync(imap)
        timings.append((time.perf_counter() - started) * 1000)
        if report.fetched:
            raise BenchmarkError(f"a sync without new mail fetched {report.fetched} messages")
    return timings


def check_filed(report: FolderReport, expected: int) -> None:
    if report.filed != expected or report.fetched != expected:
        raise BenchmarkError(f"commhub fetched {report.fetched:,} and filed {report.filed:,} of {expected:,} "
                             f"messages (known {report.known}, erased {report.erased}): the figures would be wrong")


def stored_counts(path: Path) -> dict[str, int]:
    queries = {
        "emails": "SELECT count(*) FROM emails",
        "emails_assigned": "SELECT count(*) FROM emails WHERE assigned",
        "emails_unparsable": "SELECT count(*) FROM emails WHERE unparsable",
        "history_links_contacts": "SELECT count(*) FROM history_links WHERE contact_id IS NOT NULL",
        "history_links_organizations": "SELECT count(*) FROM history_links WHERE organization_id IS NOT NULL",
        "attachments": "SELECT count(*) FROM email_attachments",
        "blobs": "SELECT count(*) FROM blobs",
        "warnings": "SELECT count(*) FROM mail_warnings",
    }
    with sqlite3.connect(path) as connection:
        counts = {name: int(connection.execute(sql).fetchone()[0]) for name, sql in queries.items()}
    files = [Path(f"{path}{suffix}") for suffix in ("", "-wal")]
    counts["database_bytes"] = sum(file.stat().st_size for file in files if file.exists())
    return counts


# --- (b) mbsync -------------------------------------------------------------------------------------------------

def mbsync_config(directory: Path, dovecot: Dovecot, fsync: bool) -> Path:
    """isync 1.4 syntax (SSLType, Far/Near); the folder lands in Maildir/INBOX/{cur,new}."""
    maildir = directory / "Maildir"
    maildir.mkdir(parents=True)
    path = directory / "mbsyncrc"
    path.write_text(f"""FSync {'yes' if fsync else 'no'}

IMAPAccount bench
Host 127.0.0.1
Port {dovecot.port}
User {dovecot.user}
Pass {dovecot.password}
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel bench
Far :bench-far:
Near :bench-near:
Patterns {FOLDER}
Create Near
Sync Pull
SyncState *
""", encoding="utf-8")
    return path


def mbsync_copy(work: Path, dovecot: Dovecot, corpus: Corpus, round_: int, fsync: bool) -> Measurement:
    tool = "mbsync" if fsync else "mbsync-nofsync"
    directory = work / f"{tool}-{round_}"
    config = mbsync_config(directory, dovecot, fsync)
    try:
        meter = Meter(own_process=False)
        done = subprocess.run(["mbsync", "-q", "-c", str(config), "-a"], capture_output=True, text=True,
                              timeout=MBSYNC_TIMEOUT_S, check=False)
        measurement = meter.stop(tool, round_, 0, 0)
        if done.returncode != 0:
            raise BenchmarkError(f"mbsync exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
        files = [p for sub in ("cur", "new") for p in (directory / "Maildir" / FOLDER / sub).iterdir()]
        measurement.messages, measurement.bytes = len(files), sum(p.stat().st_size for p in files)
        # mbsync skips a message without an empty line after its header ("incomplete header; skipping").
        expected = len(corpus.messages) - corpus.without_body_separator
        if measurement.messages != expected:
            raise BenchmarkError(f"mbsync copied {measurement.messages:,} messages, not {expected:,}: "
                                 f"{done.stderr.strip()[-2000:]}")
        measurement.detail = {"skipped": len(corpus.messages) - measurement.messages,
                              "warnings": [line for line in done.stderr.splitlines() if "skipping" in line][:5]}
        return measurement
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- (c) the floor: stock aioimaplib -------------------------------------------------------------------------------

async def floor_fetch(dovecot: Dovecot, corpus: Corpus, round_: int) -> Measurement:
    meter = Meter(own_process=True)
    client = aioimaplib.IMAP4("127.0.0.1", dovecot.port, timeout=60)
    await client.wait_hello_from_server()
    await checked(client.login(dovecot.user, dovecot.password), "LOGIN")
    await checked(client.select(FOLDER), "SELECT")  # stock EXAMINE leaves the client unable to send UID commands
    search = await checked(client.uid_search("ALL", charset=None), "UID SEARCH")
    uids = [int(word) for line in search.lines[:-1] if isinstance(line, bytes)
            for word in line.removeprefix(b"SEARCH").split() if word.isdigit()]
    messages = size = 0
    for start in range(0, len(uids), FLOOR_BATCH):
        batch = uids[start:start + FLOOR_BATCH]
        response = await checked(client.uid("fetch", f"{batch[0]}:{batch[-1]}", "(UID BODY.PEEK[])"), "UID FETCH")
        literals = [line for line in response.lines if isinstance(line, bytearray)]
        messages, size = messages + len(literals), size + sum(map(len, literals))
    await client.logout()
    measurement = meter.stop("floor", round_, messages, size)
    if messages != len(corpus.messages) or size != corpus.total_bytes:
        raise BenchmarkError(f"the floor fetched {messages:,} messages, {size:,} bytes; the folder holds "
                             f"{len(corpus.messages):,}, {corpus.total_bytes:,} bytes")
    return measurement


async def checked(command: Awaitable[imap_lib.Response], what: str) -> imap_lib.Response:
    response = await command
    if response.result != "OK":
        raise BenchmarkError(f"{what}: {response.result} {response.lines[-1:]!r}")
    return response


# === the rounds ================================================================================================

@dataclass(slots=True)
class Rounds:
    measurements: list[Measurement] = field(default_factory=list)
    idle_ms: list[float] = field(default_factory=list)

    def of(self, tool: str) -> list[Measurement]:
        return [m for m in self.measurements if m.tool == tool]

    def median_seconds(self, tool: str) -> float:
        return statistics.median(m.seconds for m in self.of(tool))


def order_of(round_: int) -> list[str]:
    """TOOLS in order, rotated by one each round: every reader goes first in turn."""
    shift = (round_ - 1) % len(TOOLS)
    return list(TOOLS[shift:] + TOOLS[:shift])


def run_rounds(count: int, template: Path, work: Path, dovecot: Dovecot, box: MailboxSettings,
               corpus: Corpus) -> Rounds:
    rounds = Rounds()
    for round_ in range(1, count + 1):
        for tool in order_of(round_):
            progress(f"round {round_}/{count}: {tool}")
            if tool == "commhub":
                run = asyncio.run(commhub_import(template, work, box, corpus, round_))
                rounds.measurements.append(run.measurement)
                rounds.idle_ms += run.idle_ms
            elif tool.startswith("mbsync"):
                rounds.measurements.append(mbsync_copy(work, dovecot, corpus, round_, fsync=tool == "mbsync"))
            else:
                rounds.measurements.append(asyncio.run(floor_fetch(dovecot, corpus, round_)))
            last = rounds.measurements[-1]
            progress(f"  {last.seconds:.1f} s, {last.messages_per_s:,.0f} messages/s, {last.mb_per_s:.1f} MB/s")
            os.sync()  # the target is gone; what the kernel still has to write must not slow the next reader
    return rounds


# === the profile ================================================================================================

class ThreadProfiles:
    """A cProfile profiler in every thread started while installed (cProfile alone sees only its own thread).

    `threading.setprofile` hands each new thread a hook before its first Python call; the hook starts the
    thread's own profiler, which from then on replaces it.
    """

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._lock = threading.Lock()

    def _begin(self, _frame: Any, _event: str, _arg: Any) -> None:
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append((threading.current_thread().name, profile))
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._begin)
        return self

    def __exit__(self, *_exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]  # None removes the hook


@dataclass(slots=True)
class Profiled:
    seconds: float
    loop: cProfile.Profile  # the event loop's thread
    mail: list[cProfile.Profile]  # the mail thread's (one): parsing and SQL


def stats_of(*profiles: cProfile.Profile) -> pstats.Stats:
    return pstats.Stats(*profiles, stream=io.StringIO())


async def profiled_import(template: Path, work: Path, box: MailboxSettings, corpus: Corpus) -> Profiled:
    path = work / "commhub-profile.db"
    copy_database(template, path)
    settings = sqlite_settings(path)
    try:
        async with open_database(settings) as db:
            with ThreadProfiles() as threads:
                database = MailDatabase(settings.database.url, db.sessions)  # its thread starts profiled
                try:
                    seconds, loop = await profiled_sync(FolderArchiver(box, FOLDER, database, OwnAddresses.of([])),
                                                        len(corpus.messages))
                finally:
                    database.close()
    finally:
        remove_database(path)
    mail = [profile for name, profile in threads.profiles if name.startswith("commhub-mail")]
    if not mail:
        raise BenchmarkError("the mail thread was not profiled")
    return Profiled(seconds, loop, mail)


async def profiled_sync(archiver: FolderArchiver, expected: int) -> tuple[float, cProfile.Profile]:
    """(wall seconds, the event loop's profile) of one import."""
    loop = cProfile.Profile()
    started = time.perf_counter()
    loop.enable()
    async with imap_session(archiver.settings) as imap:
        report = await archiver.sync(imap)
    loop.disable()
    seconds = time.perf_counter() - started
    check_filed(report, expected)
    return seconds, loop


StatKey = tuple[str, int, str]


def cumulative(stats: pstats.Stats, file_suffix: str, *names: str) -> float:
    """Cumulative seconds of the named functions of one file (outermost calls: recursion is not counted twice)."""
    table: dict[StatKey, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    return sum(row[3] for (file, _, name), row in table.items() if file.endswith(file_suffix) and name in names)


def own_time(stats: pstats.Stats, match: Callable[[str, str], bool]) -> float:
    table: dict[StatKey, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    return sum(row[2] for (file, _, name), row in table.items() if match(file, name))


def is_sqlite_call(file: str, name: str) -> bool:
    return file == "~" and "sqlite3." in name


def is_epoll_wait(file: str, name: str) -> bool:
    return file == "~" and "select.epoll" in name


@dataclass(frozen=True, slots=True)
class Buckets:
    """Where a profiled import's wall time goes, along the store loop (which parses and writes in turn)."""

    wall: float
    parse: float  # commhub.mail.parse on the mail thread
    sql: float  # MailDatabase._sqlite: MailSql.file_batch and the commit
    sqlite_engine: float  # of sql: inside sqlite3's C calls
    mail_other: float  # the rest of the mail thread's work: hashing, Prepared
    imap_client: float  # event loop: aioimaplib reading the responses (data_received)
    epoll_wait: float  # event loop: idle, waiting for Dovecot or the mail thread
    loop_total: float

    @property
    def waiting_for_fetch(self) -> float:
        """The mail thread idle: the store loop waited for the next batch to arrive over IMAP."""
        return max(0.0, self.wall - self.parse - self.sql - self.mail_other)

    @staticmethod
    def of(profile: Profiled) -> Buckets:
        mail, loop = stats_of(*profile.mail), stats_of(profile.loop)
        parse = cumulative(mail, "commhub/mail/parse.py", "parse_message", "parse_headers", "message_key")
        prepared = cumulative(mail, "commhub/mail/archiver.py", "prepare")
        return Buckets(
            wall=profile.seconds, parse=parse, sql=cumulative(mail, "commhub/store/mail_db.py", "_sqlite"),
            sqlite_engine=own_time(mail, is_sqlite_call), mail_other=max(0.0, prepared - parse),
            imap_client=cumulative(loop, "aioimaplib/aioimaplib.py", "data_received"),
            epoll_wait=own_time(loop, is_epoll_wait), loop_total=loop.total_tt)  # type: ignore[attr-defined]


def top_functions(profile: Profiled, out: Path) -> str:
    """The top functions of both threads together, by cumulative and by own time; the raw profile to a file."""
    combined = stats_of(profile.loop, *profile.mail)
    combined.dump_stats(out)
    text = combined.stream  # type: ignore[attr-defined]
    for order in ("cumulative", "tottime"):
        text.write(f"\n--- top {TOP_FUNCTIONS} by {order} (event loop + mail thread) ---\n")
        combined.sort_stats(order).print_stats(TOP_FUNCTIONS)
    return re.sub(r"\n{3,}", "\n\n", text.getvalue())


# === the report ================================================================================================

@dataclass(frozen=True, slots=True)
class Context:
    """What a report says about the run it comes from."""

    command: str
    started: datetime
    code: CodeState  # when the run began; others may change commhub while it runs
    load_before: tuple[float, float, float]

    @staticmethod
    def now(argv: list[str] | None) -> Context:
        command = " ".join([".venv/bin/python", "bench/mail.py", *(argv if argv is not None else sys.argv[1:])])
        return Context(command, datetime.now(UTC), CodeState.now(), os.getloadavg())


@dataclass(slots=True)
class Report:
    context: Context
    corpus: Corpus
    organizations: int
    load_seconds: float
    build_seconds: float
    box: MailboxSettings
    rounds: Rounds
    versions: dict[str, str]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    buckets: Buckets | None = None
    profile_text: str = ""  # the top functions, when profiled

    @property
    def megabytes(self) -> float:
        return self.corpus.total_bytes / 1e6

    def rate(self, tool: str) -> float:
        return len(self.corpus.messages) / self.rounds.median_seconds(tool)

    def ratio(self, tool: str, other: str) -> float:
        return self.rate(tool) / self.rate(other)


def met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def versions() -> dict[str, str]:
    def first_line(*command: str) -> str:
        with suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip().split("\n")[0]
        return "unknown"
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    return {"mbsync": first_line("mbsync", "--version"), "dovecot": first_line(dovecot, "--version").split()[0],
            "aioimaplib": version("aioimaplib")}


def idle_figures(report: Report) -> tuple[float, float]:
    return statistics.median(report.rounds.idle_ms), max(report.rounds.idle_ms)


def targets_section(report: Report) -> list[str]:
    ratio = report.ratio("commhub", "mbsync")
    median_ms, max_ms = idle_figures(report)
    return ["### Targets", "", "| target | goal | measured | |", "| --- | --- | --- | --- |",
            f"| commhub's first import ÷ mbsync's copy (messages/s, medians; mbsync as installed, FSync yes) | "
            f"≥ {TARGET_RATIO:.1f} | {report.rate('commhub'):,.0f} ÷ {report.rate('mbsync'):,.0f} = "
            f"**{ratio:.2f}** | {met(ratio >= TARGET_RATIO)} |",
            f"| a sync that finds no new mail, per folder ({len(report.rounds.idle_ms)} runs) | "
            f"< {TARGET_IDLE_MS:.0f} ms | median {median_ms:.1f} ms, max {max_ms:.1f} ms | "
            f"{met(max_ms < TARGET_IDLE_MS)} |",
            *(f"| commhub ÷ {name} | for information | {report.rate('commhub'):,.0f} ÷ {report.rate(tool):,.0f} = "
              f"{report.ratio('commhub', tool):.2f} | |" for tool, name in (
                  ("mbsync-nofsync", "mbsync with FSync no"), ("floor", "the floor (stock aioimaplib, no parsing)"))),
            "", "The same ratios round by round (in each round the readers ran back to back): "
            + "; ".join(f"commhub ÷ {tool} {per_round(report, tool)}" for tool in TOOLS[1:]) + ".", ""]


def per_round(report: Report, other: str) -> str:
    pairs = zip(report.rounds.of("commhub"), report.rounds.of(other), strict=True)
    return ", ".join(f"{theirs.seconds / ours.seconds:.2f}" for ours, theirs in pairs)


def label(report: Report, tool: str) -> str:
    box = report.box
    return {"commhub": f"commhub: parse, match, store, commit (SQLite; {box.connections} connections, batches of "
                       f"{box.batch_size})",
            "mbsync": f"{report.versions['mbsync']}: copy to a Maildir (its default FSync yes)",
            "mbsync-nofsync": f"{report.versions['mbsync']}: the same with FSync no",
            "floor": f"floor: stock aioimaplib {report.versions['aioimaplib']}, 1 connection, batches of "
                     f"{FLOOR_BATCH}, no parsing"}[tool]


def import_section(report: Report) -> list[str]:
    rounds = report.rounds
    lines = [f"### First import of one folder: {len(report.corpus.messages):,} messages, {report.megabytes:.1f} MB "
             f"(median of {len(rounds.of('commhub'))} round(s))", "",
             "Wall time from connecting to the last message stored; each round copies onto a fresh target (a new "
             "SQLite file, a new Maildir). CPU: the reader's own (this process, or mbsync's), Dovecot's (all its "
             "processes) and the machine's share busy (2 cores, any process).", "",
             "| reader | median s | messages/s | MB/s | rounds (s) | reader CPU s (µs/message) | Dovecot CPU s "
             "| machine busy |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for tool in TOOLS:
        runs = rounds.of(tool)
        seconds, cpu = rounds.median_seconds(tool), statistics.median(m.cpu_seconds for m in runs)
        lines.append(f"| {label(report, tool)} | {seconds:.1f} | **{report.rate(tool):,.0f}** | "
                     f"{report.megabytes / seconds:.1f} | {', '.join(f'{m.seconds:.1f}' for m in runs)} | "
                     f"{cpu:.1f} ({cpu / len(report.corpus.messages) * 1e6:,.0f}) | "
                     f"{statistics.median(m.dovecot_cpu_seconds for m in runs):.2f} | "
                     f"{statistics.median(m.machine_busy for m in runs):.0%} |")
    skipped = max((m.detail.get("skipped", 0) for m in rounds.of("mbsync")), default=0)
    if skipped:
        lines += ["", f"mbsync skipped {skipped} message(s) in each round, warning \"incomplete header; skipping\": "
                  "the copies of the stdlib's `msg_35.txt`, whose header never ends in an empty line. commhub filed "
                  "them. Rates are for the whole folder."]
    return lines + [""]


def commhub_section(report: Report) -> list[str]:
    runs = report.rounds.of("commhub")
    d = runs[-1].detail
    n = d["emails"]
    loop_cpu = statistics.median(m.detail["loop_thread_cpu_s"] for m in runs)
    mail_cpu = statistics.median(m.detail["mail_thread_cpu_s"] for m in runs)
    return ["### What commhub stored (last round)", "",
            f"- {n:,} emails filed ({d['emails_unparsable']} kept raw as unparsable), {d['warnings']} warnings; "
            f"{d['emails_assigned']:,} ({d['emails_assigned'] / n:.0%}) assigned to a customer file: "
            f"{d['history_links_contacts']:,} links to contacts, {d['history_links_organizations']:,} to organizations",
            f"- {d['attachments']:,} attachments (inline logos included); {d['blobs']:,} blobs (raw messages and "
            f"attachments); database {d['database_bytes'] / 1e6:,.0f} MB",
            f"- CPU per import (medians): event loop (IMAP, archiver) {loop_cpu:.1f} s, mail thread (SQL; parsing "
            "runs in worker processes for an import this large) "
            f"{mail_cpu:.1f} s: {mail_cpu / len(report.corpus.messages) * 1e6:,.0f} µs per message on the thread "
            "that every batch waits for", ""]


def profile_section(report: Report) -> list[str]:
    b = report.buckets
    if b is None:
        return []
    rows = (("IMAP fetch / waiting: the mail thread idle until the next batch was downloaded", b.waiting_for_fetch),
            ("parsing (`commhub.mail.parse`, mail thread)", b.parse),
            (f"SQL (`MailSql.file_batch` and the commit, mail thread; {b.sqlite_engine:.1f} s of it inside sqlite3)",
             b.sql),
            ("other on the mail thread (hashing, `prepare`)", b.mail_other))
    lines = ["### Where commhub's import spends its time (one run under cProfile)", "",
             f"{len(report.corpus.messages):,} messages in {b.wall:.1f} s under the profiler (unprofiled median "
             f"{report.rounds.median_seconds('commhub'):.1f} s). Batches are stored strictly in turn on the mail "
             "thread, so its busy and idle times add up to the wall time. An import of 300 messages or more "
             "parses in worker processes (`commhub/mail/preparing.py`), while the mail thread writes the batch "
             "before: their parsing does not show here, only what waits for it. The profiler slows Python code "
             "more than C code, and the threads of this process share one GIL.", "",
             "| where | seconds | share of the wall time |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {seconds:.1f} | {seconds / b.wall:.0%} |" for name, seconds in rows]
    lines += ["", f"On the event loop, in the same run: {b.imap_client:.1f} s in aioimaplib reading responses "
              f"(`data_received`), {b.epoll_wait:.1f} s idle in epoll (waiting for Dovecot or the mail thread), "
              f"{max(0.0, b.loop_total - b.imap_client - b.epoll_wait):.1f} s else (asyncio, archiver).", ""]
    return lines


def setup_section(report: Report) -> list[str]:
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in report.corpus.kinds.most_common())
    return ["### How it was measured", "",
            f"- mailbox: `bench/mailcorpus.py` (seed {SEED}): {kinds}; {report.corpus.attachments:,} attachments of "
            "20–300 KB and a few of 1–2 MB; the stdlib's `test_email` messages with fresh Message-IDs. Loaded into "
            f"a private Dovecot {report.versions['dovecot']} (mail_fsync = never) over one connection with "
            f"MULTIAPPEND in {report.load_seconds:.1f} s (built in {report.build_seconds:.1f} s; neither is "
            "measured). Before the rounds, one untimed read of the whole folder warms Dovecot's index and the page "
            "cache for all; after each reader, its target is deleted and `sync` flushes what is left, untimed, so "
            "that no reader pays for the previous one's writes.",
            f"- commhub: `FolderArchiver(box, \"INBOX\", MailDatabase(…), OwnAddresses.of([])).sync(imap)` in this "
            f"process, logging at error level, into a copy of a migrated SQLite database holding "
            f"{len(report.corpus.contacts)} contacts at {report.organizations} organizations (with domains) who "
            f"write or are copied in the mail; then, on the same session, {IDLE_SYNCS} syncs that find nothing new. "
            "Its SQLite runs in WAL mode with synchronous=NORMAL: a commit is not flushed to disk (a checkpoint is), "
            "so it survives a crash of the process but not a power cut.",
            "- mbsync: `mbsync -q -c mbsyncrc -a`, one channel, `Sync Pull`, `Create Near`, into a new Maildir; "
            "its message files counted afterwards. With its default `FSync yes` it flushes every message file, "
            "which on a disk other work shares costs far more than the copying; hence the second run with "
            "`FSync no`, which is what commhub's durability compares with.",
            "- the floor: `aioimaplib.IMAP4`, LOGIN, SELECT, UID SEARCH ALL, then `UID FETCH a:b (UID BODY.PEEK[])` "
            f"per {FLOOR_BATCH} UIDs; messages and bytes counted against the corpus.",
            f"- each round runs the {len(TOOLS)} readers in turn, a different one first each round; load average "
            f"(1/5/15 min) {fmt_load(report.context.load_before)} at the start, {fmt_load(report.load_after)} at "
            "the end.",
            ""]


def fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def render(report: Report) -> str:
    context = report.context
    head = [f"Measured {context.started:%Y-%m-%d %H:%M} UTC with `{context.command}`.", "", *machine_lines(),
            f"- {context.code.describe()}", ""]
    changed = CodeState.now().changes_since(context.code)
    if changed is not None:
        head.insert(-1, f"- NOTE: commhub changed during this run; at its end: {changed}")
    body = (targets_section(report) + import_section(report) + commhub_section(report) + profile_section(report)
            + setup_section(report))
    return "\n".join(head + body)


def figures(report: Report) -> dict[str, Any]:
    median_ms, max_ms = idle_figures(report)
    return {
        "command": report.context.command, "started": report.context.started.isoformat(),
        "code": report.context.code.describe(),
        "messages": len(report.corpus.messages), "bytes": report.corpus.total_bytes,
        "kinds": dict(report.corpus.kinds), "load_seconds": report.load_seconds,
        "load_average": {"start": report.context.load_before, "end": report.load_after},
        "settings": {"batch_size": report.box.batch_size, "connections": report.box.connections,
                     "floor_batch": FLOOR_BATCH},
        "versions": report.versions,
        "median": {tool: {"seconds": report.rounds.median_seconds(tool), "messages_per_s": report.rate(tool),
                          "mb_per_s": report.megabytes / report.rounds.median_seconds(tool)} for tool in TOOLS},
        "ratios": {"commhub_to_mbsync": report.ratio("commhub", "mbsync"),
                   "commhub_to_mbsync_nofsync": report.ratio("commhub", "mbsync-nofsync"),
                   "commhub_to_floor": report.ratio("commhub", "floor")},
        "idle_sync_ms": {"median": median_ms, "max": max_ms, "all": report.rounds.idle_ms},
        "rounds": [asdict(m) for m in report.rounds.measurements],
        "profile": None if report.buckets is None else asdict(report.buckets) | {
            "waiting_for_fetch": report.buckets.waiting_for_fetch},
    }


DOCS_SECTION = "## Email archiving (bench/mail.py)"


# === main ======================================================================================================

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=None, help="messages in the folder (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 messages, 1 round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of all readers (default 3; quick: 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="commhub's messages per FETCH (its default)")
    parser.add_argument("--connections", type=int, default=None, help="commhub's connections (its default)")
    parser.add_argument("--profile", action="store_true", help="one more commhub import under cProfile")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--docs", action="store_true", help="also print the section for docs/benchmarks.md")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out",
                        help="where the report mail.md and the profile mail.prof go (default bench/out)")
    return parser.parse_args(argv)


def prepare_mailbox(dovecot: Dovecot, count: int) -> tuple[Corpus, float, float]:
    started = time.perf_counter()
    corpus = build_corpus(count, SEED)
    built = time.perf_counter() - started
    progress(f"built {count:,} messages, {corpus.total_bytes / 1e6:.1f} MB in {built:.1f} s; loading them")
    loaded = append_all(dovecot, corpus.messages)
    progress(f"loaded into Dovecot in {loaded:.1f} s ({count / loaded:,.0f} messages/s)")
    return corpus, built, loaded


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    count = args.messages or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    configure_logging("error")  # the archiver logs each folder at info; its counts come back in the report
    context = Context.now(argv)
    progress(f"load average at start: {fmt_load(context.load_before)}")
    with tempfile.TemporaryDirectory(prefix="commhub-bench-mail-") as temp:
        work = Path(temp)
        dovecot = Dovecot(work / "imap")
        dovecot.start()
        try:
            report = measure(context, args, count, rounds, work, dovecot, out)
        finally:
            dovecot.close()
    report.load_after = os.getloadavg()
    publish(report, args, out)
    return 0


def measure(context: Context, args: argparse.Namespace, count: int, rounds: int, work: Path, dovecot: Dovecot,
            out: Path) -> Report:
    corpus, built, loaded = prepare_mailbox(dovecot, count)
    template = work / "template.db"
    organizations = asyncio.run(seed_template(template, corpus.contacts))
    progress(f"CRM: {len(corpus.contacts)} contacts, {organizations} organizations; warming Dovecot up")
    asyncio.run(floor_fetch(dovecot, corpus, 0))
    box = mailbox_settings(dovecot, args)
    measured = run_rounds(rounds, template, work, dovecot, box, corpus)
    report = Report(context, corpus, organizations, loaded, built, box, measured, versions())
    if args.profile:
        progress("one more commhub import under cProfile")
        profile = asyncio.run(profiled_import(template, work, box, corpus))
        report.buckets = Buckets.of(profile)
        report.profile_text = top_functions(profile, out / "mail.prof")
    return report


def publish(report: Report, args: argparse.Namespace, out: Path) -> None:
    markdown = render(report)
    print(markdown)
    (out / "mail.md").write_text(markdown + "\n", encoding="utf-8")
    if report.profile_text:
        print(f"\n### cProfile: top {TOP_FUNCTIONS} functions (all of it in {out / 'mail.prof'})\n"
              f"```{report.profile_text}```")
    if args.json:
        args.json.write_text(json.dumps(figures(report), indent=2, default=str) + "\n", encoding="utf-8")
    if args.docs:
        print(f"\n\n{DOCS_SECTION}\n\n{markdown}")


if __name__ == "__main__":
    sys.exit(main())
