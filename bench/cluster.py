"""Two nodes + PostgreSQL against one node + PostgreSQL on the same machine: the sustained webhook rate and
the p99 webhook → screen-pop latency with 200 agents spread over the nodes, and where the limit is.

    .venv/bin/python bench/cluster.py [--quick] [--contacts 20000] [--agents 200] [--rate 100] [--seconds 30]
                                      [--step-seconds 10] [--connect-seconds 30] [--out bench/out]
                                      [--docs docs/benchmarks.md]

Same run, same machine, same driver, two configurations on one private PostgreSQL (tests/support/pgcluster.py:
its own data directory, loopback, a free port; never the machine's PostgreSQL service):
  one: one `commhub serve` on the database `bench_one`, all agents' WebSockets on it, every webhook to it;
  two: two `commhub serve` processes (`[cluster] node_name` two-1, two-2) on the database `bench_two`, a copy
       of `bench_one` (CREATE DATABASE … TEMPLATE); agent i's WebSocket on node i mod 2, the webhooks posted
       to the nodes alternately, so about half of all pops are committed on one node and pushed by the other
       (PostgreSQL LISTEN/NOTIFY; agent seqs from the database under per-agent advisory locks).
Each configuration runs its own database, so neither hears the other's notifications; both stay up all run
and take turns step by step, so that both meet the same background noise.

Each event is a signed generic `ringing` event (as bench/calls.py posts, its `Target.event`) for one random
agent's extension, from a stored customer number written as a PBX sends it, with a new call id. The driver
(bench/calls.py's: open loop, pre-signed events, 50 keep-alive connections per node) sends on a fixed schedule
and never waits for an answer; the WebSocket clients run in a second process (bench/calls.py's Receivers,
here also noting each message's seq). Latency is from just before the POST to the pop's arrival, both
processes reading CLOCK_MONOTONIC (`time.perf_counter`). Every pop must arrive exactly once, on the socket of
the agent the event named, with the agent's seq one above the last one that socket saw (a repeat is a double,
a skipped seq a lost message): a lost or doubled pop fails the step.

A third process samples PostgreSQL's `pg_stat_activity` at random moments, 50 a second, during every step: for
each node, the share of the time its call transaction was open (a node runs them one at a time) and what the
transaction was doing meanwhile (running in PostgreSQL, waiting for the node, waiting for an agent's advisory lock, for
NOTIFY's commit lock, …). With the CPU time of every process (the nodes, all of the cluster's PostgreSQL
processes, the driver, the WebSocket clients, the sampler) it says where the limit is.

Steps:
  1. a private PostgreSQL; `bench_one` migrated, 20,000 generated customers (bench/lookup.py's CSV writer)
     loaded with `commhub contacts import`, 200 agents with extensions 2001-2200 and tokens; `bench_two`
     copied from it (≈ 30 s on the 2-core machine);
  2. the three nodes; the WebSocket clients (200 per configuration) opened evenly over 30 s, as agents sign in
     over the day (each socket re-checks its token after a random half to all of 30 s, so even sockets
     opened at once spread their checks; --connect-seconds 0 opens them at once);
  3. a warm-up (3 s at 50 events/s), then 100 events/s for 30 s against each configuration;
  4. a rising ladder of rates, 10 s per step, the configurations taking turns, until a step fails (p99 of
     50 ms reached — the threshold bench/calls.py uses —, a pop lost or doubled, a POST failed, the driver
     behind its schedule; below 100/s the rate is halved until one holds), then two steps halving the gap;
  5. the report: <out>/cluster.md, the figures in cluster.json, every pop's timing in cluster-steps.jsonl (a
     line per step), the nodes' configs and logs cluster-<node>.toml/.log; with --docs the section "Two nodes
     on PostgreSQL" of that file (bench/sections.publish).
Whole run ≈ 4 min (≈ 30 s of it setup); --quick (5,000 contacts, 30 agents, 10 s at the fixed rate, 5 s steps)
≈ 2 min.
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
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, cast

import aiohttp
import asyncpg
import psutil
import websockets

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # support.pgcluster
sys.path.insert(0, str(BENCH))  # first: tests/ has a package `cluster` too
import calls  # noqa: E402  (bench/ is not a package)
from calls import DRAIN_S, FIRST_EXTENSION, MAX_LAG_MS, P99_LIMIT_MS, SETTLE_S, SOURCE  # noqa: E402
from lookup import (  # noqa: E402
    COMMHUB,
    REPO,
    CodeState,
    cpu_counters,
    cpu_window,
    free_port,
    machine_lines,
    memory_mb,
    pbx_text,
    progress,
    stop_server,
    wait_healthy,
    write_import_csv,
)
from sections import percentile, publish  # noqa: E402
from support.pgcluster import PostgresCluster  # noqa: E402

from commhub.settings import PushSettings  # noqa: E402
from commhub.store import agents as agent_store  # noqa: E402
from commhub.store.db import create_engine, session_factory  # noqa: E402
from commhub.store.migrate import upgrade  # noqa: E402

SEED = 20261126
HEADING = "## Two nodes on PostgreSQL (bench/cluster.py)"
AGENTS = 200
QUICK_AGENTS = 30
CONTACTS = 20_000  # commhub's PostgreSQL import slows with the table's size: 50,000 take minutes
QUICK_CONTACTS = 5_000
CONTACTS_PER_COMPANY = 50
RATE = 100.0
SECONDS = 30.0
QUICK_SECONDS = 10.0
STEP_SECONDS = 10.0
QUICK_STEP_SECONDS = 5.0
LADDER = (150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1600, 2000)
QUICK_LADDER = (200, 400, 800)
REFINEMENTS = 2
WARMUP_RATE = 50.0
WARMUP_S = 3.0
CALLER_POOL = 20_000
TOKEN_LABEL = "bench-cluster"
SAMPLE_EVERY_S = 0.02  # pg_stat_activity, 50 times a second on average
CONNECT_BATCH = 20  # WebSockets opened at once, with --connect-seconds 0
# An open socket re-checks its token at most this often ([push] credential_check_seconds), each time after a
# random half to all of it, so sockets opened together drift apart.
CHECK_PERIOD_S = PushSettings().credential_check_seconds
IMPORT_TIMEOUT_S = 900.0
ONE, TWO = "one", "two"
# What a call transaction waits for, by pg_stat_activity's wait event (type/event), in report order.
WAIT_NAMES = {"running": "running in PostgreSQL", "node": "waiting for the node (idle in transaction)",
              "Lock/advisory": "an agent's advisory lock", "Lock/object": "NOTIFY's commit lock",
              "other": "other waits"}


# === the WebSocket clients, in their own process (bench/calls.py's, noting seqs too) ==================

class Receivers(calls.Receivers):
    """calls.Receivers, with every socket's agent given explicitly (the sockets of one configuration may
    be on several nodes) and each message's seq noted: arrivals are (call id, agent, perf_counter, seq,
    seconds since the message was staged), the call id empty for a change message that is not a pop.
    The last is the wall clock now minus the message's `ts` (the node's wall clock when its transaction
    staged it): the part of the latency after staging (the commit, NOTIFY, the push)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.hellos: dict[str, dict[int, int]] = {}

    async def handle(self, command: str, args: list[Any]) -> Any:
        if command == "hellos":
            return self.hellos[args[0]]
        return await super().handle(command, args)

    async def connect(self, sockets: list[tuple[str, int, str, str]],  # type: ignore[override]
                      spread_s: float) -> None:
        """sockets: (configuration, agent index, ws URL, token), opened evenly over `spread_s` seconds (at once,
        CONNECT_BATCH at a time, with 0)."""
        for name, *_ in sockets:
            self.arrivals.setdefault(name, [])
            self.hellos.setdefault(name, {})
        if spread_s <= 0:
            for start in range(0, len(sockets), CONNECT_BATCH):
                await asyncio.gather(*(self.open(*socket) for socket in sockets[start:start + CONNECT_BATCH]))
        else:
            loop = asyncio.get_running_loop()
            began, opening = loop.time(), []
            for index, socket in enumerate(sockets):
                await asyncio.sleep(max(0.0, began + index * spread_s / len(sockets) - loop.time()))
                opening.append(asyncio.create_task(self.open(*socket)))
            await asyncio.gather(*opening)
        gc.collect()
        gc.freeze()

    async def open(self, name: str, agent: int, url: str, token: str) -> None:
        ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                      compression=None, open_timeout=30, max_size=None)
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello":
            raise RuntimeError(f"{name}: agent {agent}'s first message was {hello!r}, not hello")
        self.hellos[name][agent] = int(hello["seq"])
        self.sockets.append(ws)
        self.readers.append(asyncio.create_task(self.listen(name, agent, ws)))

    async def listen(self, name: str, index: int, ws: Any) -> None:
        clock = time.perf_counter
        try:
            async for text in ws:
                received = clock()
                message = json.loads(text)
                kind, seq = str(message.get("type", "")), message.get("seq")
                if kind == "call.ringing":
                    after = time.time() - datetime.fromisoformat(message["ts"]).timestamp()
                    self.arrivals[name].append((str(message["call"]["provider_call_id"]), index, received, seq,
                                                after))
                elif kind.startswith(("call.", "task.", "history.")) and isinstance(seq, int):
                    self.arrivals[name].append(("", index, received, seq, 0.0))
        except websockets.ConnectionClosed:
            pass
        self.closed[name] += 1


