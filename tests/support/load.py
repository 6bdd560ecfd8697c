"""Load and crash tools for the reliability tests: a `commhub serve` that can be SIGKILLed and started
again, a phone system that signs and redelivers its events, agents that reconnect and resume, and the
figures a run reports.

Everything talks to a real server process over loopback, as a PBX and the agents' consoles do.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from adapters.placetel.verify import SIGNATURE_HEADER, sign
from support.commhub_process import CommhubProcess

# Where the figures of a run go (one JSON line per test, appended), so a document can be refreshed.
REPORT_ENV = "COMMHUB_RELIABILITY_REPORT"
# Messages that report a change take the agent's next seq; session replies (hello, resumed, pong) do not.
CHANGE_TYPES = ("call.", "task.", "history.")


class KillableCommhub(CommhubProcess):
    """`commhub serve` that can die as a process dies: SIGKILL, no shutdown, no cleanup; then start
    again on the same port, config and database."""

    def __init__(self, workdir: Path, *, extra_config: str = "") -> None:
        super().__init__(workdir, extra_config=extra_config)
        self.starts = 0
        self.started_at = 0.0  # monotonic time of the last start
        self.kills = 0
        self.down_seconds = 0.0
        self._killed_at: float | None = None

    @property
    def database(self) -> Path:
        return self.workdir / "commhub.db"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        super().start()
        self.starts += 1
        self.started_at = time.monotonic()
        if self._killed_at is not None:
            self.down_seconds += time.monotonic() - self._killed_at
            self._killed_at = None

    def kill(self) -> None:
        """SIGKILL the server (only the process we started, by its id) and reap it."""
        process = self.process
        assert process is not None, "not running"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self.process = None
        self.kills += 1
        self._killed_at = time.monotonic()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass(frozen=True)
class Kill:
    at_s: float  # since the killer started
    progress: int  # how far the work was, by the caller's measure
    uptime_s: float  # how long the server had been up

    def brief(self) -> list[float]:
        return [self.at_s, self.progress, self.uptime_s]


async def kill_during(server: KillableCommhub, rng: random.Random, *, points: Sequence[int],
                      progress: Callable[[], int], done: asyncio.Event, settled: Callable[[], bool] = lambda: True,
                      settle_timeout: float = 90.0, delay: tuple[float, float] = (0.0, 0.5),
                      downtime: tuple[float, float] = (0.0, 0.4), relative: bool = False) -> list[Kill]:
    """SIGKILL the server once the work's `progress()` passes each of `points` (plus a random delay),
    and start it again after a random pause (a supervisor's restart delay); stop when `done` is set.
    Kills are tied to progress, not to the clock, so they land during the work however fast or
    loaded the machine is. Before each kill the server must have `settled()` after its restart (e.g.
    its clients reconnected): a server killed before its clients can come back tests something else.
    With `relative`, each point counts from the progress made by the time the server is back and
    settled: every kill then gets some progress of its own, however much a burst of redeliveries
    after the restart did at once.
    """
    started = time.monotonic()
    kills: list[Kill] = []
    for point in (points if relative else sorted(points)):
        deadline = time.monotonic() + settle_timeout
        while not done.is_set() and not settled():
            if time.monotonic() > deadline:
                raise AssertionError(f"the server had not settled {settle_timeout} s after its restart")
            await asyncio.sleep(0.02)
        target = point + (progress() if relative else 0)
        while not done.is_set() and progress() < target:
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(done.wait(), rng.uniform(*delay))
        except TimeoutError:
            pass
        if done.is_set():
            break
        at = progress()
        server.kill()
        kills.append(Kill(round(time.monotonic() - started, 2), at,
                          round(time.monotonic() - server.started_at, 2)))
        await asyncio.sleep(rng.uniform(*downtime))
        await asyncio.to_thread(server.start)
    return kills


def sqlite_rows(database: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Read the server's SQLite file directly (read-only; WAL lets it run while the server writes)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


# --- the phone system --------------------------------------------------------------------------


def placetel_request(secret: str, fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A Placetel Notify API request: form-encoded, keys in alphabetical order as Placetel sends them,
    signed `X-PLACETEL-SIGNATURE` = hex(HMAC-SHA256(secret, body)) (adapters/placetel/verify.py)."""
    body = urllib.parse.urlencode(sorted(fields.items())).encode()
    return body, {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: sign(secret, body)}


@dataclass
class DeliveryStats:
    events: int = 0  # distinct events handed to deliver()
    attempts: int = 0  # POSTs sent
    accepted: int = 0  # events answered 2xx (each counted once)
    retries: int = 0  # POSTs sent again after a failed one
    retried_events: int = 0  # events that needed more than one POST
    failures: Counter[str] = field(default_factory=Counter)  # why an attempt failed
    refused: list[str] = field(default_factory=list)  # 4xx answers: never expected
    longest_seconds: float = 0.0  # the longest time from first POST to 2xx


class Redelivery:
    """Posts events the way a phone system does: each with a timeout, and again with growing pauses
    when the connection fails, times out or the server answers 5xx, until it gets a 2xx."""

    def __init__(self, http: aiohttp.ClientSession, url: str, *, timeout_s: float = 10.0,
                 give_up_after_s: float = 120.0, seed: int = 0) -> None:
        self.http = http
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.give_up_after_s = give_up_after_s
        self.stats = DeliveryStats()
        self._jitter = random.Random(seed)

    async def deliver(self, body: bytes, headers: dict[str, str]) -> bool:
        """True once the server answered 2xx; False when it refused the event (4xx) or never answered."""
        stats = self.stats
        stats.events += 1
        first = time.monotonic()
        for attempt in range(1, 10_000):
            if attempt > 1:
                stats.retries += 1
                if attempt == 2:
                    stats.retried_events += 1
                await asyncio.sleep(min(0.05 * 2 ** (attempt - 2), 1.0) * self._jitter.uniform(0.5, 1.0))
            if time.monotonic() - first > self.give_up_after_s:
                stats.failures["gave up"] += 1
                return False
            stats.attempts += 1
            try:
                async with self.http.post(self.url, data=body, headers=headers, timeout=self.timeout) as reply:
                    text = await reply.read()
                    status = reply.status
            except (aiohttp.ClientError, OSError) as exc:
                stats.failures[type(exc).__name__] += 1
                continue
            except TimeoutError:
                stats.failures["timeout"] += 1
                continue
            if 200 <= status < 300:
                stats.accepted += 1
                stats.longest_seconds = max(stats.longest_seconds, time.monotonic() - first)
                return True
            if status >= 500:
                stats.failures[f"http {status}"] += 1
                continue
            stats.refused.append(f"{status}: {text[:200]!r}")
            return False
        return False


# --- the agents ---------------------------------------------------------------------------------


class AgentListener:
    """One agent's console over the real WebSocket: connects with its token, keeps every message that
    took a seq, and after a lost connection reconnects with growing pauses and `?after=<last seq>`."""

    def __init__(self, base: str, name: str, token: str) -> None:
        self.name = name
        self.url = base.replace("http://", "ws://") + "/ws"
        self.token = token
        self.last_seq = 0
        self.by_seq: dict[int, dict[str, Any]] = {}
        self.frames = 0  # messages with a seq received, repeats included
        self.repeats = 0  # a seq that had arrived already (live, then replayed): dropped
        self.late: list[int] = []  # a new seq below one already seen: dropped, as the console drops it
        self.gaps: list[tuple[int, int]] = []  # (next seq expected, seq received instead)
        self.connects = 0
        self.online_since: float | None = None  # when the current connection had caught up (resumed)
        self.incomplete_resumes = 0
        self.resumes = 0
        self.history: list[tuple[float, str, Any]] = []  # (time, what, detail): for a failure's message

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Runs until cancelled."""
        pause = 0.05
        while True:
            try:
                async with http.ws_connect(f"{self.url}?after={self.last_seq}",
                                           headers={"Authorization": f"Bearer {self.token}"},
                                           timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                                           autoping=True) as ws:
                    self.connects += 1
                    self.history.append((time.monotonic(), "connected", self.last_seq))
                    pause = 0.05
                    try:
                        async for frame in ws:
                            if frame.type == aiohttp.WSMsgType.TEXT:
                                self._take(json.loads(frame.data))
                            elif frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                aiohttp.WSMsgType.ERROR):
                                break
                    finally:
                        self.online_since = None
                    self.history.append((time.monotonic(), "closed", (ws.close_code, self.last_seq)))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.history.append((time.monotonic(), "failed", type(exc).__name__))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _take(self, message: dict[str, Any]) -> None:
        kind, seq = message.get("type", ""), message.get("seq")
        if kind == "hello":
            return
        if kind == "resumed":  # always asked for: the URL carries ?after=
            self.online_since = time.monotonic()
            self.resumes += 1
            self.history.append((time.monotonic(), "resumed", (message.get("after"), message.get("replayed"),
                                                               message.get("complete"), seq)))
            if not message.get("complete", True):
                self.incomplete_resumes += 1
            return
        if not kind.startswith(CHANGE_TYPES) or not isinstance(seq, int):
            return
        self.frames += 1
        # As the console (static/socket.js) and `commhub listen` do: the position is the newest seq seen,
        # and a seq at or below it is taken for one shown already. So a message that overtakes an older
        # one makes the older one invisible: the server must send them in order.
        if seq <= self.last_seq:
            if seq in self.by_seq:
                self.repeats += 1
            else:
                self.late.append(seq)
            return
        if seq != self.last_seq + 1:
            self.gaps.append((self.last_seq + 1, seq))
            self.history.append((time.monotonic(), "gap", (self.last_seq + 1, seq)))
        self.by_seq[seq] = message
        self.last_seq = seq

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for _, message in sorted(self.by_seq.items()) if message["type"] == kind]


async def wait_for(condition: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout: float,
                   what: str, interval: float = 0.1) -> None:
    """Poll `condition` (a function, or a coroutine function) until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


# --- figures ------------------------------------------------------------------------------------


def report(test: str, figures: dict[str, Any]) -> None:
    """Print a run's figures and, with COMMHUB_RELIABILITY_REPORT set, append them as one JSON line."""
    line = json.dumps({"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures},
                      ensure_ascii=False, sort_keys=False)
    print(f"\n{test}: {line}")
    target = os.environ.get(REPORT_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")
