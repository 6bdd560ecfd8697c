"""Several real `commhub serve` processes ("nodes") on one private PostgreSQL, as a cluster runs in
production: each on its own loopback port with its own `[cluster] node_name`, all with the same
`[database] url`, the same phone-system source and, optionally, the same `[[mailboxes]]` entry on a
private Dovecot.

- `CommhubCluster` creates one database on a PostgreSQL cluster (the run's private `pg_cluster`, or
  one of its own), migrates it and adds an admin agent with one CLI run (`commhub agents add`), starts
  the nodes side by side, adds agents (over the API, with the admin's token), reads the database
  directly (asyncpg) and tells which node holds a mailbox (`/readyz`).
- `ClusterNode` is one node: `FaultyCommhub` (config, CLI, HTTP helpers, the log read from a pipe)
  that can also be SIGKILLed, SIGTERMed (its exit code and how long it took), SIGSTOPped, and
  started again on the same port; its JSON log events can be awaited.
- `AgentSocket` is one agent session on one node over the real WebSocket: it keeps every message in
  order, and the close code and reason the server gave.
- `PhoneSystem` posts commhub's generic call events (`?token=`) to a chosen node and, as a phone
  system behind a load balancer does, sends an event again to the next node when one did not answer
  2xx.

Everything talks to the processes over loopback, as the phone system, the agents' consoles and an
orchestrator (readiness probe, Prometheus) do; nothing runs in the test's process.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from support.commhub_process import SOURCE, SOURCE_SECRET
from support.dovecot import Dovecot
from support.faults import FaultyCommhub, log_time
from support.load import CHANGE_TYPES, wait_for  # CHANGE_TYPES: the messages that take a seq
from support.pgcluster import SUPERUSER, PostgresCluster

HOOK_PATH = f"/hooks/{SOURCE}?token={SOURCE_SECRET}"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)
ADMIN = "admin"  # the cluster's admin agent, added by the CLI
# The bound for another node to take over a dead or stopped node's mailbox.
TAKEOVER_LIMIT_S = 30.0


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailboxSpec:
    """One `[[mailboxes]]` entry, the same on every node: a private Dovecot account, plain IMAP on loopback."""

    name: str
    port: int
    username: str
    password: str
    folders: tuple[str, ...] = ("INBOX",)
    addresses: tuple[str, ...] = ("vertrieb@example.de",)
    batch_size: int = 10
    mode: str = "idle"

    def toml(self) -> str:
        folders = ", ".join(json.dumps(folder) for folder in self.folders)
        addresses = ", ".join(json.dumps(address) for address in self.addresses)
        return (f'[[mailboxes]]\nname = "{self.name}"\nhost = "127.0.0.1"\nport = {self.port}\ntls = "none"\n'
                f'username = "{self.username}"\npassword = "{self.password}"\nfolders = [{folders}]\n'
                f'addresses = [{addresses}]\nbatch_size = {self.batch_size}\nmode = "{self.mode}"\n'
                f'timeout_seconds = 30\n\n')


MAILBOX = "vertrieb"


def mailbox_of(server: Dovecot, *, name: str = MAILBOX, **options: Any) -> MailboxSpec:
    """The `[[mailboxes]]` entry for the Dovecot's user."""
    return MailboxSpec(name=name, port=server.port, username=server.user, password=server.password, **options)


