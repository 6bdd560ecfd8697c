"""What the bad-input tests (tests/reliability) throw requests at, and how they sign them.

- `SIGNERS`: how each installed adapter's phone system authenticates a request (its URL token, or its
  signature header computed with the adapter's own signing code). An adapter without an entry gets
  the URL token, which every token-based adapter reads; `test_bodies` first checks that a real
  fixture, so signed, is accepted by every adapter, so a new adapter with a scheme of its own fails
  loudly there instead of being tested only up to its verification.
- `FuzzServer`: a real `commhub serve` (tests/support/commhub_process.py) with one source per installed
  adapter (named after it), the demo customers, an admin and an agent token, and readers for its
  SQLite file and its log.
- `http()` / `raw_exchange()`: requests as bytes, so bodies and headers can be anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from support.commhub_process import CommhubProcess
from support.http_fixture import HttpFixture, adapter_fixtures, read_fixture

from commhub.commands.common import open_database
from commhub.demo.load import load_demo
from commhub.settings import DatabaseSettings, Settings
from commhub.store import agents
from commhub.telephony.registry import available

ADAPTERS = sorted(available())
TABLES = ("calls", "call_events", "contacts", "organizations", "phone_numbers", "email_addresses",
          "history_entries", "tasks", "agents")


def secret_for(adapter: str) -> str:
    return f"reliability-{adapter}-secret-0123"


# --- signing ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HookRequest:
    """A webhook request ready to send: `path` carries the query."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Signer = Callable[[str, str, str, dict[str, str], bytes, str], HookRequest]


def _path(adapter: str, query: dict[str, str]) -> str:
    return f"/hooks/{adapter}" + (f"?{urlencode(query)}" if query else "")


def token_signer(base: str, adapter: str, method: str, query: dict[str, str], body: bytes,
                 content_type: str) -> HookRequest:
    headers = {"Content-Type": content_type} if content_type else {}
    return HookRequest(method, _path(adapter, {**query, "token": secret_for(adapter)}), headers, body)


def placetel_signer(base: str, adapter: str, method: str, query: dict[str, str], body: bytes,
                    content_type: str) -> HookRequest:
    from adapters.placetel.verify import SIGNATURE_HEADER, sign

    headers = {"Content-Type": content_type} if content_type else {}
    headers[SIGNATURE_HEADER] = sign(secret_for(adapter), body)
    return HookRequest(method, _path(adapter, query), headers, body)


def twilio_signer(base: str, adapter: str, method: str, query: dict[str, str], body: bytes,
                  content_type: str) -> HookRequest:
    """X-Twilio-Signature over the URL commhub sees (no public_url configured: http://127.0.0.1:port);
    a JSON body is signed through `bodySHA256` in the URL, as Twilio does."""
    from adapters.twilio.verify import HEADER, signature

    headers = {"Content-Type": content_type} if content_type else {}
    params: dict[str, list[str]] = {}
    if content_type.startswith("application/json"):
        query = {**query, "bodySHA256": hashlib.sha256(body).hexdigest()}
    elif method == "POST" and body:
        for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
            params.setdefault(name, []).append(value)
    path = _path(adapter, query)
    headers[HEADER] = signature(secret_for(adapter), base + path, params)
    return HookRequest(method, path, headers, body)


SIGNERS: dict[str, Signer] = {"placetel": placetel_signer, "twilio": twilio_signer}


def signed(base: str, adapter: str, method: str, query: dict[str, str], body: bytes,
           content_type: str) -> HookRequest:
    return SIGNERS.get(adapter, token_signer)(base, adapter, method, query, body, content_type)


def fixture_query(fixture: HttpFixture) -> dict[str, str]:
    """The fixture's query without the token it was recorded with."""
    query = dict(parse_qsl(fixture.target.partition("?")[2], keep_blank_values=True))
    query.pop("token", None)
    return query


def accepted_fixtures(adapter: str) -> list[HttpFixture]:
    """The adapter's recorded requests that commhub stores as call events (per their expectation file)."""
    found = []
    for path in adapter_fixtures(adapter):
        fixture = read_fixture(path)
        if "events" in fixture.expected() and fixture.method == "POST" and fixture.body:
            found.append(fixture)
    return found


def resigned(base: str, adapter: str, fixture: HttpFixture, body: bytes | None = None,
             content_type: str | None = None) -> HookRequest:
    """The fixture (or another body in its place) signed for this server's source."""
    kind = fixture.headers.get("Content-Type", "") if content_type is None else content_type
    return signed(base, adapter, fixture.method, fixture_query(fixture), fixture.body if body is None else body,
                  kind)


