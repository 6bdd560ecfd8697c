"""Webhook → screen-pop latency and the highest sustained call-event rate: commhub against a bare floor.

    .venv/bin/python bench/calls.py [--contacts 1000000] [--quick] [--reuse-db] [--out bench/out]
                                    [--seconds 30] [--step-seconds 10] [--docs docs/benchmarks.md]

Same run, same machine, same driver, two servers:
  (a) the floor: a bare aiohttp app (this script with --floor-server, in its own process) that forwards
      each POSTed JSON event, as it came, to the one of its 50 WebSocket clients the event names; no storage;
  (b) `commhub serve` on a database with 1,000,000 contacts (built by bench/lookup.py's builder) and
      50 agents connected to /ws; each event is a signed generic `ringing` event from a stored customer
      number, targeted at one agent's extension.
The driver sends open-loop (a fixed schedule; it never waits for an answer before the next POST) through
an aiohttp client with 50 keep-alive connections; the 50 WebSocket clients run in a second process so that
reading pops never holds up sending. Latency is from just before a POST is handed to aiohttp until its pop
arrives; both processes read `time.perf_counter` (CLOCK_MONOTONIC, one clock for the machine).
Steps:
  1. the database (with --reuse-db: the last calls.db, else a copy of lookup.db of the right size) and
     50 agents with extensions 2001-2050 and fresh tokens;
  2. 200 events/s for 30 s against each server, after a short warm-up;
  3. a rising ladder of rates, 10 s per step, alternating the two servers, until a server's p99 reaches
     50 ms, a pop is lost, a POST fails or the driver falls behind; then one step halfway back;
  4. the report: <out>/calls.md and, with --docs, the section "Webhook to screen-pop" of that file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import aiohttp
import psutil
import websockets
from aiohttp import web
from websockets.asyncio.client import ClientConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lookup  # noqa: E402  (bench/ is not a package)
from lookup import (  # noqa: E402
    COMMHUB,
    REPO,
    CodeState,
    Scale,
    build_database,
    commhub_env,
    cpu_counters,
    cpu_window,
    free_port,
    known_numbers,
    machine_lines,
    memory_mb,
    pbx_text,
    percentile,
    progress,
    remove_database,
    sqlite_url,
    stop_server,
    wait_healthy,
    warm_page_cache,
)

from adapters.generic.verify import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign  # noqa: E402
from commhub.store import agents as agent_store  # noqa: E402
from commhub.store.db import create_engine, session_factory  # noqa: E402
from commhub.store.migrate import upgrade  # noqa: E402

SEED = 20261125
AGENTS = 50
FIRST_EXTENSION = 2001
TOKEN_LABEL = "bench-calls"
SOURCE = "bench"
CALLEE = "+4921199999990"  # the number the customers dial; no agent has it, so it never adds a target

# From the issue: both servers at 200 events/s for 30 s; a rate is sustained while p99 stays under 50 ms.
RATE = 200.0
P99_LIMIT_MS = 50.0
TARGET_P99_RATIO = 2.0
TARGET_RATE_SHARE = 0.5
FLOOR_REFERENCE = "p99 ≈ 2.4 ms at 100 events/s, ≈ 4,700 events/s at most"

LADDER = (400, 800, 1200, 1600, 2400, 3200, 4000, 4800, 5600, 6400, 8000)
QUICK_LADDER = (800, 1600, 3200)
WARMUP_RATE = 100.0
WARMUP_S = 3.0
CONNECTIONS = 50  # the driver's keep-alive connections per server, as a PBX cluster would hold
DRAIN_S = 5.0  # after the last POST: how long pops and answers may still come
SETTLE_S = 1.0  # pause between steps
POST_TIMEOUT_S = 30.0
MAX_LAG_MS = 20.0  # a POST starting this late (p99) means the driver, not the server, sets the pace
MAX_OVERRUN = 0.05  # sending took this much longer than planned: the driver fell behind
MIN_RATE = 10.0  # the search gives up below this
REFINEMENTS = 2  # steps halving the gap between the highest sustained rate and the lowest failed one
CALLER_POOL = 20_000
QUICK_CALLER_POOL = 2_000
LOST = math.inf  # a lost pop's latency: it counts in every percentile, as the slowest


# === the floor: a bare aiohttp app ====================================================================

FLOOR_CLIENTS = web.AppKey("floor_clients", dict[int, web.WebSocketResponse])


async def floor_socket(request: web.Request) -> web.WebSocketResponse:
    agent = int(request.query["agent"])
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    request.app[FLOOR_CLIENTS][agent] = ws
    await ws.send_str('{"type":"hello"}')
    try:
        async for _ in ws:
            pass
    finally:
        request.app[FLOOR_CLIENTS].pop(agent, None)
    return ws


async def floor_event(request: web.Request) -> web.Response:
    text = await request.text()
    ws = request.app[FLOOR_CLIENTS].get(json.loads(text)["agent"])
    if ws is None:
        return web.json_response({"error": "no such client"}, status=404)
    await ws.send_str(text)
    return web.json_response({"ok": True})


async def floor_health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def serve_floor(port: int) -> int:
    app = web.Application()
    app[FLOOR_CLIENTS] = {}
    app.router.add_routes([web.get("/ws", floor_socket), web.post("/event", floor_event),
                           web.get("/healthz", floor_health)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


# === the WebSocket clients, in their own process ======================================================

def pop_call_id(text: str) -> str | None:
    """The call a message pops: commhub's `call.ringing`, or the floor's forwarded event."""
    message = json.loads(text)
    if message.get("type") == "call.ringing":
        return str(message["call"]["provider_call_id"])
    return message.get("call_id") if "agent" in message else None


class Receivers:
    """Holds the agents' sockets and notes (call id, client, perf_counter) of every pop, per server."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.arrivals: dict[str, list[tuple[str, int, float]]] = {}
        self.closed: Counter[str] = Counter()
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, *args = await loop.run_in_executor(None, self.conn.recv)
            try:
                reply = await self.handle(command, args)
            except Exception as exc:  # the driver raises it; this process only reports
                reply = ("error", repr(exc))
            self.conn.send(reply)
            if command == "stop":
                return

    async def handle(self, command: str, args: list[Any]) -> Any:
        if command == "connect":
            await self.connect(*args)
            return ("ok",)
        if command == "drain":
            name = args[0]
            arrivals, self.arrivals[name] = self.arrivals[name], []
            return arrivals, self.closed[name]
        if command == "stop":
            await self.close()
            return ("ok",)
        raise ValueError(f"unknown command {command!r}")

    async def connect(self, name: str, url: str, tokens: list[str | None]) -> None:
        self.arrivals[name] = []
        for index, token in enumerate(tokens):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            ws = await websockets.connect(url.format(agent=index), additional_headers=headers, compression=None,
                                          open_timeout=30, max_size=None)
            hello = json.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"{name}: the first message was {hello!r}, not hello")
            self.sockets.append(ws)
            self.readers.append(asyncio.create_task(self.listen(name, index, ws)))
        gc.collect()
        gc.freeze()  # the sockets live all run: keep them out of every later collection

    async def listen(self, name: str, index: int, ws: ClientConnection) -> None:
        clock = time.perf_counter
        try:
            async for text in ws:
                received = clock()
                call_id = pop_call_id(str(text))
                if call_id is not None:
                    self.arrivals[name].append((call_id, index, received))
        except websockets.ConnectionClosed:
            pass
        self.closed[name] += 1

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)