class ClusterNode(FaultyCommhub):
    """One node: `commhub serve` with its own port, node name and log, on the cluster's database."""

    def __init__(self, workdir: Path, *, name: str, database_url: str, shutdown_seconds: float,
                 lease_check_seconds: float, lease_timeout_seconds: float, mailbox: MailboxSpec | None,
                 extra_config: str = "", log_level: str = "info") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, database_url=database_url, log_level=log_level,
                         extra_config=(mailbox.toml() if mailbox else "") + extra_config)
        self.name = name
        self.shutdown_seconds = shutdown_seconds
        config = self.config.read_text(encoding="utf-8")
        server = f"port = {self.port}\n"
        assert server in config
        config = config.replace(server, f"{server}shutdown_seconds = {shutdown_seconds}\n", 1)
        config += (f'\n[cluster]\nnode_name = "{name}"\nlease_check_seconds = {lease_check_seconds}\n'
                   f"lease_timeout_seconds = {lease_timeout_seconds}\n")
        self.config.write_text(config, encoding="utf-8")
        self.started_at = 0.0  # wall time (time.time()) of the last start
        self.start_line = 0  # index into `lines` where the last run's log begins
        self.exit_codes: list[int] = []  # of every run that ended, in order
        self.frozen = False

    def __repr__(self) -> str:
        return f"<node {self.name} :{self.port} {'up' if self.running else 'down'}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def hook_url(self) -> str:
        return self.base + HOOK_PATH

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"

    # -- the process ---------------------------------------------------------

    def start(self) -> None:
        self.start_line = len(self.lines)
        self.started_at = time.time()
        super().start()

    def kill(self) -> float:
        """SIGKILL (only our own child, by its pid): no shutdown, no cleanup. Returns the wall time of the kill."""
        process = self.process
        assert process is not None and process.poll() is None, f"{self.name} is not running"
        if self.frozen:
            self.thaw()
        killed_at = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self._reaped(process)
        return killed_at

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM, as a supervisor stops a service, and wait up to `timeout` s for the exit.
        Returns (exit code, or None when it was still running and got SIGKILL; seconds to the exit)."""
        started = time.monotonic()
        self.send_sigterm()
        code = self.wait_exit(timeout)
        return code, time.monotonic() - started

    def send_sigterm(self) -> float:
        """SIGTERM without waiting (see `wait_exit`); returns the wall time it was sent."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is not running"
        sent = time.time()
        self.process.send_signal(signal.SIGTERM)
        return sent

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None (and SIGKILL) when the process did not end within `timeout` s."""
        process = self.process
        assert process is not None
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        self._reaped(process)
        return code

    def restart(self, *, kill: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL with `kill`) if running, and start again: same port, config and database."""
        if self.running:
            if kill:
                self.kill()
            else:
                self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets and answers nothing (a hung host)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.frozen and self.process is not None:
            self.thaw()
        process = self.process
        super().stop()
        if process is not None and process.returncode is not None:
            self.exit_codes.append(process.returncode)

    def _reaped(self, process: subprocess.Popen[str]) -> None:
        self.exit_codes.append(process.returncode)
        self.process = None
        self.frozen = False
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()

    # -- the log -------------------------------------------------------------

    def entries(self, *, this_run: bool = False) -> list[dict[str, Any]]:
        """Every JSON log entry (of the last run only, with `this_run`), in order."""
        found = []
        for line in list(self.lines[self.start_line if this_run else 0:]):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found

    def events_since(self, name: str, since: float = 0.0, **fields: Any) -> list[dict[str, Any]]:
        """Log entries `name` logged at or after wall time `since`, with the given field values."""
        return [entry for entry in self.entries() if entry.get("event") == name
                and log_time(entry) >= since - 0.001 and all(entry.get(k) == v for k, v in fields.items())]

    async def wait_event(self, name: str, timeout: float, since: float = 0.0, **fields: Any) -> dict[str, Any]:
        """The first log entry `name` (at or after `since`, with these fields) once it is there."""
        found: list[dict[str, Any]] = []

        def logged() -> bool:
            found[:] = self.events_since(name, since, **fields)
            return bool(found)

        await wait_for(logged, timeout, f"{self.name} to log {name} {fields or ''}".strip(), interval=0.05)
        return found[0]

    def tail(self, lines: int = 30) -> str:
        return "".join(self.lines[-lines:])

    # -- probes --------------------------------------------------------------

    async def get(self, path: str, **options: Any) -> tuple[int, str, Any]:
        """(status, content type, body: JSON when it is JSON, else text)."""
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http, \
                http.get(self.base + path, **options) as reply:
            text = await reply.text()
            body: Any = text
            if reply.content_type == "application/json":
                body = json.loads(text)
            return reply.status, reply.content_type, body

    async def api(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        """A REST call with an agent's token: (status, JSON body)."""
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http, \
                http.request(method, self.base + path, json=body,
                             headers={"Authorization": f"Bearer {token}"}) as reply:
            text = await reply.text()
            return reply.status, json.loads(text) if text else None

    async def readyz(self) -> tuple[int, Any]:
        status, _type, body = await self.get("/readyz")
        return status, body

    async def metrics(self) -> str:
        status, content_type, body = await self.get("/metrics")
        assert status == 200, f"{self.name} GET /metrics: {status} {str(body)[:300]}"
        assert content_type.startswith("text/plain"), content_type
        return str(body)

    async def holds(self, mailbox: str) -> bool | None:
        """Whether /readyz says this node archives `mailbox` (None: no answer, or no such entry)."""
        try:
            _status, body = await self.readyz()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None
        if not isinstance(body, dict):
            return None
        entries = [entry for entry in body.get("mail") or [] if entry.get("mailbox") == mailbox]
        if not entries:
            return None
        return any(entry.get("held_here") is True for entry in entries)


# --- the cluster ---------------------------------------------------------------------------------


class CommhubCluster:
    """N nodes on one fresh database. Use as a context manager, or call start() and close()."""

    def __init__(self, base_dir: Path, *, nodes: int = 2, pg: PostgresCluster | None = None,
                 mailbox: MailboxSpec | None = None, shutdown_seconds: float = 5,
                 lease_check_seconds: float = 1, lease_timeout_seconds: float = 20,
                 extra_config: str = "", log_level: str = "info") -> None:
        assert 1 <= nodes <= 5
        self.base_dir = Path(base_dir)
        self._pg = pg
        self._own_pg: PostgresCluster | None = None
        self.database = f"cluster_{uuid.uuid4().hex[:10]}"
        self.database_url: str | None = None
        self.mailbox = mailbox
        self._node_options = dict(shutdown_seconds=shutdown_seconds, lease_check_seconds=lease_check_seconds,
                                  lease_timeout_seconds=lease_timeout_seconds, mailbox=mailbox,
                                  extra_config=extra_config, log_level=log_level)
        self._count = nodes
        self.nodes: list[ClusterNode] = []
        self.start_seconds = 0.0
        self.admin_token = ""

    def __enter__(self) -> CommhubCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def pg(self) -> PostgresCluster:
        pg = self._pg or self._own_pg
        assert pg is not None, "cluster not started"
        return pg

    def start(self) -> None:
        began = time.monotonic()
        if self._pg is None:
            self._own_pg = PostgresCluster(self.base_dir / "pg")
            self._own_pg.start()
        self.database_url = self.pg.create_database(self.database)
        self.nodes = [ClusterNode(self.base_dir / f"node-{index}", name=f"node-{index}",
                                  database_url=self.database_url, **self._node_options)  # type: ignore[arg-type]
                      for index in range(1, self._count + 1)]
        # One CLI run migrates the database (once, before the nodes could race for it) and adds the admin
        # whose token adds the other agents over the API (a CLI process per agent costs 2 s).
        self.admin_token = self.add_agent(ADMIN, "9999", role="admin")
        self.start_nodes(self.nodes)
        self.start_seconds = time.monotonic() - began

    @staticmethod
    def start_nodes(nodes: Sequence[ClusterNode]) -> None:
        """Start the nodes side by side (each start waits for /healthz)."""
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            for future in [pool.submit(node.start) for node in nodes]:
                future.result()

    def close(self) -> None:
        """Stop every node (side by side), drop the database, stop our own PostgreSQL if we started one."""
        if self.nodes:
            with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
                for future in [pool.submit(node.stop) for node in self.nodes]:
                    with suppress(Exception):
                        future.result()
        if self.database_url is not None:
            with suppress(Exception):
                self.pg.drop_database(self.database)
            self.database_url = None
        if self._own_pg is not None:
            self._own_pg.stop()
            self._own_pg = None

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.running]

    def others(self, node: ClusterNode) -> list[ClusterNode]:
        return [other for other in self.nodes if other is not node]

    # -- agents --------------------------------------------------------------

    def add_agent(self, name: str, *extensions: str, role: str = "agent") -> str:
        """`commhub agents add` on the shared database; returns the token it printed."""
        args = ["agents", "add", name, "--role", role]
        for extension in extensions:
            args += ["--extension", extension]
        printed = self.nodes[0].cli(*args)
        found = re.search(r"(chub_\S+)", printed)
        assert found, printed
        return found.group(1)

    async def add_agents(self, extensions: dict[str, str]) -> dict[str, str]:
        """Agents added by the admin over the API (`POST /api/agents`), one node after the other:
        name -> token."""
        tokens = {}
        for index, (name, extension) in enumerate(extensions.items()):
            node = self.running()[index % len(self.running())]
            status, body = await node.api("POST", "/api/agents", self.admin_token,
                                          {"name": name, "extensions": [extension]})
            assert status == 201, f"{node.name} POST /api/agents {name}: {status} {body}"
            tokens[name] = body["token"]
        return tokens

    # -- the database, read directly -----------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(user=SUPERUSER, host="127.0.0.1", port=self.pg.port,
                                           database=self.database, timeout=10, command_timeout=30)
        try:
            return [tuple(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close(timeout=5)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def checkpoint(self, mailbox: str, folder: str = "INBOX") -> int:
        value = await self.fetchval("SELECT last_uid FROM mail_checkpoints WHERE mailbox = $1 AND folder = $2",
                                    mailbox, folder)
        return int(value or 0)

    async def agent_ids(self) -> dict[str, int]:
        return dict(await self.fetch("SELECT name, id FROM agents"))  # type: ignore[arg-type]

    async def newest_seqs(self) -> dict[int, int]:
        return dict(await self.fetch(  # type: ignore[arg-type]
            "SELECT agent_id, max(seq) FROM agent_messages GROUP BY agent_id"))

    # -- readiness and the mailbox lease -------------------------------------

    async def wait_ready(self, nodes: Iterable[ClusterNode] | None = None, timeout: float = 30) -> None:
        """Every node's /readyz answers 200."""
        targets = list(nodes if nodes is not None else self.running())
        last: dict[str, Any] = {}

        async def all_ready() -> bool:
            for node in targets:
                try:
                    status, body = await node.readyz()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    last[node.name] = repr(exc)
                    return False
                last[node.name] = (status, body)
                if status != 200:
                    return False
            return True

        try:
            await wait_for(all_ready, timeout, "every node's /readyz to answer 200", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answers: {str(last)[:1500]}") from None

    async def holders(self, mailbox: str, nodes: Iterable[ClusterNode] | None = None) -> list[ClusterNode]:
        """The running nodes whose /readyz says they archive `mailbox`."""
        targets = list(nodes if nodes is not None else self.running())
        held = await asyncio.gather(*(node.holds(mailbox) for node in targets))
        return [node for node, holds in zip(targets, held) if holds]

    async def wait_holder(self, mailbox: str, timeout: float = TAKEOVER_LIMIT_S,
                          among: Iterable[ClusterNode] | None = None) -> ClusterNode:
        """The one node (of `among`, default: the running ones) that /readyz says holds the mailbox;
        fails when none does within `timeout`, or when two ever do at once."""
        candidates = list(among if among is not None else self.running())
        found: list[ClusterNode] = []

        async def one_holds() -> bool:
            found[:] = await self.holders(mailbox, candidates)
            assert len(found) <= 1, f"{mailbox!r} held by several nodes at once: {found}"
            return len(found) == 1

        await wait_for(one_holds, timeout, f"one of {[n.name for n in candidates]} to hold {mailbox!r} "
                                           f"(/readyz held_here)", interval=0.1)
        return found[0]

    def log_summary(self, lines: int = 15) -> str:
        """The last log lines of every node, for an assertion's message."""
        return "\n".join(f"--- {node.name} ({node}):\n{node.tail(lines)}" for node in self.nodes)


# --- the agents ----------------------------------------------------------------------------------


class AgentSocket:
    """One agent session on one node: every message it gets, in order, and how it ended."""

    def __init__(self, node: ClusterNode, token: str, *, label: str = "") -> None:
        self.node = node
        self.token = token
        self.label = label or node.name
        self.messages: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # wall time each message arrived (time.time()), parallel to messages
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.closed = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, node: ClusterNode, token: str, *, after: int | None = None,
                   label: str = "", timeout: float = 15) -> AgentSocket:
        """Connect (with `?after=` when given) and return once `hello` (and `resumed`) arrived."""
        socket = cls(node, token, label=label)
        url = node.ws_url + (f"?after={after}" if after is not None else "")
        socket._ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"},
                                           timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                                           heartbeat=None, autoping=True)
        socket._reader = asyncio.create_task(socket._read(), name=f"ws:{socket.label}")
        await socket.wait(lambda: any(m["type"] == "hello" for m in socket.messages), timeout, "hello")
        if after is not None:
            await socket.wait(lambda: bool(socket.of_type("resumed")), timeout, "resumed")
        return socket

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            while True:
                frame = await self._ws.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self.arrived.append(time.time())
                    self.messages.append(json.loads(frame.data))
                    self._poke()
                elif frame.type == aiohttp.WSMsgType.CLOSE:
                    self.close_code, self.close_reason = frame.data, frame.extra or ""
                    break
                elif frame.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.ERROR):
                    break
        finally:
            if self.close_code is None:
                self.close_code = self._ws.close_code
            self.closed.set()
            self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.label}: timed out after {timeout} s waiting for {what}; "
                                     f"last messages: {[m.get('type') for m in self.messages[-8:]]}, "
                                     f"closed: {self.closed.is_set()} ({self.close_code} {self.close_reason!r})")
            if self.closed.is_set():
                raise AssertionError(f"{self.label}: closed ({self.close_code} {self.close_reason!r}) "
                                     f"while waiting for {what}")
            changed = self._changed
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    async def next_of(self, kind: str, timeout: float = 15, *, start: int = 0,
                      where: Callable[[dict[str, Any]], bool] = lambda m: True) -> dict[str, Any]:
        """The first message of `kind` at or after index `start` that satisfies `where`."""
        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages[start:] if m.get("type") == kind and where(m)), None)

        await self.wait(lambda: found() is not None, timeout, kind)
        message = found()
        assert message is not None
        return message

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def wait_closed(self, timeout: float) -> tuple[int | None, str]:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label}: the server did not close the socket within {timeout} s") from None
        return self.close_code, self.close_reason

    # -- what arrived --------------------------------------------------------

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def changes(self) -> list[dict[str, Any]]:
        """The messages that took a seq, in the order they arrived."""
        return [m for m in self.messages if str(m.get("type", "")).startswith(CHANGE_TYPES)
                and isinstance(m.get("seq"), int)]

    @property
    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.changes]

    def arrival_of(self, message: dict[str, Any]) -> float:
        """When `message` (one of ours, by identity) arrived."""
        return next(at for m, at in zip(self.messages, self.arrived) if m is message)

    @property
    def last_seq(self) -> int:
        seqs = self.seqs
        return max(seqs) if seqs else 0