# --- HTTP as bytes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        """The `error` object of a JSON error answer (asserting that it is one)."""
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.body[:300])
        error = self.json()["error"]
        assert error["code"] and error["message"], error
        return error  # type: ignore[no-any-return]


def http(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, Any] | None = None,
         timeout: float = 20) -> Answer:
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        sent = {"Content-Length": str(len(body)), **(headers or {})}
        for name, value in sent.items():
            connection.putheader(name, value)  # bytes values go out as they are
        connection.endheaders(body)
        reply = connection.getresponse()
        data = reply.read()
        return Answer(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, *, close_early: bool = False, half_close: bool = False,
                 timeout: float = 20) -> bytes:
    """Send bytes on a fresh connection. `close_early`: close right after sending (a client that dies
    mid-request); `half_close`: shut down the sending side and read what comes back; otherwise read until
    the server closes. A server that answers before it has read everything (413) may reset the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if close_early:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def request_bytes(method: str, path: str, headers: dict[str, str | bytes], body: bytes = b"", *,
                  content_length: int | None = None, chunked: bool = False) -> bytes:
    """An HTTP/1.1 request as bytes: header values may be bytes (sent as they are)."""
    sent: dict[str, str | bytes] = {"Host": "127.0.0.1", "Connection": "close", **headers}
    if chunked:
        sent["Transfer-Encoding"] = "chunked"
        body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                        for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    else:
        sent["Content-Length"] = str(len(body) if content_length is None else content_length)
    head = b"".join(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
                    for name, value in sent.items())
    return f"{method} {path} HTTP/1.1\r\n".encode() + head + b"\r\n" + body


def parse_answer(raw: bytes) -> Answer | None:
    """A raw HTTP answer (read until the server closed), None when the server answered nothing."""
    if not raw.startswith(b"HTTP/1."):
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split(" ", 2)[1]), headers, body)


# --- the server ----------------------------------------------------------------------------------------

def sources_config() -> str:
    return "".join(f'[[sources]]\nname = "{name}"\nadapter = "{name}"\nsecret = "{secret_for(name)}"\n\n'
                   for name in ADAPTERS)


def access_config() -> str:
    """The tests refuse many requests from one address on purpose; a failure limit (where this commhub
    has one) must not turn their later answers into 429s."""
    if "access" not in Settings.model_fields:
        return ""
    return "[access]\nfailure_limit = 10000\n\n"


class FuzzServer:
    def __init__(self, workdir: Path) -> None:
        self.process = CommhubProcess(workdir, extra_config=access_config() + sources_config())
        # info, as commhub runs by default: what it logs about a bad request must not fail either
        config = self.process.config.read_text(encoding="utf-8").replace('level = "warning"', 'level = "info"')
        self.process.config.write_text(config, encoding="utf-8")
        self.database = workdir / "commhub.db"
        self.admin = ""
        self.agent = ""
        self.spare_admin = ""  # for tests that may revoke it

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def base(self) -> str:
        return self.process.base

    def start(self) -> None:
        self.admin, self.agent, self.spare_admin = asyncio.run(self._seed())
        self.process.start()

    async def _seed(self) -> tuple[str, str, str]:
        settings = Settings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{self.database}"))
        async with open_database(settings) as database:
            await load_demo(database.sessions, "DE")
            async with database.sessions() as session, session.begin():
                tokens = [await agents.issue_token(session, await agents.get_agent_by_name(session, name))
                          for name in ("anna", "ben", "anna")]  # the demo's admin and agent
        return tokens[0], tokens[1], tokens[2]

    def stop(self) -> None:
        self.process.stop()

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    def counts(self) -> dict[str, int]:
        """Rows per table, read from the SQLite file beside the running server."""
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)
        try:
            return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}
        finally:
            connection.close()

    def snapshot(self) -> dict[str, str]:
        """A digest of every row of the customer and call tables: equal snapshots, nothing stored or changed."""
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)
        try:
            return {table: hashlib.sha256(repr(connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall())
                                          .encode()).hexdigest()[:16] for table in TABLES}
        finally:
            connection.close()

    def log_size(self) -> int:
        return self.process.log.stat().st_size if self.process.log.exists() else 0

    def log_problems(self, since: int = 0) -> list[str]:
        """Log lines since byte `since` that report a failure of commhub itself: an error, an
        unexpected exception, or a database outage (what a bad request must never be taken for)."""
        with self.process.log.open("rb") as log:
            log.seek(since)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        return [line for line in lines if '"level": "error"' in line or "Traceback" in line
                or "request.failed" in line or "database_unavailable" in line]

    def healthy(self) -> bool:
        return http(self.port, "GET", "/healthz", timeout=10).status == 200

    def wait_quiet(self, seconds: float = 0.3) -> None:
        """Let the server finish with requests whose clients have gone."""
        time.sleep(seconds)