def receivers_main(conn: Connection) -> None:
    asyncio.run(Receivers(conn).serve())


class ReceiverProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=receivers_main, args=(child,), name="bench-receivers", daemon=True)
        self.process.start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def ask(self, *message: Any) -> Any:
        reply = await asyncio.get_running_loop().run_in_executor(None, self._ask, message)
        if isinstance(reply, tuple) and reply and reply[0] == "error":
            raise RuntimeError(f"WebSocket clients: {reply[1]}")
        return reply

    def _ask(self, message: tuple[Any, ...]) -> Any:
        self.conn.send(message)
        return self.conn.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self._ask(("stop",))
            except (EOFError, OSError):
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


# === the servers and what is posted to them ===========================================================

@dataclass(frozen=True, slots=True)
class Event:
    call_id: str
    agent: int  # index of the client that must get the pop
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class Target:
    name: str  # "floor" or "commhub"
    label: str
    base: str  # http://host:port
    path: str  # where events are POSTed
    ws_url: str  # `{agent}` is the client's index
    tokens: list[str | None]
    process: subprocess.Popen[bytes]
    log: Path
    secret: str = ""
    callers: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.base + self.path

    def event(self, call_id: str, agent: int, rng: random.Random) -> Event:
        if self.name == "floor":
            body = json.dumps({"agent": agent, "call_id": call_id}, separators=(",", ":")).encode()
            return Event(call_id, agent, body, {"Content-Type": "application/json"})
        body = json.dumps({"event": "ringing", "call_id": call_id, "direction": "in",
                           "from": rng.choice(self.callers), "to": CALLEE,
                           "targets": [str(FIRST_EXTENSION + agent)]}, separators=(",", ":")).encode()
        stamp = int(time.time())  # tolerance is 300 s: signing a step's events before it starts is fine
        return Event(call_id, agent, body, {"Content-Type": "application/json", TIMESTAMP_HEADER: str(stamp),
                                            SIGNATURE_HEADER: sign(self.secret, stamp, body)})