def seq_problems(seqs: Sequence[int], first: int) -> list[str]:
    """What is wrong with a session's seqs, which must run first, first+1, … without a gap or a repeat."""
    problems = []
    expected = first
    for seq in seqs:
        if seq != expected:
            problems.append(f"expected seq {expected}, got {seq}")
            if len(problems) >= 5:
                break
        expected = seq + 1
    return problems


# --- the phone system ----------------------------------------------------------------------------


BASE_TIME = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def call_event(kind: str, call_id: str, step: int, *, caller: str, targets: Sequence[str] = (),
               **fields: Any) -> dict[str, Any]:
    """One event of commhub's generic format with the vendor's event id and time, as a PBX sends it
    (a redelivery is the same body)."""
    at = (BASE_TIME + timedelta(seconds=step)).isoformat().replace("+00:00", "Z")
    return {"event": kind, "call_id": call_id, "event_id": f"{call_id}-{kind}-{step}", "timestamp": at,
            "direction": "in", "from": caller, "to": "+4930555000", "targets": list(targets), **fields}


@dataclass
class Delivery:
    body: dict[str, Any]
    accepted_by: str | None = None  # the node that answered 2xx
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (node, outcome) of each POST


class PhoneSystem:
    """Posts generic call events with `?token=`; on a failed POST (no connection, 5xx) it posts the
    same event again, to the next node of its list, as a PBX behind a load balancer would."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.deliveries: list[Delivery] = []

    async def post(self, node: ClusterNode, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(node.hook_url, json=body, timeout=HTTP_TIMEOUT) as reply:
            text = await reply.text()
            return reply.status, json.loads(text) if text.startswith(("{", "[")) else text

    async def deliver(self, body: dict[str, Any], nodes: Sequence[ClusterNode], *, give_up_after: float = 60,
                      ) -> Delivery:
        """Post until some node answers 2xx, starting with nodes[0]; a 4xx is a failed test."""
        delivery = Delivery(body)
        self.deliveries.append(delivery)
        started = time.monotonic()
        attempt = 0
        while delivery.accepted_by is None:
            node = nodes[attempt % len(nodes)]
            attempt += 1
            if attempt > 1:
                await asyncio.sleep(min(0.02 * attempt, 0.5))
            if time.monotonic() - started > give_up_after:
                raise AssertionError(f"no node accepted {body['event_id']} within {give_up_after} s: "
                                     f"{delivery.attempts[-6:]}")
            try:
                status, reply = await self.post(node, body)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                delivery.attempts.append((node.name, type(exc).__name__))
                continue
            delivery.attempts.append((node.name, str(status)))
            if 200 <= status < 300:
                delivery.accepted_by = node.name
            elif status < 500:
                raise AssertionError(f"{node.name} refused {body['event_id']}: {status} {str(reply)[:300]}")
        return delivery


# --- the mailbox ---------------------------------------------------------------------------------


def business_mail(number: int, *, tag: str) -> tuple[bytes, str]:
    """A plain customer enquiry with a unique Message-ID: (raw bytes, Message-ID)."""
    message = EmailMessage()
    message["From"] = f"Kunde {number} <anfrage{number}@kunde{number % 7}-gmbh.de>"
    message["To"] = "Vertrieb <vertrieb@example.de>"
    message["Subject"] = f"Anfrage {tag} Nr. {number}"
    message["Date"] = format_datetime(BASE_TIME + timedelta(minutes=number))
    message_id = f"<{tag}-{number}@mail.kunde.example>"
    message["Message-ID"] = message_id
    message.set_content(f"Sehr geehrte Damen und Herren,\n\nbitte ein Angebot zu Anfrage {number}.\n\n"
                        "Mit freundlichen Grüßen\nKunde GmbH\n")
    return message.as_bytes(), message_id


def append_mail(port: int, user: str, password: str, messages: Iterable[bytes], folder: str = "INBOX",
                *, per_command: int = 200) -> int:
    """Deliver the messages as another client would, `per_command` to one MULTIAPPEND command (RFC 3502,
    non-synchronizing literals, RFC 7888): a command's messages appear in the folder together, so an
    archiver never sees half of them. `folder`: ASCII (no modified UTF-7 here). Returns how many."""
    raws = [re.sub(rb"\r?\n", b"\r\n", raw) for raw in messages]
    quoted = folder.replace("\\", "\\\\").replace('"', '\\"').encode()
    with imaplib.IMAP4("127.0.0.1", port, timeout=60) as imap:
        status, data = imap.login(user, password)
        assert status == "OK", data
        for number, start in enumerate(range(0, len(raws), per_command)):
            tag = b"MULTI%d" % number
            parts = [tag + b' APPEND "' + quoted + b'"']
            for raw in raws[start:start + per_command]:
                parts += [b" {%d+}\r\n" % len(raw), raw]
            imap.send(b"".join(parts) + b"\r\n")
            while not (line := imap.readline()).startswith(tag + b" "):
                assert line, "the IMAP server closed the connection during APPEND"
            assert line.startswith(tag + b" OK"), line
        imap.logout()
    return len(raws)


_LOGIN = re.compile(r"imap-login: .*Login: .*session=<([^>]+)>")
_ENDED = re.compile(r"imap\([^)]*\)<\d+><([^>]+)>: .*?Disconnected: (.*)")


def dovecot_sessions(log_file: Path) -> dict[str, str | None]:
    """Every IMAP session in Dovecot's log, by session id: None while it is open, "Logged out" when the
    client ended it with LOGOUT, else why it ended (e.g. "Connection closed (IDLE running for …)")."""
    sessions: dict[str, str | None] = {}
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return sessions
    for line in text.splitlines():
        if (login := _LOGIN.search(line)) is not None:
            sessions.setdefault(login.group(1), None)
        elif (ended := _ENDED.search(line)) is not None:
            how = ended.group(2)
            sessions[ended.group(1)] = "Logged out" if how.startswith("Logged out") else how[:200]
    return sessions