def receivers_main(conn: Connection) -> None:
    asyncio.run(Receivers(conn).serve())


# === the sampler of pg_stat_activity, in its own process ==============================================

SAMPLE_SQL = """
SELECT datname, client_port, state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), left(query, 2000)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = ANY($1::text[])
"""


CALL_PATH = re.compile(r"\b(calls|call_events|agent_extensions|agent_messages|history_entries|history_links|tasks)\b"
                       r"|FROM agents WHERE|pg_advisory_xact_lock|pg_notify|^COMMIT")


def query_kind(state: str, query: str) -> str:
    """What a backend is busy with, by its state and its current (or, idle in a transaction, last) statement:
    `call` (a statement of the call path's write transaction: commhub/store/call_sql.py), `match` (the
    caller-ID read), `begun` (BEGIN or the pool's pre-ping `;`: a session whose kind shows with its next
    statement), `other` (token checks and other ORM reads, the lease and LISTEN connections), or `idle`."""
    if state == "idle":
        return "idle"
    if "phone_numbers" in query or query.startswith("SELECT p.kind"):
        return "match"
    if query.startswith(("BEGIN", ";")):
        return "begun"
    if "::" in query or "agent_tokens" in query:  # SQLAlchemy ORM/Core statements cast their parameters
        return "other"
    return "call" if CALL_PATH.search(query) else "other"


class Sampler:
    def __init__(self, conn: Connection, dsn: str, databases: list[str]) -> None:
        self.conn = conn
        self.dsn = dsn
        self.databases = databases
        self.samples = 0
        # (database, client port, state, wait event type, wait event, kind, statement) → samples
        self.counts: Counter[tuple[str, int, str, str, str, str, str]] = Counter()
        self.together: Counter[tuple[int, ...]] = Counter()  # client ports busy with a call transaction at once
        self.sessions: dict[str, int] = {}
        self.checks: dict[str, Counter[int]] = {}  # database → {token checks in flight in a sample: samples}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        db = await asyncpg.connect(self.dsn)
        task: asyncio.Task[None] | None = None
        try:
            while True:
                command, *_ = await loop.run_in_executor(None, self.conn.recv)
                reply: Any = ("ok",)
                if command == "pid":
                    reply = await db.fetchval("SELECT pg_backend_pid()")
                elif command == "start":
                    self.samples, self.counts, self.together, self.checks = 0, Counter(), Counter(), {}
                    self.sessions = await self.opened(db)
                    task = asyncio.create_task(self.sample(db))
                elif command == "take":
                    if task is not None:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                        task = None
                    opened = await self.opened(db)
                    reply = (self.samples, dict(self.counts), dict(self.together),
                             {name: opened[name] - self.sessions.get(name, 0) for name in opened},
                             {name: dict(found) for name, found in self.checks.items()})
                self.conn.send(reply)
                if command == "stop":
                    return
        finally:
            await db.close()

    async def opened(self, db: asyncpg.Connection) -> dict[str, int]:
        """Sessions opened so far, per database (PostgreSQL's statistics, flushed about once a second)."""
        await db.execute("SELECT pg_stat_clear_snapshot()")
        rows = await db.fetch("SELECT datname, sessions FROM pg_stat_database WHERE datname = ANY($1::text[])",
                              self.databases)
        return {name: int(sessions or 0) for name, sessions in rows}

    async def sample(self, db: asyncpg.Connection) -> None:
        """Samples at random intervals (uniform, SAMPLE_EVERY_S on average): the driver's schedule is periodic
        (at 100/s over two nodes a node gets an event every 20 ms), and samples in step with it would see
        a node always at the same point of its work."""
        loop = asyncio.get_running_loop()
        jitter = random.Random(SEED + 2)
        due = loop.time()
        while True:
            rows = await db.fetch(SAMPLE_SQL, self.databases)
            self.samples += 1
            calling = []
            checking: Counter[str] = Counter()
            for datname, port, state, wait_type, wait, query in rows:
                state, query = state or "", " ".join((query or "").split())
                kind = query_kind(state, query)
                self.counts[(datname, port or 0, state, wait_type, wait, kind, query[:60])] += 1
                if kind == "call":
                    calling.append(port or 0)
                if state != "idle" and "agent_tokens" in query:
                    checking[datname] += 1
            for datname in self.databases:
                self.checks.setdefault(datname, Counter())[checking[datname]] += 1
            if len(calling) > 1:
                self.together[tuple(sorted(calling))] += 1
            due += SAMPLE_EVERY_S * jitter.uniform(0.1, 1.9)
            await asyncio.sleep(max(0.0, due - loop.time()))


def sampler_main(conn: Connection, dsn: str, databases: list[str]) -> None:
    asyncio.run(Sampler(conn, dsn, databases).serve())


class Child(calls.ReceiverProcess):
    """A helper process spoken to over a pipe (calls.ReceiverProcess, with any main function)."""

    def __init__(self, target: Any, *args: Any, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=target, args=(child, *args), name=name, daemon=True)
        self.process.start()


# === the nodes and the configurations =================================================================

@dataclass(slots=True)
class Setup:
    """One configuration: its database, its nodes (calls.Target each) and where each agent's socket is."""

    name: str
    label: str
    database: str
    nodes: list[calls.Target]
    placement: list[int]  # agent index → index of the node its WebSocket is on
    last_seq: dict[int, int] = field(default_factory=dict)  # per agent, the last seq its socket got
    seen: set[str] = field(default_factory=set)  # call ids popped so far
    accepted: set[str] = field(default_factory=set)  # call ids whose POST was answered 200
    posts: int = 0
    doubles: int = 0
    late: int = 0  # pops that came after their step's deadline (counted missing there)
    seq_repeats: int = 0
    seq_gaps: int = 0
    other_changes: int = 0  # change messages that were not pops of ours


def node_config(out: Path, name: str, port: int, url: str, secret: str) -> Path:
    path = out / f"cluster-{name}.toml"
    path.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n[database]\nurl = "{url}"\n\n'
                    f'[cluster]\nnode_name = "{name}"\n\n[logging]\nlevel = "warning"\n\n'
                    f'[[sources]]\nname = "{SOURCE}"\nadapter = "generic"\nsecret = "{secret}"\n'
                    "options = { require_signature = true }\n", encoding="utf-8")
    return path


def commhub_env() -> dict[str, str]:
    """This environment without COMMHUB_* and PG* settings: the child reads only the config it is given."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("COMMHUB_", "PG"))}


def start_node(config: Path, out: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(COMMHUB), "serve", "--config", str(config)], env=commhub_env(), cwd=out,
                            stdout=log, stderr=subprocess.STDOUT)


# === preparing the database ===========================================================================

def agent_name(index: int) -> str:
    return f"bench-agent-{index + 1:03d}"


async def agent_tokens(url: str, count: int) -> list[str]:
    """Create the agents (extension 2001 for the first, …) and issue each a token."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        tokens = []
        async with session_factory(engine)() as session, session.begin():
            for index in range(count):
                agent = await agent_store.create_agent(session, agent_name(index),
                                                       extensions=[str(FIRST_EXTENSION + index)])
                tokens.append(await agent_store.issue_token(session, agent, label=TOKEN_LABEL))
        return tokens
    finally:
        await engine.dispose()