def commhub_config(out: Path, secret: str) -> Path:
    path = out / "calls.toml"
    path.write_text(f'[logging]\nlevel = "warning"\n\n[[sources]]\nname = "{SOURCE}"\nadapter = "generic"\n'
                    f'secret = "{secret}"\noptions = {{ require_signature = true }}\n', encoding="utf-8")
    return path


def start_commhub(database: Path, out: Path, port: int, secret: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    config = commhub_config(out, secret)
    return subprocess.Popen([str(COMMHUB), "serve", "--config", str(config), "--host", "127.0.0.1",
                             "--port", str(port)], env=commhub_env(database), cwd=out, stdout=log,
                            stderr=subprocess.STDOUT)


def start_floor(out: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--floor-server", "--port", str(port)],
                            cwd=out, stdout=log, stderr=subprocess.STDOUT)


# === one step: a rate for some seconds against one server ==============================================

@dataclass(slots=True)
class Firing:
    sent: dict[str, tuple[float, int]] = field(default_factory=dict)  # call id → (perf_counter, client)
    lags: list[float] = field(default_factory=list)  # POST start − its slot in the schedule, s
    answers: Counter[str] = field(default_factory=Counter)  # "200", "404", "ClientOSError", "unanswered"
    send_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CpuShare:
    """Busy CPU over a step, as a share of one core (1.0 = one core fully busy); machine: of all cores."""

    server: float
    generator: float
    receivers: float
    machine: float


class CpuMeter:
    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.started = time.perf_counter()
        self.before = self._times()
        self.counters = cpu_counters()

    def _times(self) -> dict[str, float]:
        return {name: sum(process.cpu_times()[:2]) for name, process in self.processes.items()}

    def stop(self) -> CpuShare:
        seconds = time.perf_counter() - self.started
        after = self._times()
        share = {name: (after[name] - self.before[name]) / seconds for name in after}
        return CpuShare(share["server"], share["generator"], share["receivers"],
                        cpu_window(self.counters).machine_busy)


@dataclass(frozen=True, slots=True)
class Step:
    target: str
    rate: float
    seconds: float
    sent: int
    popped: int
    failed_posts: int  # answered other than 200, or not answered at all
    misrouted: int  # popped on a client other than the one the event named
    closed: int  # sockets the server closed during the step
    p50_ms: float
    p99_ms: float  # lost pops counted as infinitely late
    p99_popped_ms: float  # of the pops that came
    p999_ms: float
    max_ms: float
    lag_p99_ms: float
    send_seconds: float
    answers: dict[str, int]
    cpu: CpuShare

    @property
    def lost(self) -> int:
        return self.sent - self.popped

    @property
    def driver_behind(self) -> bool:
        return self.lag_p99_ms > MAX_LAG_MS or self.send_seconds > self.seconds * (1 + MAX_OVERRUN) + 0.05

    def verdict(self) -> str | None:
        """None when the server sustained this rate, else why not."""
        reasons = []
        if self.lost:
            reasons.append(f"{self.lost:,} pops missing {DRAIN_S:.0f} s after the last POST")
        if self.failed_posts:
            answers = ", ".join(f"{answer}: {count:,}" for answer, count in sorted(self.answers.items())
                                if answer != "200")
            reasons.append(f"{self.failed_posts:,} POSTs failed ({answers})")
        if self.misrouted or self.closed:
            reasons.append(f"{self.misrouted} misrouted, {self.closed} sockets closed")
        if self.driver_behind:
            reasons.append(f"driver behind (POST start lag p99 {self.lag_p99_ms:.0f} ms, "
                           f"sending took {self.send_seconds:.1f} s)")
        if self.p99_ms >= P99_LIMIT_MS:
            reasons.append(f"p99 {ms(self.p99_ms)} ms")
        return "; ".join(reasons) or None


class Driver:
    """Paces the POSTs and matches them with the pops the receiver process saw."""

    def __init__(self, receivers: ReceiverProcess, seed: int) -> None:
        self.receivers = receivers
        self.rng = random.Random(seed)
        self.run = "b" + format(int(time.time()), "x")  # call ids stay new across runs on a reused database
        self.steps = 0
        self.http: dict[str, aiohttp.ClientSession] = {}

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *_: object) -> None:
        for session in self.http.values():
            await session.close()

    def client(self, target: Target) -> aiohttp.ClientSession:
        if target.name not in self.http:
            self.http[target.name] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S))
        return self.http[target.name]

    def events(self, target: Target, count: int) -> list[Event]:
        self.steps += 1
        return [target.event(f"{self.run}-{self.steps}-{i}", self.rng.randrange(AGENTS), self.rng)
                for i in range(count)]

    async def step(self, target: Target, rate: float, seconds: float) -> Step:
        events = self.events(target, max(1, round(rate * seconds)))
        await self.receivers.ask("drain", target.name)  # forget stragglers of an earlier step
        _, closed_before = await self.receivers.ask("drain", target.name)
        gc.collect()
        meter = CpuMeter({"server": target.process.pid, "generator": os.getpid(), "receivers": self.receivers.pid})
        firing = await self.fire(target, events, rate)
        arrived, closed = await self.collect(target, firing)
        cpu = meter.stop()
        await asyncio.sleep(SETTLE_S)
        return summarize(target.name, rate, seconds, firing, arrived, closed - closed_before, cpu)

    async def fire(self, target: Target, events: list[Event], rate: float) -> Firing:
        firing, tasks = Firing(), set()
        client = self.client(target)
        start = time.perf_counter() + 0.01
        for i, event in enumerate(events):
            slot = start + i / rate
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 32 == 0:
                await asyncio.sleep(0)  # behind schedule: still let the started POSTs run
            task = asyncio.create_task(self.post(client, target.url, event, slot, firing))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        firing.send_seconds = time.perf_counter() - start
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return firing

    @staticmethod
    async def post(client: aiohttp.ClientSession, url: str, event: Event, slot: float, firing: Firing) -> None:
        started = time.perf_counter()
        firing.sent[event.call_id] = (started, event.agent)
        firing.lags.append(started - slot)
        try:
            async with client.post(url, data=event.body, headers=event.headers) as response:
                await response.read()
                firing.answers[str(response.status)] += 1
        except asyncio.CancelledError:
            firing.answers["unanswered"] += 1
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            firing.answers[type(exc).__name__] += 1

    async def collect(self, target: Target, firing: Firing) -> tuple[dict[str, tuple[float, int]], int]:
        """Pops of this step's calls, until every accepted POST has its pop or DRAIN_S has passed."""
        arrived: dict[str, tuple[float, int]] = {}
        expected = firing.answers.get("200", 0)
        deadline = time.perf_counter() + DRAIN_S
        while True:
            arrivals, closed = await self.receivers.ask("drain", target.name)
            for call_id, client, received in arrivals:
                if call_id in firing.sent and call_id not in arrived:
                    arrived[call_id] = (received, client)
            if len(arrived) >= expected or time.perf_counter() > deadline:
                return arrived, closed
            await asyncio.sleep(0.1)


