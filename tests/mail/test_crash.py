"""A `commhub mail sync` killed in the middle of a first import, then run again: every message once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mailbuild import append_many, config_file, mail
from support.dovecot import Dovecot

MESSAGES = 1200


def _checkpoint(database: Path) -> int:
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            row = connection.execute("SELECT last_uid FROM mail_checkpoints").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(row[0]) if row else 0


def _sync(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "commhub", "mail", "sync", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})


def test_killed_between_batches_and_restarted_every_message_is_filed_exactly_once(
        dovecot: Dovecot, tmp_path: Path) -> None:
    append_many(dovecot, "INBOX", [mail(number) for number in range(MESSAGES)])
    config, database = config_file(tmp_path, dovecot, batch_size=10), tmp_path / "c.db"

    process = _sync(config)
    deadline = time.monotonic() + 120
    while _checkpoint(database) < MESSAGES // 4:
        assert process.poll() is None, "the import ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    interrupted_at = _checkpoint(database)
    assert 0 < interrupted_at < MESSAGES

    finished = _sync(config)
    out, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, err.decode()

    with sqlite3.connect(database) as connection:
        emails, distinct, locations, entries = connection.execute(
            "SELECT (SELECT count(*) FROM emails), (SELECT count(DISTINCT message_key) FROM emails), "
            "(SELECT count(*) FROM email_locations), (SELECT count(*) FROM history_entries WHERE kind = 'email')"
        ).fetchone()
    assert (emails, distinct, locations, entries) == (MESSAGES, MESSAGES, MESSAGES, MESSAGES)
    # The second run started where the first one's last commit left off.
    assert f"{MESSAGES - interrupted_at} fetched, {MESSAGES - interrupted_at} filed" in out.decode()
