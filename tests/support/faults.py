"""Faults for the reliability tests: a real `commhub serve` whose disk writes can be refused, a private
PostgreSQL that can be frozen, stopped, and started again on the same port with the same data, and
the server's log read as it is written.

`FaultyCommhub` is `CommhubProcess` (its config, CLI and HTTP helpers) with two differences:
- its log goes through a pipe, not into a file: a pipe is no regular file, so refusing the
  process's file writes (below) does not also silence (or break) its logging, as a full data
  disk leaves journald's pipe working;
- `refuse_writes()` / `allow_writes()` set the running process's RLIMIT_FSIZE soft limit to 0 and
  back (prlimit(2) on its pid). With a limit of 0 the kernel refuses every write(2) to a regular
  file, at any offset, with EFBIG, for every thread of the process, on file descriptors it already
  has open: the same as a disk that fails writes. Reads still work. Python ignores SIGXFSZ, which
  the kernel sends along, so the process lives on.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from support.commhub_process import CommhubProcess, clean_env, wait_until_healthy
from support.pgcluster import START_TIMEOUT, PostgresCluster


class FaultyCommhub(CommhubProcess):
    """`commhub serve` in a subprocess (SQLite file in `workdir`, or `database_url`), its log in `lines`."""

    def __init__(self, workdir: Path, *, database_url: str | None = None, extra_config: str = "",
                 log_level: str = "info") -> None:
        super().__init__(workdir, extra_config=extra_config)
        config = self.config.read_text(encoding="utf-8").replace('level = "warning"', f'level = "{log_level}"')
        if database_url is not None:
            sqlite_url = f'url = "sqlite+aiosqlite:///{workdir / "commhub.db"}"'
            assert sqlite_url in config
            config = config.replace(sqlite_url, f'url = "{database_url}"')
        self.config.write_text(config, encoding="utf-8")
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not running"
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "commhub", "serve", "--config", str(self.config)], cwd=self.workdir,
            env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace")
        self._reader = threading.Thread(target=self._read_log, args=(self.process,), daemon=True,
                                        name="commhub-serve-log")
        self._reader.start()
        try:
            wait_until_healthy(self.process, self.base, lambda: "".join(self.lines))
        except BaseException:
            self.stop()
            raise

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with self.log.open("a", encoding="utf-8") as copy:  # the test process's own writes: not limited
            for line in process.stdout:
                self.lines.append(line)
                copy.write(line)
                copy.flush()

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            self.allow_writes()  # a clean shutdown checkpoints the WAL
        super().stop()
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None
        if process is not None and process.stdout is not None:
            process.stdout.close()

    # -- the disk ------------------------------------------------------------

    def refuse_writes(self) -> None:
        """From now on every write of the server process to a regular file fails (EFBIG)."""
        _soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (0, hard))

    def allow_writes(self) -> None:
        _soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (hard, hard))

    # -- the log -------------------------------------------------------------

    def events(self, name: str) -> list[dict[str, Any]]:
        """The server's JSON log entries whose event is `name`, in order."""
        found = []
        for line in list(self.lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
        return found


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def log_time(entry: dict[str, Any]) -> float:
    """A log entry's timestamp as Unix seconds."""
    return datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp()


class RestartableCluster(PostgresCluster):
    """A private PostgreSQL that can be shut down and started again: same port, same data directory.

    Its own cluster, not the session's `pg_cluster`: the other tests of the run keep theirs while
    this one is down.
    """

    def __init__(self, base_dir: Path) -> None:
        super().__init__(base_dir)
        self._frozen: list[int] = []

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every process it started: connections stay open, the port
        still accepts (the kernel does that), and nothing answers, as from a server whose host
        stalls or has dropped off the network."""
        assert self._dir is not None
        postmaster = int((self._dir / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)  # first: a stopped postmaster starts no more backends
        self._frozen = [postmaster, *_children(postmaster)]
        for pid in self._frozen[1:]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._frozen):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def stop(self) -> None:
        self.thaw()
        super().stop()

    def halt(self, mode: str = "fast") -> None:
        """Stop the server (fast: disconnect every client, as an admin's `systemctl stop` does)."""
        self._pg_ctl_stop(mode, check=True)

    def resume(self) -> float:
        """Start the stopped server again on its port; returns the seconds pg_ctl took."""
        assert self._bindir is not None and self._dir is not None
        options = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                   "-c", f"unix_socket_directories={self._dir / 'sock'}", "-c", "max_connections=200",
                   "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        argv = [str(self._bindir / "pg_ctl"), "-D", str(self._dir / "data"), "-l", str(self._dir / "server.log"),
                "-w", "-t", str(START_TIMEOUT), "-o", shlex.join(options), "start"]
        started = time.monotonic()
        result = self._run(argv, timeout=START_TIMEOUT + 15, as_owner=True)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
        return time.monotonic() - started


# Jürgen Müller's direct line: the caller of the call tests, whose file the pops and history show.
CALLER = "+49 30 1234567-10"


def contact_file() -> dict[str, Any]:
    """The customer file the call tests create through the REST API (POST /api/contacts)."""
    return {"first_name": "Jürgen", "last_name": "Müller", "customer_class": "A",
            "phones": [{"number": "030 1234567-10", "kind": "work"}]}


def call_event(kind: str, call_id: str, at: str, **fields: Any) -> dict[str, Any]:
    """One event of commhub's generic format (`?token=` source), with the vendor's event id and time as
    a PBX sends them: a retry is the same body."""
    return {"event": kind, "call_id": call_id, "event_id": f"{call_id}-{kind}", "timestamp": at,
            "direction": "in", "from": CALLER, "to": "+4930555000", "targets": ["10"], **fields}