def summarize(name: str, rate: float, seconds: float, firing: Firing, arrived: dict[str, tuple[float, int]],
              closed: int, cpu: CpuShare) -> Step:
    latencies: list[float] = []
    misrouted = 0
    for call_id, (received, client) in arrived.items():
        sent, agent = firing.sent[call_id]
        latencies.append((received - sent) * 1e9)
        misrouted += client != agent
    popped = sorted(latencies)
    ordered = popped + [LOST] * (len(firing.sent) - len(arrived))
    at = lambda fraction: percentile(ordered, fraction) / 1000 if ordered else LOST  # noqa: E731  (ns → ms)
    lags = sorted(lag * 1e9 for lag in firing.lags)
    failed = sum(count for answer, count in firing.answers.items() if answer != "200")
    return Step(name, rate, seconds, len(firing.sent), len(arrived), failed, misrouted, closed,
                at(0.50), at(0.99), percentile(popped, 0.99) / 1000 if popped else LOST, at(0.999),
                ordered[-1] / 1e6 if ordered else LOST,
                percentile(lags, 0.99) / 1000 if lags else 0.0, firing.send_seconds, dict(firing.answers), cpu)


# === the run ==========================================================================================

def nice(rate: float) -> float:
    """Two significant digits: 150, 75, 2,800."""
    magnitude = 10 ** max(0, math.floor(math.log10(rate)) - 1)
    return round(rate / magnitude) * magnitude


