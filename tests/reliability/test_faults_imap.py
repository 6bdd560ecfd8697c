"""The IMAP server goes away while `commhub serve` archives a folder: the folder shows disconnected
with the error, commhub retries with growing pauses (not in a tight loop), and once the server is
back the same process files everything that arrived meanwhile, each message once, without a restart.

The IMAP server is a private Dovecot (support/dovecot.py) on loopback; stopped with SIGTERM as its
service is stopped, and started again on the same port with the same Maildirs. While it is down
the mail system still delivers: one message is put into the Maildir's `new/` as an MDA (Dovecot's
LDA, procmail) does, the others are appended over IMAP after the restart. Without Dovecot
installed the test skips, and fails under CI (`require_dovecot`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.dovecot import Dovecot
from support.faults import FaultyCommhub, log_time

TIMEOUT = aiohttp.ClientTimeout(total=30)
# Failures to observe while the server is down: the pauses between them must grow (1, 2, 4 s bounds).
FAILURES = 4
# The archiver's pause bound after FAILURES failures is 2**FAILURES s; catching up may take that long.
CATCH_UP_LIMIT_S = 2 ** FAILURES + 20
# Well below the mailbox's timeout_seconds (10): a closed connection needs no timeout to be noticed.
NOTICE_LIMIT_S = 3.0


def mail(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Erika Muster <erika.muster@muster-gmbh.de>"
    message["To"] = "Vertrieb <vertrieb@example.de>"
    message["Subject"] = f"Anfrage Nr. {number}"
    message["Date"] = format_datetime(datetime(2026, 11, 24, 9, tzinfo=UTC) + timedelta(minutes=number))
    message["Message-ID"] = f"<fault-{number}-{make_msgid().strip('<>')}>"
    message.set_content(f"Guten Tag,\n\nbitte senden Sie uns ein Angebot über {number} Stück.\n\nErika Muster\n")
    return message.as_bytes()


@pytest.fixture
def server(tmp_path: Path, dovecot: Dovecot) -> Iterator[FaultyCommhub]:
    mailbox = (f'[[mailboxes]]\nname = "vertrieb"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
               f'username = "{dovecot.user}"\npassword = "{dovecot.password}"\naddresses = ["vertrieb@example.de"]\n'
               f'timeout_seconds = 10\n')
    workdir = tmp_path / "commhub"
    workdir.mkdir()
    server = FaultyCommhub(workdir, extra_config=mailbox)
    server.cli("db", "upgrade")
    server.admin = server.add_agent("admin", "99", role="admin")  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def stored(server: FaultyCommhub, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{server.workdir / 'commhub.db'}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def email_count(server: FaultyCommhub) -> int:
    return int(stored(server, "SELECT count(*) FROM emails")[0][0])


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def deliver_to_maildir(dovecot: Dovecot, raw: bytes) -> None:
    """Deliver as an MDA does while the IMAP server is down: a file in the INBOX's Maildir/new."""
    maildir = dovecot.root / "mail" / dovecot.user / "Maildir"
    owner = maildir.stat()
    name = f"{time.time():.0f}.M{time.monotonic_ns()}P{os.getpid()}.{socket.gethostname()}"
    temporary = maildir / "tmp" / name
    temporary.write_bytes(raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
    os.chown(temporary, owner.st_uid, owner.st_gid)
    temporary.rename(maildir / "new" / name)


async def test_a_vanished_imap_server_is_retried_with_growing_pauses_and_caught_up_once(
        dovecot: Dovecot, server: FaultyCommhub) -> None:
    admin = {"Authorization": f"Bearer {server.admin}"}  # type: ignore[attr-defined]

    async def folder_status(http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(f"{server.base}/api/mail/status", headers=admin) as response:
            assert response.status == 200, await response.text()
            (folder,) = (await response.json())["folders"]
            return folder

    async def filed(count: int) -> bool:
        return email_count(server) == count

    pid = server.pid
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        for number in (1, 2):
            await asyncio.to_thread(dovecot.append, "INBOX", mail(number))
        await until(lambda: filed(2), 20, "the first two messages filed")
        assert (await folder_status(http))["connected"] is True

        stopped = time.time()
        await asyncio.to_thread(dovecot.stop)

        async def disconnected() -> bool:
            folder = await folder_status(http)
            return folder["connected"] is False and "cannot connect" in (folder["error"] or "")

        await until(disconnected, 15, "the folder shown disconnected, with the error")
        await asyncio.to_thread(deliver_to_maildir, dovecot, mail(3))

        async def failed_often_enough() -> bool:
            return len(server.events("mail.folder_failed")) >= FAILURES

        await until(failed_often_enough, 2 ** FAILURES + 10, f"{FAILURES} failed attempts")
        await asyncio.to_thread(dovecot.start)  # same port, same Maildirs
        restarted = time.time()
        failures = [entry for entry in server.events("mail.folder_failed") if log_time(entry) >= stopped]
        for number in (4, 5, 6):
            await asyncio.to_thread(dovecot.append, "INBOX", mail(number))
        appended = time.monotonic()
        await until(lambda: filed(6), CATCH_UP_LIMIT_S, "all six messages filed")
        caught_up_s = time.monotonic() - appended
        folder = await folder_status(http)
        assert folder["connected"] is True and folder["error"] is None
        await asyncio.sleep(1.0)  # anything filed twice would show by now
        assert email_count(server) == 6

    # Backoff: each failure names its pause; the pauses are drawn between half and all of a bound
    # that doubles (1, 2, 4 … s), and the next attempt came after that pause, not before.
    window_s = restarted - stopped
    times = [log_time(entry) for entry in failures]
    pauses = [float(entry["retry_seconds"]) for entry in failures]
    intervals = [later - earlier for earlier, later in zip(times, times[1:])]
    assert all("cannot connect" in entry["error"] for entry in failures[1:]), failures
    # The lost connection is noticed at once (Dovecot says BYE and closes), not after a command timeout.
    noticed_s = times[0] - stopped
    assert noticed_s < NOTICE_LIMIT_S, failures[0]
    for index, pause in enumerate(pauses[:FAILURES]):
        assert 2 ** index / 2 - 0.06 <= pause <= 2 ** index + 0.06, pauses
    for pause, interval in zip(pauses, intervals):
        assert pause - 0.05 <= interval <= pause + 2.0, (pauses, intervals)
    assert intervals[2] > intervals[0], intervals  # [2, 4] s against [0.5, 1] s
    # A tight loop would have made hundreds of attempts in this window; backoff makes about log2 of it.
    assert len(failures) <= FAILURES + 1, (len(failures), window_s)

    assert server.pid == pid and server.process is not None and server.process.poll() is None
    assert stored(server, "SELECT count(DISTINCT message_id), count(*) FROM emails") == [(6, 6)]
    assert stored(server, "SELECT subject FROM emails ORDER BY subject") == [
        (f"Anfrage Nr. {number}",) for number in range(1, 7)]
    assert stored(server, "SELECT count(*), count(DISTINCT uid), count(DISTINCT email_id) FROM email_locations") == [
        (6, 6, 6)]
    # One timeline entry per message (unassigned until a file has the sender's address).
    assert stored(server, "SELECT count(*), count(DISTINCT email_id) FROM history_entries WHERE kind = 'email'") == [
        (6, 6)]
    print(f"\nIMAP gone for {window_s:.1f} s: noticed after {noticed_s:.2f} s, {len(failures)} failed attempts, pauses "
          f"{', '.join(f'{p:.2f}' for p in pauses)} s (measured {', '.join(f'{i:.2f}' for i in intervals)} s); "
          f"6 of 6 messages filed once, the last {caught_up_s:.1f} s after it came back")