async def stored_numbers(dsn: str, count: int) -> tuple[list[str], dict[str, int]]:
    """A random sample of stored numbers (E.164), and the row counts of the customer tables."""
    db = await asyncpg.connect(dsn)
    try:
        rows = await db.fetch("SELECT e164 FROM phone_numbers WHERE e164 IS NOT NULL ORDER BY random() LIMIT $1",
                              count)
        counts = {table: int(await db.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names
                  for table in ("contacts", "organizations", "phone_numbers")}
        return [row[0] for row in rows], counts
    finally:
        await db.close()


async def admin(dsn: str, *statements: str) -> Any:
    db = await asyncpg.connect(dsn)
    try:
        result = None
        for statement in statements:
            result = await db.fetchval(statement)
        return result
    finally:
        await db.close()


@dataclass(slots=True)
class Prepared:
    tokens: list[str]
    callers: list[str]
    counts: dict[str, int]
    import_summary: str
    seconds: dict[str, float]
    postgres: str
    postgres_settings: str


def prepare(pg: PostgresCluster, out: Path, contacts: int, agents: int, secret: str) -> Prepared:
    timing: dict[str, float] = {}
    started = time.perf_counter()
    url = pg.create_database("bench_one")
    csv_path = out / "cluster-contacts.csv"
    write_import_csv(csv_path, contacts, max(1, contacts // CONTACTS_PER_COMPANY))
    timing["csv"] = time.perf_counter() - started
    started = time.perf_counter()
    config = node_config(out, "import", free_port(), url, secret)
    done = subprocess.run([str(COMMHUB), "contacts", "import", str(csv_path), "--quiet", "--config", str(config)],
                          env=commhub_env(), cwd=out, capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"commhub contacts import failed ({done.returncode}): {done.stdout[-500:]}"
                           f"{done.stderr[-1500:]}")
    summary = next((line for line in done.stdout.splitlines() if line.startswith(csv_path.name)),
                   done.stdout.strip()[-300:])
    timing["import"] = time.perf_counter() - started
    started = time.perf_counter()
    tokens = asyncio.run(agent_tokens(url, agents))
    numbers, counts = asyncio.run(stored_numbers(pg.dsn("bench_one"), CALLER_POOL))
    rng = random.Random(SEED)
    callers = [pbx_text(e164, rng) for e164 in numbers]
    timing["agents"] = time.perf_counter() - started
    started = time.perf_counter()
    version = asyncio.run(admin(pg.dsn("postgres"), "CREATE DATABASE bench_two TEMPLATE bench_one",
                                "SHOW server_version"))
    settings = asyncio.run(postgres_settings(pg.dsn("postgres")))
    timing["copy"] = time.perf_counter() - started
    return Prepared(tokens, callers, counts, summary, timing, f"PostgreSQL {version}", settings)


async def postgres_settings(dsn: str) -> str:
    db = await asyncpg.connect(dsn)
    try:
        rows = await db.fetch("SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name",
                              ["fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
                               "max_connections"])
        return ", ".join(f"{name}={setting}" for name, setting in rows)
    finally:
        await db.close()


async def postmaster_pid(dsn: str) -> int:
    directory = await admin(dsn, "SHOW data_directory")
    return int(Path(directory, "postmaster.pid").read_text().split("\n", 1)[0])


# === CPU of every process =============================================================================

@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds over a step, per process (group); machine: share of all cores busy, any process.
    `server`, `generator` and `receivers` (shares of one core) are what bench/calls.py's code reads."""

    wall: float
    nodes: dict[str, float]  # node name → CPU seconds
    postgres: float  # every process of the private cluster but the sampler's backend
    driver: float
    sockets: float  # the WebSocket clients' process
    sampler: float  # the sampler's process and its backend
    idle_nodes: float  # the other configuration's nodes
    machine: float

    def share(self, seconds: float) -> float:
        return seconds / self.wall if self.wall else 0.0

    @property
    def outside(self) -> float:
        """CPU seconds of work outside this benchmark (other processes, the kernel's own), by /proc/stat."""
        ours = sum(self.nodes.values()) + self.postgres + self.driver + self.sockets + self.sampler + self.idle_nodes
        return max(0.0, self.machine * (os.cpu_count() or 1) * self.wall - ours)

    @property
    def server(self) -> float:
        return self.share(sum(self.nodes.values()))

    @property
    def generator(self) -> float:
        return self.share(self.driver)

    @property
    def receivers(self) -> float:
        return self.share(self.sockets)


class CpuMeter:
    def __init__(self, nodes: dict[str, int], idle: dict[str, int], others: dict[str, int], postmaster: int,
                 sampler_backend: int) -> None:
        self.nodes = {name: psutil.Process(pid) for name, pid in nodes.items()}
        self.idle = {name: psutil.Process(pid) for name, pid in idle.items()}
        self.others = {name: psutil.Process(pid) for name, pid in others.items()}
        self.postmaster = psutil.Process(postmaster)
        self.sampler_backend = sampler_backend
        self.started = time.perf_counter()
        self.counters = cpu_counters()
        self.before = self.times()

    @staticmethod
    def busy(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return times.user + times.system

    def times(self) -> dict[str, float]:
        found = {name: self.busy(process) for name, process in (self.nodes | self.idle | self.others).items()}
        # PostgreSQL: the postmaster, the backends it has reaped (connections that closed: the pool's overflow
        # comes and goes under load) and those alive now; the sampler's own backend on its own.
        postmaster = self.postmaster.cpu_times()
        total = postmaster.user + postmaster.system + postmaster.children_user + postmaster.children_system
        found["pg:sampler"] = 0.0
        for process in self.postmaster.children():
            key = "pg:sampler" if process.pid == self.sampler_backend else "pg:others"
            found[key] = found.get(key, 0.0) + self.busy(process)
        found["postgres"] = total + found.pop("pg:others", 0.0)
        return found

    def stop(self) -> Cpu:
        wall = time.perf_counter() - self.started
        after = self.times()
        used = {key: after[key] - self.before.get(key, 0.0) for key in after}
        return Cpu(wall, {name: used[name] for name in self.nodes}, used["postgres"], used["driver"], used["sockets"],
                   used["sampler"] + used["pg:sampler"], sum(used[name] for name in self.idle),
                   cpu_window(self.counters).machine_busy)


# === what the sampler saw, per node ===================================================================

@dataclass(frozen=True, slots=True)
class NodeWaits:
    open_share: float  # of the samples, the share in which this node's call transaction was open
    split: dict[str, float]  # WAIT_NAMES key → share of the samples (adds up to open_share)
    match_share: float  # a caller-ID read running
    others: dict[str, int]  # wait events under "other", with their sample counts
    starting_share: float  # a session of this node between checkout and its first statement (pre-ping, BEGIN)
    overlap_share: float  # samples with two or more of this node's backends in a call transaction
    idle_after: dict[str, int]  # idle in a call transaction: the statement before, with sample counts


@dataclass(frozen=True, slots=True)
class Waits:
    samples: int
    nodes: dict[str, NodeWaits]
    unmapped: int  # busy samples of backends whose client port no node owned (connections that came and went)
    statements: dict[str, dict[str, int]]  # kind → its most frequent busy statements (first 60 characters)


def client_ports(nodes: dict[str, int], pg_port: int) -> dict[int, str]:
    """client port → node name, for every connection a node holds to PostgreSQL."""
    ports = {}
    for name, pid in nodes.items():
        try:
            for connection in psutil.Process(pid).net_connections(kind="tcp"):
                if connection.raddr and connection.raddr.port == pg_port:
                    ports[connection.laddr.port] = name
        except psutil.Error:
            continue
    return ports


def waits_of(samples: int, counts: dict[tuple[str, int, str, str, str, str, str], int],
             together: dict[tuple[int, ...], int], ports: dict[int, str], nodes: list[str]) -> Waits:
    split: dict[str, Counter[str]] = {name: Counter() for name in nodes}
    others: dict[str, Counter[str]] = {name: Counter() for name in nodes}
    idle_after: dict[str, Counter[str]] = {name: Counter() for name in nodes}
    overlap: Counter[str] = Counter()
    for busy, count in together.items():
        for name, many in Counter(ports.get(port) for port in busy).items():
            if name is not None and many > 1:
                overlap[name] += count
    matches: Counter[str] = Counter()
    starting: Counter[str] = Counter()
    statements: dict[str, Counter[str]] = {}
    unmapped = 0
    for (_db, port, state, wait_type, wait, kind, statement), count in counts.items():
        if kind == "idle":
            continue
        statements.setdefault(kind, Counter())[f"{state}: {statement}"] += count
        node = ports.get(port)
        if node not in split:
            unmapped += count
            continue
        if kind == "match":
            matches[node] += count if state == "active" else 0
            continue
        if kind == "begun":
            starting[node] += count
            continue
        if kind != "call":
            continue
        event = f"{wait_type}/{wait}" if wait_type else ""
        if state.startswith("idle in transaction") or event == "Client/ClientRead":
            key = "node"
            idle_after[node][statement] += count
        elif not event:
            key = "running"
        elif event in WAIT_NAMES:
            key = event
        else:
            key = "other"
            others[node][event] += count
        split[node][key] += count
    per = max(1, samples)
    return Waits(samples, {name: NodeWaits(sum(split[name].values()) / per,
                                           {key: split[name][key] / per for key in WAIT_NAMES},
                                           matches[name] / per, dict(others[name]), starting[name] / per,
                                           overlap[name] / per,
                                           dict(idle_after[name].most_common(8))) for name in nodes}, unmapped,
                 {kind: dict(found.most_common(15)) for kind, found in statements.items()})


# === one step: a rate for some seconds against one configuration =======================================

@dataclass(frozen=True, slots=True)
class Step(calls.Step):
    """calls.Step, with what only a cluster shows: doubles, seq problems, pops that crossed nodes."""

    doubles: int = 0
    seq_repeats: int = 0
    seq_gaps: int = 0
    crossed: int = 0  # pops committed on one node and pushed by the other
    local_p99_ms: float = 0.0
    crossed_p99_ms: float = 0.0
    staged_p50_ms: float = 0.0  # from the POST to the message staged in the node's transaction
    staged_p99_ms: float = 0.0
    pushed_p50_ms: float = 0.0  # from staged to the socket: the rest of the transaction, commit, NOTIFY, push
    pushed_p99_ms: float = 0.0
    posted: dict[str, int] = field(default_factory=dict)  # node → POSTs
    sessions: int = 0  # PostgreSQL sessions opened during the step (the pools' overflow connections)
    checks_max: int = 0  # token checks (agent_tokens) in flight at once in a sample, at most
    checks_share: float = 0.0  # of the samples, those with a token check in flight
    worst_second_ms: float = 0.0  # the median latency of the worst second (by POST time) of the step
    worst_second_at: float = 0.0  # when that second began, seconds into the step
    waits: Waits | None = None

    def verdict(self) -> str | None:
        reasons = []
        if self.doubles or self.seq_repeats or self.seq_gaps:
            reasons.append(f"{self.doubles} pops doubled, seqs: {self.seq_repeats} repeated, {self.seq_gaps} skipped")
        base = calls.Step.verdict(self)
        return "; ".join(reasons + ([base] if base else [])) or None


@dataclass(slots=True)
class Firing(calls.Firing):
    accepted: set[str] = field(default_factory=set)  # call ids answered 200


class Driver(calls.Driver):
    """calls.Driver's POSTs and pacing; each event goes to one node of a configuration (alternately),
    and every pop is checked against the agent's seqs."""

    def __init__(self, receivers: Child, sampler: Child, pg_port: int, postmaster: int, seed: int) -> None:
        super().__init__(receivers, seed)  # type: ignore[arg-type]
        self.sampler = sampler
        self.pg_port = pg_port
        self.postmaster = postmaster
        self.sampler_backend = 0
        self.setups: list[Setup] = []
        self.trace: IO[str] | None = None  # one line per step: (POST offset, latency, staged → socket, node, across)

    async def start(self, setups: list[Setup]) -> None:
        self.sampler_backend = await self.sampler.ask("pid")
        self.setups = setups
        for setup in setups:
            hellos = await self.receivers.ask("hellos", setup.name)
            setup.last_seq = {int(agent): seq for agent, seq in hellos.items()}

    def plan(self, setup: Setup, count: int) -> list[tuple[calls.Event, int]]:
        self.steps += 1
        agents = len(setup.placement)
        return [(setup.nodes[i % len(setup.nodes)].event(f"{self.run}-{self.steps}-{i}", self.rng.randrange(agents),
                                                         self.rng), i % len(setup.nodes)) for i in range(count)]

    async def step(self, setup: Setup, rate: float, seconds: float) -> Step:  # type: ignore[override]
        plan = self.plan(setup, max(1, round(rate * seconds)))
        marks = (setup.doubles, setup.seq_repeats, setup.seq_gaps)
        stragglers, closed_before = await self.receivers.ask("drain", setup.name)
        self.account(setup, stragglers)  # pops of an earlier step that came after its deadline: checked, not timed
        gc.collect()
        pids = {node.name: node.process.pid for node in setup.nodes}
        ports = client_ports(pids, self.pg_port)
        idle = {node.name: node.process.pid for other in self.setups if other is not setup for node in other.nodes}
        meter = CpuMeter(pids, idle, {"driver": os.getpid(), "sockets": self.receivers.pid,
                                      "sampler": self.sampler.pid}, self.postmaster, self.sampler_backend)
        await self.sampler.ask("start")
        firing = await self.fire_plan(setup, plan, rate)
        arrived, closed = await self.collect_step(setup, firing)
        setup.accepted |= firing.accepted
        setup.posts += len(firing.sent)
        samples, counts, together, sessions, checks = await self.sampler.ask("take")
        cpu = meter.stop()
        ports |= client_ports(pids, self.pg_port)
        await asyncio.sleep(SETTLE_S)
        base = calls.summarize(setup.name, rate, seconds, firing, {k: v[:2] for k, v in arrived.items()},
                               closed - closed_before, cpu)  # type: ignore[arg-type]
        node_of = {event.call_id: setup.nodes[node].name for event, node in plan}
        local, crossed, staged, pushed = [], [], [], []
        first = min((sent for sent, _ in firing.sent.values()), default=0.0)
        trace = []
        for call_id, (received, agent, _, after) in arrived.items():
            started, _ = firing.sent[call_id]
            is_crossed = setup.nodes[setup.placement[agent]].name != node_of[call_id]
            (crossed if is_crossed else local).append((received - started) * 1000)
            staged.append((received - started - after) * 1000)
            pushed.append(after * 1000)
            trace.append((round((started - first) * 1000, 2), round((received - started) * 1000, 2),
                          round(after * 1000, 2), node_of[call_id], is_crossed))
        seconds_of: dict[int, list[float]] = {}
        for offset, latency, *_ in trace:
            seconds_of.setdefault(int(offset // 1000), []).append(latency)
        worst = max(((percentile(values, 0.5), float(second)) for second, values in seconds_of.items()),
                    default=(0.0, 0.0))
        if self.trace is not None:
            self.trace.write(json.dumps({"configuration": setup.name, "rate": rate, "seconds": seconds,
                                         "pops": sorted(trace)}) + "\n")
        step = Step(**{f.name: getattr(base, f.name) for f in fields(calls.Step)},
                    doubles=setup.doubles - marks[0], seq_repeats=setup.seq_repeats - marks[1],
                    seq_gaps=setup.seq_gaps - marks[2], crossed=len(crossed),
                    local_p99_ms=percentile(local, 0.99) if local else 0.0,
                    crossed_p99_ms=percentile(crossed, 0.99) if crossed else 0.0,
                    staged_p50_ms=percentile(staged, 0.5) if staged else 0.0,
                    staged_p99_ms=percentile(staged, 0.99) if staged else 0.0,
                    pushed_p50_ms=percentile(pushed, 0.5) if pushed else 0.0,
                    pushed_p99_ms=percentile(pushed, 0.99) if pushed else 0.0,
                    posted=dict(Counter(setup.nodes[node].name for _, node in plan)),
                    sessions=sessions.get(setup.database, 0),
                    checks_max=max(checks.get(setup.database, {0: 1})),
                    checks_share=sum(n for k, n in checks.get(setup.database, {}).items() if k) / max(1, samples),
                    worst_second_ms=worst[0], worst_second_at=worst[1],
                    waits=waits_of(samples, counts, together, ports, list(pids)))
        report_extra(step)
        return step

    def account(self, setup: Setup, arrivals: list[tuple[str, int, float, int, float]],
                sent: dict[str, tuple[float, int]] | None = None) -> list[tuple[str, int, float, int, float]]:
        """Check each arrival's seq against its agent's last one; returns the first pops of calls in `sent`."""
        fresh = []
        for call_id, agent, received, seq, after in arrivals:
            last = setup.last_seq.get(agent, 0)
            if seq <= last:
                setup.seq_repeats += 1
            else:
                setup.seq_gaps += seq - last - 1
                setup.last_seq[agent] = seq
            if not call_id:
                setup.other_changes += 1
                continue
            if call_id in setup.seen:
                setup.doubles += 1
                continue
            setup.seen.add(call_id)
            if sent is not None and call_id in sent:
                fresh.append((call_id, agent, received, seq, after))
            else:
                setup.late += 1
        return fresh

    @staticmethod
    async def post(client: aiohttp.ClientSession, url: str, event: calls.Event, slot: float,  # type: ignore[override]
                   firing: Firing) -> None:
        """calls.Driver.post, noting which calls were answered 200 (their pops must come, however late)."""
        started = time.perf_counter()
        firing.sent[event.call_id] = (started, event.agent)
        firing.lags.append(started - slot)
        try:
            async with client.post(url, data=event.body, headers=event.headers) as response:
                await response.read()
                firing.answers[str(response.status)] += 1
                if response.status == 200:
                    firing.accepted.add(event.call_id)
        except asyncio.CancelledError:
            firing.answers["unanswered"] += 1
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            firing.answers[type(exc).__name__] += 1

    async def fire_plan(self, setup: Setup, plan: list[tuple[calls.Event, int]], rate: float) -> Firing:
        """calls.Driver.fire, each event to its own node."""
        firing, tasks = Firing(), set()
        clients = [self.client(node) for node in setup.nodes]
        urls = [node.url for node in setup.nodes]
        start = time.perf_counter() + 0.01
        for i, (event, node) in enumerate(plan):
            slot = start + i / rate
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 32 == 0:
                await asyncio.sleep(0)
            task = asyncio.create_task(self.post(clients[node], urls[node], event, slot, firing))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        firing.send_seconds = time.perf_counter() - start
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return firing

    async def collect_step(self, setup: Setup, firing: calls.Firing
                           ) -> tuple[dict[str, tuple[float, int, int, float]], int]:
        """Pops of this step's calls (perf_counter, agent, seq, seconds since staged), until every accepted POST
        has its pop or DRAIN_S has passed; every arrival is checked for doubles and seqs."""
        arrived: dict[str, tuple[float, int, int, float]] = {}
        expected = firing.answers.get("200", 0)
        deadline = time.perf_counter() + DRAIN_S
        while True:
            arrivals, closed = await self.receivers.ask("drain", setup.name)
            for call_id, agent, received, seq, after in self.account(setup, arrivals, firing.sent):
                arrived[call_id] = (received, agent, seq, after)
            if len(arrived) >= expected or time.perf_counter() > deadline:
                return arrived, closed
            await asyncio.sleep(0.1)


# === the run ==========================================================================================

@dataclass(slots=True)
class Run:
    steady: dict[str, Step] = field(default_factory=dict)
    searches: dict[str, calls.Search] = field(default_factory=dict)
    memory_mb: dict[str, tuple[float, float]] = field(default_factory=dict)  # node → (RSS, peak)
    startup_seconds: float = 0.0
    connect_seconds: float = 0.0
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # per setup: doubles, late, seq problems


async def measure(setups: list[Setup], receivers: Child, sampler: Child, tokens: list[str], pg_port: int,
                  postmaster: int, rate: float, seconds: float, step_seconds: float, ladder: tuple[int, ...],
                  refinements: int, trace: IO[str], connect_s: float) -> Run:
    run = Run()
    started = time.perf_counter()
    for setup in setups:
        for node in setup.nodes:
            await wait_healthy(node.process, node.base)
    run.startup_seconds = time.perf_counter() - started
    # Interleaved, so that both configurations' sockets (and their token checks) spread over the same time.
    sockets = [(setup.name, agent, setup.nodes[node].ws_url, tokens[agent])
               for agent in range(len(tokens)) for setup in setups for node in [setup.placement[agent]]]
    progress(f"connecting {len(sockets)} WebSocket clients over {connect_s:.0f} s")
    began = time.perf_counter()
    await receivers.ask("connect", sockets, connect_s)
    run.connect_seconds = time.perf_counter() - began
    async with Driver(receivers, sampler, pg_port, postmaster, SEED + 1) as driver:
        driver.trace = trace
        await driver.start(setups)
        for setup in setups:
            progress(f"{setup.label}: warm-up, {WARMUP_RATE:.0f} events/s for {WARMUP_S:.0f} s")
            warmup = await driver.step(setup, WARMUP_RATE, WARMUP_S)
            if warmup.failed_posts or warmup.lost:
                logs = ", ".join(str(node.log) for node in setup.nodes)
                raise RuntimeError(f"{setup.label} failed the warm-up ({warmup.verdict()}); logs: {logs}")
        for setup in setups:
            progress(f"{setup.label}: {rate:.0f} events/s for {seconds:.0f} s")
            step = run.steady[setup.name] = await driver.step(setup, rate, seconds)
            calls.report_step(step)
            run.searches[setup.name] = calls.Search(ladder)
            run.searches[setup.name].note(step)
        await calls.search(driver, setups, run.searches, step_seconds, refinements)  # type: ignore[arg-type]
        await asyncio.sleep(DRAIN_S)
        for setup in setups:  # the last pops of the run, however late
            driver.account(setup, (await receivers.ask("drain", setup.name))[0])
    for setup in setups:
        for node in setup.nodes:
            run.memory_mb[node.name] = memory_mb(node.process.pid)
        run.totals[setup.name] = {"posts": setup.posts, "accepted": len(setup.accepted), "pops": len(setup.seen),
                                  "never_popped": len(setup.accepted - setup.seen), "late": setup.late,
                                  "doubles": setup.doubles, "seq_repeats": setup.seq_repeats,
                                  "seq_gaps": setup.seq_gaps, "other_changes": setup.other_changes}
    return run


def report_extra(step: Step) -> None:
    """What calls.report_step (which follows) does not print."""
    cpu = cast(Cpu, step.cpu)
    lanes = ", ".join(f"{name} {waits.open_share:.0%}" + (f" (two at once {waits.overlap_share:.0%})"
                                                           if waits.overlap_share else "")
                      for name, waits in step.waits.nodes.items()) if step.waits else "-"
    progress(f"  {step.target} {step.rate:,.0f}/s: {step.crossed:,} pops across nodes; CPU: nodes "
             f"{' + '.join(pct(cpu.share(v)) for v in cpu.nodes.values())}, PostgreSQL {pct(cpu.share(cpu.postgres))}, "
             f"outside the benchmark {pct(cpu.share(cpu.outside))} of a core, machine {pct(cpu.machine)}; "
             f"{step.sessions} PostgreSQL sessions opened, up to {step.checks_max} token checks at once; worst "
             f"second's p50 {ms(step.worst_second_ms)} ms (at {step.worst_second_at:.0f} s); call transaction open: "
             f"{lanes}")


# === the report =======================================================================================

@dataclass(slots=True)
class Report:
    command: str
    contacts: int
    agents: int
    prepared: Prepared
    run: Run
    rate: float
    seconds: float
    step_seconds: float
    refinements: int
    started: datetime
    code: CodeState
    setups: list[Setup]
    logs: dict[str, dict[str, Any]]


ms = calls.ms


def pct(value: float) -> str:
    return f"{value:.0%}"


def summary_section(report: Report) -> list[str]:
    one, two = report.run.searches[ONE], report.run.searches[TWO]
    s1, s2 = report.run.steady[ONE], report.run.steady[TWO]
    totals = report.run.totals
    ratio = two.highest / one.highest if one.highest else math.inf
    return [
        "### Result", "",
        "| | one node | two nodes | two ÷ one |", "| --- | ---: | ---: | ---: |",
        f"| highest sustained rate (p99 < {P99_LIMIT_MS:.0f} ms, nothing lost or doubled) | "
        f"**{one.highest:,.0f}/s** | **{two.highest:,.0f}/s** | {calls.times(ratio)} |",
        f"| p50 / p99 / max at {report.rate:.0f} events/s (ms) | {ms(s1.p50_ms)} / {ms(s1.p99_ms)} / {ms(s1.max_ms)} | "
        f"{ms(s2.p50_ms)} / {ms(s2.p99_ms)} / {ms(s2.max_ms)} | "
        f"{calls.times(s2.p99_ms / s1.p99_ms) if s1.p99_ms else '–'} (p99) |",
        f"| pops across nodes at {report.rate:.0f}/s | – | {s2.crossed / max(1, s2.popped):.1%} "
        f"(p99 {ms(s2.crossed_p99_ms)} ms; on the node posted to: {ms(s2.local_p99_ms)} ms) | |",
        "| whole run, warm-up included: POSTs / answered 200 / popped | "
        + " | ".join(f"{totals[name]['posts']:,} / {totals[name]['accepted']:,} / {totals[name]['pops']:,}"
                     for name in (ONE, TWO)) + " | |",
        "| whole run: answered 200 but never popped / popped after their step's deadline / popped twice / "
        "seqs repeated / seqs skipped | "
        + " | ".join(f"**{totals[name]['never_popped']}** / {totals[name]['late']} / {totals[name]['doubles']} / "
                     f"{totals[name]['seq_repeats']} / {totals[name]['seq_gaps']}" for name in (ONE, TWO)) + " | |",
        "",
    ]


def per_event(step: Step) -> dict[str, float]:
    """CPU milliseconds per event offered, by process group, and the CPU ceilings they imply."""
    cpu = cast(Cpu, step.cpu)
    events = max(1, step.sent)
    found = {"nodes": sum(cpu.nodes.values()) / events * 1000, "postgres": cpu.postgres / events * 1000,
             "driver": (cpu.driver + cpu.sockets) / events * 1000, "sampler": cpu.sampler / events * 1000}
    found["all"] = sum(found.values())
    # A node is one process with one event loop: at most one core. The nodes share the events evenly.
    found["node_ceiling"] = len(cpu.nodes) / found["nodes"] * 1000 if found["nodes"] else math.inf
    found["machine_ceiling"] = (os.cpu_count() or 1) / found["all"] * 1000 if found["all"] else math.inf
    return found


def steady_section(report: Report) -> list[str]:
    lines = [f"### 1. {report.rate:.0f} events/s for {report.seconds:.0f} s", "",
             "Latency from just before the POST to the pop on the agent's socket (ms); a pop not there "
             f"{DRAIN_S:.0f} s after the last POST counts as infinitely late. \"across\": pops committed on one "
             "node and pushed by the other. \"staged\": the moment the node's transaction numbered the message "
             "(its `ts`); from the POST to then is the node taking the event in (HTTP, signature, caller-ID "
             "match, waiting for its turn, the transaction's first statements); from then to the socket is "
             "the rest of the transaction, the commit, NOTIFY, the listening node's push.", "",
             "| configuration | events | popped (across) | missing / failed / doubled | p50 | p99 | max | p99 across "
             "/ on the node posted to | POST → staged p50 / p99 | staged → socket p50 / p99 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for setup in report.setups:
        s = report.run.steady[setup.name]
        cross = f"{ms(s.crossed_p99_ms)} / {ms(s.local_p99_ms)}" if s.crossed else f"– / {ms(s.local_p99_ms)}"
        lines.append(f"| {setup.label} | {s.sent:,} | {s.popped:,} ({s.crossed:,}) | {s.lost} / {s.failed_posts} / "
                     f"{s.doubles} | {ms(s.p50_ms)} | **{ms(s.p99_ms)}** | {ms(s.max_ms)} | {cross} | "
                     f"{ms(s.staged_p50_ms)} / {ms(s.staged_p99_ms)} | {ms(s.pushed_p50_ms)} / {ms(s.pushed_p99_ms)} |")
    lines += ["", "CPU seconds over the measured window (sending, then waiting for the last pops), per process; "
              "PostgreSQL is every process of the private cluster (backends, WAL writer, …) but the sampler's "
              "backend; \"outside the benchmark\": the machine's busy time (/proc/stat) less all of the "
              "benchmark's processes, i.e. other work on the machine. Per event: CPU milliseconds per event "
              "offered. The ceilings are arithmetic on these "
              "figures, not measurements: a node is one event loop, so it can use at most one core (the nodes "
              "share the events evenly); all processes together at most the machine's "
              f"{os.cpu_count()} cores.", "",
              "| configuration | window | CPU s: node(s) | PostgreSQL | driver (POSTs + sockets) | sampler | idle "
              "configuration's nodes | outside the benchmark | machine busy | ms per event: nodes | PostgreSQL | "
              "driver | all | ceiling: a core per node | ceiling: all cores |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: |"]
    for setup in report.setups:
        s = report.run.steady[setup.name]
        cpu = cast(Cpu, s.cpu)
        e = per_event(s)
        lines.append(f"| {setup.label} | {cpu.wall:.1f} s | "
                     f"{' + '.join(f'{cpu.nodes[node.name]:.1f}' for node in setup.nodes)} | {cpu.postgres:.1f} | "
                     f"{cpu.driver:.1f} + {cpu.sockets:.1f} | {cpu.sampler:.1f} | {cpu.idle_nodes:.1f} | "
                     f"{cpu.outside:.1f} | {pct(cpu.machine)} | "
                     f"{ms(e['nodes'])} | {ms(e['postgres'])} | {ms(e['driver'])} | {ms(e['all'])} | "
                     f"{e['node_ceiling']:,.0f}/s | {e['machine_ceiling']:,.0f}/s |")
    return lines + [""]


def search_section(report: Report) -> list[str]:
    lines = [f"### 2. The highest sustained rate ({report.step_seconds:.0f} s per step)", "",
             f"A rate is sustained when p99 < {P99_LIMIT_MS:.0f} ms, no pop is lost or doubled, every seq follows "
             f"the last, every POST gets 200 and the driver keeps its schedule (POST start lag p99 ≤ "
             f"{MAX_LAG_MS:.0f} ms). Each configuration climbs the ladder from the {report.rate:.0f} events/s run "
             f"to its first failure (failing there, it halves the rate until one holds), then {report.refinements} "
             "step(s) halve the gap; the configurations take turns. \"Worst second\": the median latency of the "
             "pops posted in the step's worst second, and when it began. CPU as a share of one core. \"Sessions "
             "opened\": new PostgreSQL connections during the step (pg_stat_database: a node's pool keeps 5 and "
             "opens up to 10 more when they run out, closing those again); \"token checks at once\": the most "
             "`agent_tokens` queries in flight in one sample (each socket re-checks its token every "
             f"`[push] credential_check_seconds`, {CHECK_PERIOD_S:.0f} s, at most, after a random half to all of "
             "it); \"open\": the share of the step each node's call transaction "
             "was open (PostgreSQL's view).", "",
             "| configuration | rate /s | events | p50 | p99 | p99 POST → staged / staged → socket | "
             "missing / failed / doubled | start lag p99 | worst second: p50 (at) | CPU nodes | PostgreSQL | "
             "driver | outside the benchmark | machine busy | transaction open | sessions opened / token checks at "
             "once | verdict |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
             "| ---: | --- |"]
    for setup in report.setups:
        for s in sorted(cast(list[Step], report.run.searches[setup.name].steps), key=lambda step: step.rate):
            cpu = cast(Cpu, s.cpu)
            opened = ", ".join(pct(w.open_share) for w in s.waits.nodes.values()) if s.waits else "–"
            nodes = " + ".join(pct(cpu.share(v)) for v in cpu.nodes.values())
            lines.append(f"| {setup.label} | {s.rate:,.0f} | {s.sent:,} | {ms(s.p50_ms)} | {ms(s.p99_ms)} | "
                         f"{ms(s.staged_p99_ms)} / {ms(s.pushed_p99_ms)} | "
                         f"{s.lost:,} / {s.failed_posts:,} / {s.doubles} | {ms(s.lag_p99_ms)} | "
                         f"{ms(s.worst_second_ms)} ({s.worst_second_at:.0f} s) | {nodes} | "
                         f"{pct(cpu.share(cpu.postgres))} | {pct(cpu.generator)} + {pct(cpu.receivers)} | "
                         f"{pct(cpu.share(cpu.outside))} | {pct(cpu.machine)} | {opened} | "
                         f"{s.sessions:,} / {s.checks_max} | {s.verdict() or 'sustained'} |")
    lines.append("")
    for setup in report.setups:
        found = report.run.searches[setup.name]
        limit = found.limit
        why = f"first failure at {limit.rate:,.0f}/s: {limit.verdict()}" if limit else "no step failed"
        lines.append(f"- **{setup.label}: {found.highest:,.0f} events/s** ({why})")
    return lines + [""]


def waits_table(title: str, steps: list[tuple[str, Step | None]]) -> list[str]:
    lines = [title, "", "| configuration | rate /s | node | transaction open | ms per event | "
             + " | ".join(WAIT_NAMES.values()) + " | sessions starting | caller-ID reads running | node CPU | "
             "samples |",
             "| --- | ---: | --- | ---: | ---: | " + " | ".join("---:" for _ in WAIT_NAMES) + " | ---: | ---: | ---: "
             "| ---: |"]
    for label, step in steps:
        if step is None or step.waits is None:
            continue
        cpu = cast(Cpu, step.cpu)
        for node, waits in step.waits.nodes.items():
            each = waits.open_share * cpu.wall / max(1, step.posted.get(node, 0)) * 1000
            lines.append(f"| {label} | {step.rate:,.0f} | {node} | **{pct(waits.open_share)}** | {ms(each)} | "
                         + " | ".join(pct(waits.split[key]) for key in WAIT_NAMES)
                         + f" | {pct(waits.starting_share)} | {pct(waits.match_share)} | "
                         f"{pct(cpu.share(cpu.nodes[node]))} | {step.waits.samples:,} |")
    return lines + [""]


def limit_section(report: Report) -> list[str]:
    lines = ["### 3. Where the time goes, and where the limit is", "",
             f"`pg_stat_activity` sampled at random moments, every {SAMPLE_EVERY_S * 1000:.0f} ms on average, "
             "during each step (the driver's schedule is periodic: regular samples could fall in step with it); "
             "each client "
             "backend is attributed to its node by its client port. A node runs its call transactions one at a "
             "time (`CallDatabase`'s lock), so \"transaction open\" is how busy that one lane was: near 100 % it "
             "takes no more events whatever the cores do. The columns after it split the open time: the "
             "backend running a statement; idle in the transaction, i.e. waiting for the node to send the next "
             "statement (the node's Python, its event loop busy with other work, the round trip); waiting for "
             "an agent's advisory lock (seq numbering) or for the lock PostgreSQL takes at commit to put a "
             "transaction's NOTIFY in the queue in commit order; anything else. Shares of the step's wall time; "
             "\"ms per event\": the open time divided by the events posted to that node. \"Sessions starting\": "
             "the node's backends between the pool's checkout and their first statement (the pre-ping `;`, "
             "`BEGIN`), whose kind a sample cannot tell yet: the call transaction's start is there (inside the "
             "node's lock), and so are caller-ID reads and token checks; so \"open\" is a lower bound of the "
             "lane's occupation and \"open\" + \"starting\" an upper one.", ""]

    def at(steps: dict[str, Step | None]) -> list[tuple[str, Step | None]]:
        return [(setup.label, steps.get(setup.name)) for setup in report.setups]

    searches = report.run.searches
    highest = {name: max((s for s in search.steps if s.verdict() is None), key=lambda s: s.rate, default=None)
               for name, search in searches.items()}
    lines += waits_table(f"At {report.rate:.0f} events/s:", at(dict(report.run.steady)))
    lines += waits_table("At the highest sustained rate:", at(highest))  # type: ignore[arg-type]
    lines += waits_table("At the first rate not sustained:",
                         at({name: search.limit for name, search in searches.items()}))  # type: ignore[misc]
    lines += findings(report)
    return lines


def findings(report: Report) -> list[str]:
    """What the figures say, in measured terms: the CPU budget of the fixed-rate run, then each
    configuration's first failed step."""
    lines = ["What the figures say:", ""]
    for setup in report.setups:
        steady = report.run.steady[setup.name]
        e = per_event(steady)
        found = report.run.searches[setup.name]
        lines.append(f"- {setup.label}, at {report.rate:.0f}/s: {ms(e['nodes'])} ms of node CPU, "
                     f"{ms(e['postgres'])} ms of PostgreSQL CPU and {ms(e['driver'])} ms of the driver's per event; "
                     f"at that cost a core per node allows ≈ {e['node_ceiling']:,.0f} events/s and the machine's "
                     f"cores ≈ {e['machine_ceiling']:,.0f}/s (sustained: {found.highest:,.0f}/s).")
        step = cast("Step | None", found.limit)
        if step is None:
            lines.append(f"  - no step failed up to {found.highest:,.0f}/s.")
            continue
        cpu = cast(Cpu, step.cpu)
        parts = [f"at {step.rate:,.0f}/s, the first rate not sustained, the machine was {pct(cpu.machine)} busy; "
                 f"the node(s) used {' + '.join(pct(cpu.share(v)) for v in cpu.nodes.values())} of a core, "
                 f"PostgreSQL {pct(cpu.share(cpu.postgres))}, the driver {pct(cpu.generator)} + "
                 f"{pct(cpu.receivers)}, the sampler {pct(cpu.share(cpu.sampler))}"]
        if step.waits:
            for node, waits in step.waits.nodes.items():
                inside = waits.open_share or 1.0
                parts.append(f"{node}'s call transaction was open {pct(waits.open_share)} of the time (its sessions "
                             f"starting another {pct(waits.starting_share)}), the open time "
                             f"{pct(waits.split['node'] / inside)} waiting for the node, "
                             f"{pct(waits.split['running'] / inside)} running in PostgreSQL, "
                             f"{pct(waits.split['Lock/advisory'] / inside)} on advisory locks, "
                             f"{pct(waits.split['Lock/object'] / inside)} on NOTIFY's commit lock")
        lines.append("  - " + "; ".join(parts) + ".")
        lines.extend(f"  - {sentence}" for sentence in verdicts(step))
    return lines + [""]


SATURATED = 0.90  # a core, the machine or a transaction lane this full is full
NOTABLE_LOCK = 0.10  # of the open time
DISTURBED = 0.15  # of one core: CPU used by work outside the benchmark
BURST_CHECKS = 10  # token checks in flight at once


def verdicts(step: Step) -> list[str]:
    """Measured statements about one step: disturbances first, then the fullest resources, where the p99 is,
    and the locks."""
    cpu = cast(Cpu, step.cpu)
    said = []
    if cpu.share(cpu.outside) >= DISTURBED:
        said.append(f"work outside the benchmark used {pct(cpu.share(cpu.outside))} of a core during this step: "
                    "the machine was not quiet, so this step's figures are disturbed")
    if step.driver_behind:
        said.append("the driver fell behind its schedule here: this step measures the driver, not commhub")
    if step.checks_max >= BURST_CHECKS:
        said.append(f"the agents' token checks came in a burst: up to {step.checks_max} in flight at once (in "
                    f"{pct(step.checks_share)} of the samples), {step.sessions} new PostgreSQL sessions opened (a "
                    "node's pool past its 5 connections); the step's worst second, from "
                    f"{step.worst_second_at:.0f} s on, had a median latency of {ms(step.worst_second_ms)} ms")
    fullness = [(cpu.machine, f"the machine's {os.cpu_count()} cores")]
    fullness += [(cpu.share(seconds), f"{node}'s process (of one core)") for node, seconds in cpu.nodes.items()]
    if step.waits:
        fullness += [(min(1.0, waits.open_share + waits.starting_share),
                      f"{node}'s one-at-a-time call transaction (open or its session starting)")
                     for node, waits in step.waits.nodes.items()]
    fullness.sort(key=lambda item: -item[0])
    said.append("fullest: " + ", ".join(f"{what} {pct(share)}" for share, what in fullness)
                + (" — full" if fullness[0][0] >= SATURATED else ""))
    if step.p99_popped_ms and not math.isinf(step.p99_popped_ms):
        before = step.staged_p99_ms / step.p99_popped_ms
        where = ("before the message was staged: in the node, queueing for its event loop and its one-at-a-time "
                 "call transaction" if before >= 0.5 else
                 "after the message was staged: the rest of the transaction, the commit, NOTIFY and the push")
        said.append(f"p99 {ms(step.p99_popped_ms)} ms, of which POST → staged {ms(step.staged_p99_ms)} ms and "
                    f"staged → socket {ms(step.pushed_p99_ms)} ms (p99 each): most of it {where}")
    if step.waits:
        for node, waits in step.waits.nodes.items():
            inside = waits.open_share or 1.0
            for key in ("Lock/advisory", "Lock/object"):
                if waits.split[key] / inside >= NOTABLE_LOCK:
                    said.append(f"{node}'s transactions spent {waits.split[key] / inside:.0%} of their open time "
                                f"waiting for {WAIT_NAMES[key]}")
    return said


def log_section(report: Report) -> list[str]:
    lines = ["### Node logs", ""]
    for name, found in report.logs.items():
        if not found["counts"]:
            lines.append(f"- {name}: no warnings or errors")
            continue
        counts = ", ".join(f"{event} × {count}" for event, count in sorted(found["counts"].items()))
        lines.append(f"- {name}: {counts}; first: `{found['first'][:300]}`")
    return lines + [""]


def setup_section(report: Report) -> list[str]:
    p = report.prepared
    run = report.run
    memory = ", ".join(f"{name} {rss:.0f} MB (peak {peak:.0f})" for name, (rss, peak) in run.memory_mb.items())
    connects = f"{run.connect_seconds:.0f} s"
    return [
        "### How it was measured", "",
        f"- PostgreSQL: {p.postgres}, a private cluster on loopback (tests/support/pgcluster.py) with the test "
        f"suite's settings ({p.postgres_settings}): commits do not wait for the disk, so a production "
        "server's WAL flush per commit is not in these figures.",
        f"- data: {p.counts['contacts']:,} contacts, {p.counts['organizations']:,} organizations, "
        f"{p.counts['phone_numbers']:,} numbers, loaded with `commhub contacts import` of bench/lookup.py's "
        f"generated CSV ({p.import_summary}); {report.agents} agents with extensions {FIRST_EXTENSION}–"
        f"{FIRST_EXTENSION + report.agents - 1}; `bench_two` is a copy of `bench_one`. Setup: CSV "
        f"{p.seconds['csv']:.1f} s, import {p.seconds['import']:.1f} s, agents {p.seconds['agents']:.1f} s, "
        f"copy {p.seconds['copy']:.1f} s.",
        "- nodes: `commhub serve --config cluster-<node>.toml` (logging at warning, `[cluster] node_name`, one "
        "signed generic source with `require_signature`); all three run all the time, the idle configuration "
        "keeping its sockets open (their token checks go on). Memory at the end: " + memory + ".",
        f"- driver: bench/calls.py's open loop, {calls.CONNECTIONS} keep-alive connections per node, events built "
        "and signed before each step; two nodes get the events alternately. WebSocket clients (`websockets` "
        f"{websockets.__version__}, compression off) in a second process, opened one after another, evenly "
        f"over {connects} (both configurations interleaved), as agents sign in over the day: each socket "
        f"re-checks its token after a random half to all of {CHECK_PERIOD_S:.0f} s "
        "(`--connect-seconds 0` opens them at once). Warm-up "
        f"{WARMUP_S:.0f} s at {WARMUP_RATE:.0f} events/s per configuration first, not counted.",
        "- checks over the whole run: each pop's call id at most once, each agent's seqs one after another "
        "from the hello on (every message these agents get is a pop of this run).",
        "- everything (three nodes, PostgreSQL, the driver's two processes, the sampler) shares the machine's "
        "2 cores: compare the two configurations of one run, not absolute figures across runs.", "",
    ]


def render(report: Report) -> str:
    head = [f"Measured {report.started:%Y-%m-%d %H:%M} UTC with `{report.command}`.", "", *machine_lines(),
            f"- {report.prepared.postgres}", f"- {report.code.describe()}", ""]
    changed = CodeState.now().changes_since(report.code)
    if changed is not None:
        head.insert(-1, f"- NOTE: commhub changed during this run; at its end: {changed}")
    body = (summary_section(report) + steady_section(report) + search_section(report) + limit_section(report)
            + log_section(report) + setup_section(report))
    return "\n".join(head + body).rstrip("\n")


def scan_log(path: Path) -> dict[str, Any]:
    """Warnings and errors a node logged: count per event, and the first line."""
    counts: Counter[str] = Counter()
    first = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            level = str(entry.get("level", ""))
            if level not in ("warning", "error", "critical"):
                continue
            counts[f"{level} {entry.get('event', '?')}"] += 1
        elif line.strip() and not line.startswith("commhub is starting on "):
            counts["non-JSON line"] += 1
        else:
            continue
        first = first or line.strip()
    return {"counts": dict(counts), "first": first}


def raw(report: Report) -> dict[str, Any]:
    def step(s: Step) -> dict[str, Any]:
        data = {f.name: getattr(s, f.name) for f in fields(Step) if f.name not in ("cpu", "waits")}
        data["cpu"] = asdict(s.cpu)  # type: ignore[call-overload]
        data["waits"] = asdict(s.waits) if s.waits else None
        data["verdict"] = s.verdict()
        return data
    return {"command": report.command, "started": report.started.isoformat(), "contacts": report.contacts,
            "agents": report.agents, "prepared": asdict(report.prepared) | {"tokens": len(report.prepared.tokens),
                                                                           "callers": len(report.prepared.callers)},
            "steady": {name: step(s) for name, s in report.run.steady.items()},
            "searches": {name: {"highest": search.highest, "failed_at": search.failed_at,
                                "steps": [step(s) for s in search.steps]}  # type: ignore[arg-type]
                         for name, search in report.run.searches.items()},
            "totals": report.run.totals, "memory_mb": report.run.memory_mb, "logs": report.logs}


# === main =============================================================================================

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_CONTACTS:,} contacts, {QUICK_AGENTS} agents, {QUICK_SECONDS:.0f} s "
                             f"at the fixed rate, {QUICK_STEP_SECONDS:.0f} s steps, a short ladder")
    parser.add_argument("--contacts", type=int, help=f"customers to import (default {CONTACTS:,})")
    parser.add_argument("--agents", type=int,
                        help=f"agents, and WebSocket clients per configuration (default {AGENTS})")
    parser.add_argument("--rate", type=float, default=RATE, help=f"the fixed rate, events/s (default {RATE:.0f})")
    parser.add_argument("--seconds", type=float, help=f"length of the fixed-rate run (default {SECONDS:.0f})")
    parser.add_argument("--step-seconds", type=float, help=f"length of a ladder step (default {STEP_SECONDS:.0f})")
    parser.add_argument("--connect-seconds", type=float, default=CHECK_PERIOD_S,
                        help="open the WebSockets evenly over this many seconds, as agents sign in over the day "
                             f"(default {CHECK_PERIOD_S:.0f}: one token-check period, which spreads the checks; 0: "
                             "all at once, and they check together)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out",
                        help="working directory: node configs and logs, the CSV, the report (default bench/out)")
    parser.add_argument("--docs", type=Path, help="also write the report into this file (docs/benchmarks.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    contacts = args.contacts or (QUICK_CONTACTS if args.quick else CONTACTS)
    agents = args.agents or (QUICK_AGENTS if args.quick else AGENTS)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else SECONDS)
    step_seconds = args.step_seconds or (QUICK_STEP_SECONDS if args.quick else STEP_SECONDS)
    refinements = 1 if args.quick else REFINEMENTS
    ladder = QUICK_LADDER if args.quick else LADDER
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started, code = datetime.now(UTC), CodeState.now()
    command = " ".join([".venv/bin/python", "bench/cluster.py", *(argv if argv is not None else sys.argv[1:])])
    secret = secrets.token_hex(32)

    with ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="commhub-bench-cluster-"))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        base.chmod(0o755)  # the postgres user (when run as root) must reach the cluster directory
        pg = PostgresCluster(base)
        progress("starting a private PostgreSQL")
        pg.start()
        stack.callback(pg.stop)
        progress(f"loading {contacts:,} contacts and {agents} agents into bench_one, copying it to bench_two")
        prepared = prepare(pg, out, contacts, agents, secret)
        progress(f"database ready in {sum(prepared.seconds.values()):.0f} s ({prepared.import_summary}); "
                 "starting three nodes")
        setups = []
        for name, label, count in ((ONE, "one node", 1), (TWO, "two nodes", 2)):
            url = f"postgresql+asyncpg://{pg.dsn(f'bench_{name}').split('://', 1)[1]}"
            nodes = []
            for index in range(1, count + 1):
                node_name, port = f"{name}-{index}", free_port()
                log_path = out / f"cluster-{node_name}.log"
                log = stack.enter_context(open(log_path, "wb"))
                process = start_node(node_config(out, node_name, port, url, secret), out, log)
                stack.callback(stop_server, process)
                nodes.append(calls.Target(node_name, node_name, f"http://127.0.0.1:{port}", f"/hooks/{SOURCE}",
                                          f"ws://127.0.0.1:{port}/ws", list(prepared.tokens), process, log_path,
                                          secret, prepared.callers))
            setups.append(Setup(name, label, f"bench_{name}", nodes, [agent % count for agent in range(agents)]))
        receivers = Child(receivers_main, name="bench-cluster-sockets")
        stack.callback(receivers.stop)
        sampler = Child(sampler_main, pg.dsn("postgres"), [setup.database for setup in setups],
                        name="bench-cluster-sampler")
        stack.callback(sampler.stop)
        postmaster = asyncio.run(postmaster_pid(pg.dsn("postgres")))
        trace = stack.enter_context(open(out / "cluster-steps.jsonl", "w", encoding="utf-8"))
        run = asyncio.run(measure(setups, receivers, sampler, prepared.tokens, pg.port, postmaster, args.rate,
                                  seconds, step_seconds, ladder, refinements, trace, args.connect_seconds))
        for setup in setups:
            for node in setup.nodes:
                stop_server(node.process)
        logs = {node.name: scan_log(node.log) for setup in setups for node in setup.nodes}
        report = Report(command, contacts, agents, prepared, run, args.rate, seconds, step_seconds, refinements,
                        started, code, setups, logs)
        publish("cluster", render(report), raw(report), out=out, docs=args.docs, heading=HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