@dataclass(slots=True)
class Search:
    """The highest rate a server sustains: up the ladder, down by halves, then halving the gap."""

    ladder: tuple[int, ...]
    highest: float = 0.0  # the highest rate sustained
    failed_at: float | None = None  # the lowest rate not sustained
    steps: list[Step] = field(default_factory=list)

    def note(self, step: Step) -> None:
        self.steps.append(step)
        if step.verdict() is None:
            self.highest = max(self.highest, step.rate)
        else:
            self.failed_at = step.rate if self.failed_at is None else min(self.failed_at, step.rate)

    def next_rate(self, refine: bool) -> float | None:
        """The next rate to try, or None when this search is done."""
        if self.failed_at is None:
            return next((rate for rate in self.ladder if rate > self.highest), None)
        if self.highest == 0:
            lower = nice(self.failed_at / 2)
            return lower if lower >= MIN_RATE else None
        middle = nice((self.highest + self.failed_at) / 2)
        return middle if refine and self.highest < middle < self.failed_at else None

    @property
    def limit(self) -> Step | None:
        """The lowest rate this server did not sustain."""
        failed = [step for step in self.steps if step.verdict() is not None]
        return min(failed, key=lambda step: step.rate) if failed else None


@dataclass(slots=True)
class Run:
    steady: dict[str, Step] = field(default_factory=dict)  # RATE for --seconds, per server
    searches: dict[str, Search] = field(default_factory=dict)
    server_rss_mb: float = 0.0
    server_hwm_mb: float = 0.0
    startup_seconds: float = 0.0


async def measure(targets: list[Target], receivers: ReceiverProcess, seconds: float, step_seconds: float,
                  ladder: tuple[int, ...], refinements: int) -> Run:
    run = Run()
    commhub = next(target for target in targets if target.name == "commhub")
    started = time.perf_counter()
    for target in targets:
        await wait_healthy(target.process, target.base)
    run.startup_seconds = time.perf_counter() - started
    for target in targets:
        progress(f"connecting {AGENTS} WebSocket clients to {target.label}")
        await receivers.ask("connect", target.name, target.ws_url, target.tokens)
    async with Driver(receivers, SEED + 1) as driver:
        for target in targets:
            progress(f"{target.label}: warm-up, {WARMUP_RATE:.0f} events/s for {WARMUP_S:.0f} s")
            warmup = await driver.step(target, WARMUP_RATE, WARMUP_S)
            if warmup.failed_posts or warmup.lost:
                raise RuntimeError(f"{target.label} failed the warm-up ({warmup.verdict()}); its log is "
                                   f"{target.log}")
        for target in targets:
            progress(f"{target.label}: {RATE:.0f} events/s for {seconds:.0f} s")
            step = run.steady[target.name] = await driver.step(target, RATE, seconds)
            report_step(step)
            run.searches[target.name] = Search(ladder)
            run.searches[target.name].note(step)
        await search(driver, targets, run.searches, step_seconds, refinements)
    run.server_rss_mb, run.server_hwm_mb = memory_mb(commhub.process.pid)
    return run


async def search(driver: Driver, targets: list[Target], searches: dict[str, Search], step_seconds: float,
                 refinements: int) -> None:
    """Step every server still searching in turn, so that both meet the same background noise."""
    refined: Counter[str] = Counter()
    while True:
        plan = [(target, searches[target.name].next_rate(refined[target.name] < refinements))
                for target in targets]
        plan = [(target, rate) for target, rate in plan if rate is not None]
        if not plan:
            return
        for target, rate in plan:
            found = searches[target.name]
            refined[target.name] += found.failed_at is not None and found.highest > 0
            progress(f"{target.label}: {rate:,.0f} events/s for {step_seconds:.0f} s")
            step = await driver.step(target, rate, step_seconds)
            found.note(step)
            report_step(step)


def report_step(step: Step) -> None:
    verdict = step.verdict() or "sustained"
    progress(f"  {step.target} {step.rate:,.0f}/s: p50 {ms(step.p50_ms)} ms, p99 {ms(step.p99_ms)} ms, "
             f"{step.popped:,}/{step.sent:,} popped, server CPU {step.cpu.server:.0%}, driver CPU "
             f"{step.cpu.generator:.0%} + {step.cpu.receivers:.0%}: {verdict}")


# === preparing the database and the agents ============================================================

def contact_count(path: Path) -> int:
    if not path.exists():
        return -1
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(connection.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return -1


def prepare_database(out: Path, contacts: int, quick: bool, reuse: bool) -> tuple[Path, str]:
    """calls.db with `contacts` contacts, and how it came to be."""
    database, built_for_lookup = out / "calls.db", out / "lookup.db"
    if reuse and contact_count(database) == contacts:
        return database, "calls.db of an earlier run, its calls kept"
    if reuse and contact_count(built_for_lookup) == contacts:
        remove_database(database)
        for suffix in ("", "-wal"):
            if Path(f"{built_for_lookup}{suffix}").exists():
                shutil.copyfile(f"{built_for_lookup}{suffix}", f"{database}{suffix}")
        return database, "a copy of bench/lookup.py's lookup.db"
    build = build_database(database, Scale.of(contacts, quick))
    return database, f"built by bench/lookup.py's builder in {build.seconds_total:.0f} s"


def agent_name(index: int) -> str:
    return f"bench-agent-{index + 1:02d}"


async def agent_tokens(database: Path) -> list[str | None]:
    """Migrate, create the agents (extension 2001 for the first, …) where missing, issue each a new token."""
    engine = create_engine(sqlite_url(database))
    try:
        await upgrade(engine)
        tokens: list[str | None] = []
        async with session_factory(engine)() as session, session.begin():
            for index in range(AGENTS):
                agent = await agent_store.find_agent(session, agent_name(index))
                if agent is None:
                    agent = await agent_store.create_agent(session, agent_name(index),
                                                           extensions=[str(FIRST_EXTENSION + index)])
                await agent_store.revoke_tokens(session, agent, label=TOKEN_LABEL)
                tokens.append(await agent_store.issue_token(session, agent, label=TOKEN_LABEL))
        return tokens
    finally:
        await engine.dispose()


def caller_texts(database: Path, count: int) -> list[str]:
    """Stored numbers, written as a PBX sends them (`030 1234567`, `+49 30 …`, `0043 …`): every pop matches."""
    rng = random.Random(SEED)
    return [pbx_text(e164, rng) for e164 in known_numbers(database, count, rng)]


# === the report =======================================================================================

@dataclass(slots=True)
class Report:
    command: str
    contacts: int
    database: str
    run: Run
    seconds: float
    step_seconds: float
    refinements: int
    started: datetime
    code: CodeState


def ms(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value:,.2f}" if value < 10 else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def times(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:,.1f}×"


def targets_section(report: Report) -> list[str]:
    floor, commhub = report.run.steady["floor"], report.run.steady["commhub"]
    p99 = ratio(commhub.p99_ms, floor.p99_ms)
    rates = {name: search.highest for name, search in report.run.searches.items()}
    share = ratio(rates["commhub"], rates["floor"])
    return [
        "### Targets", "",
        "| target | goal | measured | |", "| --- | --- | --- | --- |",
        f"| commhub p99 ÷ floor p99 at {RATE:.0f} events/s | ≤ {TARGET_P99_RATIO:.0f}× | "
        f"{ms(commhub.p99_ms)} ms ÷ {ms(floor.p99_ms)} ms = {times(p99)} | {met(p99 <= TARGET_P99_RATIO)} |",
        f"| commhub sustained rate ÷ floor's (p99 < {P99_LIMIT_MS:.0f} ms) | ≥ {TARGET_RATE_SHARE:.0%} | "
        f"{rates['commhub']:,.0f} ÷ {rates['floor']:,.0f} events/s = {share:.0%} | "
        f"{met(share >= TARGET_RATE_SHARE)} |", "",
    ]


def steady_section(report: Report) -> list[str]:
    lines = [f"### 1. {RATE:.0f} events/s for {report.seconds:.0f} s", "",
             "Latency from the POST leaving the driver to the pop arriving on the agent's socket (ms); pops "
             f"not on a socket {DRAIN_S:.0f} s after the last POST count as infinitely late (missing). CPU as a "
             "share of one core, averaged over the step.", "",
             "| server | events | popped | missing / failed POSTs | p50 | p99 | p99 of those popped | p99.9 | max "
             "| server CPU | driver CPU (POSTs + sockets) | machine busy (2 cores) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("floor", "commhub"):
        s = report.run.steady[name]
        lines.append(f"| {name} | {s.sent:,} | {s.popped:,} | {s.lost} / {s.failed_posts} | {ms(s.p50_ms)} | "
                     f"**{ms(s.p99_ms)}** | {ms(s.p99_popped_ms)} | {ms(s.p999_ms)} | {ms(s.max_ms)} | "
                     f"{s.cpu.server:.0%} | "
                     f"{s.cpu.generator:.0%} + {s.cpu.receivers:.0%} | {s.cpu.machine:.0%} |")
    return lines + [""]


def search_section(report: Report) -> list[str]:
    lines = [f"### 2. The highest sustained rate ({report.step_seconds:.0f} s per step)", "",
             f"A rate is sustained when p99 < {P99_LIMIT_MS:.0f} ms, no pop is lost, every POST gets 200 and the "
             f"driver keeps its schedule (POST start lag p99 ≤ {MAX_LAG_MS:.0f} ms). Each server climbs the "
             f"ladder from the {RATE:.0f} events/s run up to its first failure (or, failing at {RATE:.0f}, halves "
             f"the rate until one is sustained); then {report.refinements} step(s) halve the gap between "
             "the highest rate sustained and the lowest failed. The servers take turns, step by step. "
             "Server CPU per event: its CPU time over the step divided by the events offered.", "",
             "| server | rate /s | events | p50 | p99 | missing / failed | start lag p99 | server CPU (per event) | "
             "driver CPU | machine busy | verdict |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name in ("floor", "commhub"):
        for s in sorted(report.run.searches[name].steps, key=lambda step: step.rate):
            lines.append(f"| {name} | {s.rate:,.0f} | {s.sent:,} | {ms(s.p50_ms)} | {ms(s.p99_ms)} | "
                         f"{s.lost:,} / {s.failed_posts:,} | {ms(s.lag_p99_ms)} | {s.cpu.server:.0%} "
                         f"({ms(s.cpu.server / s.rate * 1000)} ms) | "
                         f"{s.cpu.generator:.0%} + {s.cpu.receivers:.0%} | {s.cpu.machine:.0%} | "
                         f"{s.verdict() or 'sustained'} |")
    lines.append("")
    for name in ("floor", "commhub"):
        search = report.run.searches[name]
        limit = search.limit
        why = f"first failure at {limit.rate:,.0f}/s: {limit.verdict()}" if limit else "no step failed"
        lines.append(f"- **{name}: {search.highest:,.0f} events/s** ({why})")
    return lines + [""] + limits(report)


def limits(report: Report) -> list[str]:
    """What set each limit, where the figures say it: the driver for the floor, a full core for commhub."""
    lines = []
    floor = report.run.searches["floor"].limit
    if floor is not None and floor.driver_behind:
        lines.append(f"- The floor's limit is the driver's: at {floor.rate:,.0f} events/s the driver used "
                     f"{floor.cpu.generator:.0%} + {floor.cpu.receivers:.0%} of a core and the floor "
                     f"{floor.cpu.server:.0%}, with the machine {floor.cpu.machine:.0%} busy; the floor alone would "
                     "sustain more, so commhub's share of it is at most the figure above.")
    steady = report.run.steady["commhub"]
    found = report.run.searches["commhub"]
    if steady.verdict() is not None and found.highest < RATE:
        lines.append(f"- commhub does not keep up with {RATE:.0f} events/s: events queue for the whole run, so "
                     f"its p99 there (of the pops that came: {ms(steady.p99_popped_ms)} ms) measures the queue "
                     f"at the end of the run, not the cost of one event. Its server CPU was "
                     f"{steady.cpu.server:.0%} of a core there, ≈ {ms(steady.cpu.server / RATE * 1000)} ms per "
                     f"event; the floor's {ms(report.run.steady['floor'].cpu.server / RATE * 1000)} ms.")
    return lines + [""] if lines else []


def setup_section(report: Report) -> list[str]:
    run = report.run
    return [
        "### How it was measured", "",
        f"- floor: a bare aiohttp app (`bench/calls.py --floor-server`) with the same {AGENTS} WebSocket clients "
        "connected; it parses each POSTed JSON event (`{\"agent\": i, \"call_id\": …}`), forwards its text to "
        "client i and answers 200; no storage. The issue measured such a floor on this machine earlier at "
        f"{FLOOR_REFERENCE}.",
        f"- commhub: `commhub serve --config calls.toml` (logging at warning) on {report.contacts:,} contacts "
        f"({report.database}), {AGENTS} agents with extensions {FIRST_EXTENSION}–{FIRST_EXTENSION + AGENTS - 1} "
        "connected to `/ws`; each event a signed generic `ringing` (`X-Commhub-Signature`, `require_signature`) "
        "for one random agent's extension, from a stored customer number written as a PBX sends it, a new "
        "call id each time; commhub verifies, stores the call, matches the caller, stores the message and pushes "
        f"it. Started in {run.startup_seconds:.1f} s; resident memory at the end {run.server_rss_mb:.0f} MB "
        f"(peak {run.server_hwm_mb:.0f} MB).",
        f"- driver: open loop, POSTs on a fixed schedule through one aiohttp client with {CONNECTIONS} keep-alive "
        "connections per server (events are built and signed before each step); the WebSocket clients "
        f"(`websockets` {websockets.__version__}, compression off) in a second process. A pop is matched to "
        f"its POST by call id; answers and pops may come until {DRAIN_S:.0f} s after the last POST. Warm-up "
        f"{WARMUP_S:.0f} s at {WARMUP_RATE:.0f} events/s per server first, not counted.",
        "- everything (both servers, the driver's two processes) shares the machine's 2 cores, so a server "
        "never has a core to itself at high rates: compare the ratios of this run.", "",
    ]


def render(report: Report) -> str:
    head = [f"Measured {report.started:%Y-%m-%d %H:%M} UTC with `{report.command}`.", "", *machine_lines(),
            f"- {report.code.describe()}", ""]
    changed = CodeState.now().changes_since(report.code)
    if changed is not None:
        head.insert(-1, f"- NOTE: commhub changed during this run; at its end: {changed}")
    body = targets_section(report) + steady_section(report) + search_section(report) + setup_section(report)
    return "\n".join(head + body)


DOCS_SECTION = "## Webhook to screen-pop"


def write_docs(path: Path, markdown: str) -> None:
    """lookup.write_docs, with this benchmark's heading (it reads the heading from its module)."""
    theirs = lookup.DOCS_SECTION
    lookup.DOCS_SECTION = DOCS_SECTION
    try:
        lookup.write_docs(path, markdown)
    finally:
        lookup.DOCS_SECTION = theirs


# === main =============================================================================================

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=None, help="contacts in the database (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="working directory")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20,000 contacts, 10 s at 200/s, 5 s steps, a short ladder")
    parser.add_argument("--reuse-db", action="store_true",
                        help="keep DIR/calls.db, or copy DIR/lookup.db, when it has the right number of contacts")
    parser.add_argument("--seconds", type=float, default=None, help="length of the 200 events/s run (default 30)")
    parser.add_argument("--step-seconds", type=float, default=None, help="length of a ladder step (default 10)")
    parser.add_argument("--docs", type=Path, help="also write the report into this file (docs/benchmarks.md)")
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_server:
        return serve_floor(args.port)
    contacts = args.contacts or (20_000 if args.quick else 1_000_000)
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    step_seconds = args.step_seconds or (5.0 if args.quick else 10.0)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started, code = datetime.now(UTC), CodeState.now()
    command = " ".join([".venv/bin/python", "bench/calls.py", *(argv if argv is not None else sys.argv[1:])])

    progress(f"preparing {contacts:,} contacts in {out / 'calls.db'}")
    database, origin = prepare_database(out, contacts, args.quick, args.reuse_db)
    tokens = asyncio.run(agent_tokens(database))
    callers = caller_texts(database, QUICK_CALLER_POOL if args.quick else CALLER_POOL)
    warm_page_cache(database)
    progress(f"database ready ({origin}); starting both servers and the WebSocket clients")
    refinements = 1 if args.quick else REFINEMENTS
    run = run_servers(database, out, tokens, callers, seconds, step_seconds, QUICK_LADDER if args.quick else LADDER,
                      refinements)
    report = Report(command, contacts, origin, run, seconds, step_seconds, refinements, started, code)
    markdown = render(report)
    print(markdown)
    (out / "calls.md").write_text(markdown + "\n", encoding="utf-8")
    if args.docs:
        write_docs(args.docs, markdown)
    return 0


def run_servers(database: Path, out: Path, tokens: list[str | None], callers: list[str], seconds: float,
                step_seconds: float, ladder: tuple[int, ...], refinements: int) -> Run:
    secret = secrets.token_hex(32)
    floor_port, commhub_port = free_port(), free_port()
    with ExitStack() as stack:
        floor_log_path, commhub_log_path = out / "calls-floor.log", out / "calls-serve.log"
        floor_log = stack.enter_context(open(floor_log_path, "wb"))
        commhub_log = stack.enter_context(open(commhub_log_path, "wb"))
        receivers = ReceiverProcess()
        stack.callback(receivers.stop)
        floor_process = start_floor(out, floor_port, floor_log)
        stack.callback(stop_server, floor_process)
        commhub_process = start_commhub(database, out, commhub_port, secret, commhub_log)
        stack.callback(stop_server, commhub_process)
        floor = Target("floor", "the floor", f"http://127.0.0.1:{floor_port}", "/event",
                       f"ws://127.0.0.1:{floor_port}/ws?agent={{agent}}", [None] * AGENTS, floor_process,
                       floor_log_path)
        commhub = Target("commhub", "commhub", f"http://127.0.0.1:{commhub_port}", f"/hooks/{SOURCE}",
                         f"ws://127.0.0.1:{commhub_port}/ws", tokens, commhub_process, commhub_log_path,
                         secret, callers)
        return asyncio.run(measure([floor, commhub], receivers, seconds, step_seconds, ladder, refinements))


if __name__ == "__main__":
    sys.exit(main())
