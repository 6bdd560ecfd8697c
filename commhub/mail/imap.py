"""An IMAP session on aioimaplib, with what commhub needs and the library lacks.

This module is the one place that knows aioimaplib's defects and works around them:
- its response reader recurses once per line (`_handle_responses`), so one large read raises
  RecursionError and kills the connection (upstream #118), and copies the rest of the data at
  every line: `_Protocol` reads iteratively, along an offset;
- `FetchCommand.wait_data` rescans every line of the response on every line (quadratic; 20,000
  lines took 48 s of CPU): `_FetchCommand` keeps the parenthesis balance as lines arrive;
- there is no STARTTLS: `_Client.starttls` upgrades the transport in place;
- `EXAMINE` does not put the connection in the selected state, so UID commands refuse to run;
- `idle_start` can wait forever when the server closes the connection (upstream #110): every wait
  here has a timeout, and a lost connection ends the wait.
Every command has a timeout; a FETCH's is an inactivity timer, so a long download does not time out.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from aioimaplib import aioimaplib as lib

from commhub.mail import utf7
from commhub.mail.credentials import oauth_token
from commhub.settings import MailboxSettings

# Re-issue IDLE well before the 29 minutes of RFC 2177; NAT boxes forget quiet connections sooner.
IDLE_RENEW_SECONDS = 10 * 60
FETCH_LINE = re.compile(rb"^\d+ FETCH \(")
UID_ITEM = re.compile(rb"UID (\d+)")
SIZE_ITEM = re.compile(rb"RFC822\.SIZE (\d+)")
RESPONSE_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')


class ImapError(Exception):
    """What went wrong, in words an admin can act on."""


class LoginFailed(ImapError):
    pass


@dataclass(frozen=True, slots=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int


class _FetchCommand(lib.FetchCommand):
    """Knows whether a FETCH response is complete in O(1) per line, not by rescanning all of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._balance = 0
        super().__init__(*args, **kwargs)

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        if isinstance(line, bytes):  # literals arrive as bytearray and are not counted, as upstream
            opened, closed = line.count(b"("), line.count(b")")
            self._balance = opened - closed if FETCH_LINE.match(line) else self._balance + opened - closed
        super().append_to_resp(line, result)

    def wait_data(self) -> bool:
        return self._balance != 0


class _Protocol(lib.IMAP4ClientProtocol):
    def data_received(self, d: bytes) -> None:
        # Upstream's, less its debug line: it formats every chunk even with debug logging off
        # (3 ms per 256 KiB, a second of CPU per 100 MB imported).
        try:
            self._handle_responses(self.incomplete_line + d, self._handle_line, self.current_command)
            self.incomplete_line = b""
            self.current_command = None
        except lib.IncompleteRead as incomplete_read:
            self.current_command = incomplete_read.cmd
            self.incomplete_line = incomplete_read.data

    def _handle_responses(self, data: bytes, line_handler: Any, current_cmd: Any = None) -> None:
        # Upstream's logic, as a loop over an offset instead of one recursive call per line, each
        # with a fresh copy of the rest of the data.
        position, end = 0, len(data)
        while True:
            if position >= end:
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise lib.IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                missing = current_cmd._expected_size - len(current_cmd._resp_literal_data)
                current_cmd.append_literal_data(data[position:position + missing])
                position = min(position + missing, end)
                if current_cmd.wait_literal_data():
                    raise lib.IncompleteRead(current_cmd)
                continue
            line_end = data.find(lib.CRLF, position)
            if line_end < 0:
                raise lib.IncompleteRead(current_cmd, data[position:])
            line = data[position:line_end]
            position = line_end + 2
            command = line_handler(line, current_cmd)
            literal = lib.literal_data_re.match(line)
            if literal:
                if command is None:
                    command = lib.Command("NIL", "unused")
                command.begin_literal_data(int(literal.group("size")))
                current_cmd = command
            elif command is not None and command.wait_data():
                current_cmd = command
            else:
                current_cmd = None

    async def fetch(self, message_set: str, message_parts: str, by_uid: bool = False,
                    timeout: float | None = None) -> lib.Response:
        return await self.execute(_FetchCommand(self.new_tag(), message_set, message_parts,
                                                prefix="UID" if by_uid else "", loop=self.loop, timeout=timeout))


class _Client(lib.IMAP4):
    def __init__(self, host: str, port: int, timeout: float, ssl_context: ssl.SSLContext | None,
                 lost: asyncio.Event) -> None:
        self._lost = lost
        super().__init__(host, port, timeout=timeout, conn_lost_cb=lambda _exc: lost.set(), ssl_context=ssl_context)

    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop | None,
                      conn_lost_cb: Any = None, ssl_context: ssl.SSLContext | None = None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))

    async def starttls(self, context: ssl.SSLContext) -> None:
        protocol = self.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the server does not offer STARTTLS (use tls = \"ssl\" or another port)")
        response = await asyncio.wait_for(
            protocol.execute(lib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)), self.timeout)
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await asyncio.wait_for(
            loop.start_tls(protocol.transport, protocol, context, server_hostname=self.host), self.timeout)
        await asyncio.wait_for(protocol.capability(), self.timeout)  # may differ after TLS (RFC 3501 §6.2.1)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class ImapSession:
    """One logged-in connection to one mailbox."""

    def __init__(self, settings: MailboxSettings) -> None:
        self.settings = settings
        self.lost = asyncio.Event()
        self.timeout = settings.timeout_seconds
        self.folder: str | None = None
        self._client: _Client | None = None
        self._idle: asyncio.Future[Any] | None = None  # the IDLE command while it runs

    @property
    def capabilities(self) -> set[str]:
        return set(self.client.protocol.capabilities)

    @property
    def client(self) -> _Client:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    async def open(self) -> None:
        settings = self.settings
        where = f"{settings.host}:{settings.imap_port}"
        context = tls_context(settings.ca_file) if settings.tls != "none" else None
        try:
            self._client = _Client(settings.host, settings.imap_port, self.timeout,
                                   context if settings.tls == "ssl" else None, self.lost)
            await self._client.wait_hello_from_server()
            if settings.tls == "starttls":
                assert context is not None
                await self._client.starttls(context)
        except ssl.SSLCertVerificationError as exc:
            raise ImapError(f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
                            f"set ca_file if it is signed by your own CA") from None
        except ssl.SSLError as exc:
            raise ImapError(f"{where}: TLS handshake failed ({exc.reason}); is tls = \"{settings.tls}\" "
                            f"right for port {settings.imap_port}?") from None
        except (TimeoutError, asyncio.TimeoutError):
            raise ImapError(f"{where}: no IMAP greeting within {self.timeout:g} s "
                            f"(wrong port, or TLS expected: check tls)") from None
        except OSError as exc:
            raise ImapError(f"{where}: cannot connect ({exc.strerror or exc})") from None
        await self._login()

    async def _login(self) -> None:
        settings, client = self.settings, self.client
        if settings.auth == "xoauth2":
            token = await oauth_token(settings)
            response = await client.xoauth2(settings.username, token)
        else:
            if settings.password is None:
                raise LoginFailed(f"mailbox {settings.name}: no password configured")
            response = await client.login(settings.username, settings.password.get_secret_value())
        if response.result != "OK":
            raise LoginFailed(f"login as {settings.username} refused by the server: {_text(response)}")

    async def close(self) -> None:
        if self._client is None:
            return
        client, self._client = self._client, None
        try:
            if not self.lost.is_set():
                if self._idle is not None and not self._idle.done():
                    # Stopped while idling (shutdown, a lost lease): a server takes no LOGOUT before DONE.
                    client.idle_done()
                    await asyncio.wait_for(asyncio.shield(self._idle), min(self.timeout, 5))
                await asyncio.wait_for(client.logout(), min(self.timeout, 5))
        except (lib.AioImapException, OSError, TimeoutError, asyncio.TimeoutError):
            pass  # the connection is going away anyway
        finally:
            transport = client.protocol.transport
            if transport is not None:
                transport.close()
                # A TLS transport closes its socket later; wait for it, or the socket outlives us.
                with suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(self.lost.wait(), 2)

    async def _check(self, response: lib.Response, what: str) -> lib.Response:
        if response.result != "OK":
            raise ImapError(f"{what}: {_text(response)}")
        return response

    async def open_folder(self, folder: str, *, readonly: bool) -> FolderState:
        client = self.client
        name = utf7.quote(utf7.encode(folder))
        if readonly:
            response = await client.examine(name)
            if response.result == "OK":
                client.protocol.state = lib.SELECTED  # upstream only does this for SELECT
        else:
            response = await client.select(name)
        await self._check(response, f"cannot open folder {folder!r}")
        self.folder = folder
        codes = {m.group(1): int(m.group(2)) for line in response.lines if isinstance(line, bytes)
                 for m in RESPONSE_CODE.finditer(line)}
        exists = next((int(line.split()[0]) for line in response.lines
                       if isinstance(line, bytes) and line.endswith(b" EXISTS")), 0)
        if b"UIDVALIDITY" not in codes:
            raise ImapError(f"folder {folder!r}: the server sent no UIDVALIDITY")
        return FolderState(codes[b"UIDVALIDITY"], codes.get(b"UIDNEXT"), exists)

    async def sizes_from(self, first_uid: int) -> list[tuple[int, int]]:
        """(uid, size) of every message with a UID ≥ first_uid, in UID order."""
        response = await self._check(
            await self.client.protocol.uid("fetch", f"{first_uid}:*", "(UID RFC822.SIZE)", timeout=self.timeout),
            "UID FETCH sizes")
        found: dict[int, int] = {}
        for line in response.lines:
            if isinstance(line, bytes) and FETCH_LINE.match(line):
                uid, size = UID_ITEM.search(line), SIZE_ITEM.search(line)
                if uid and size:
                    found[int(uid.group(1))] = int(size.group(1))
        # `n:*` names the highest message even when n is beyond it: keep only what was asked for.
        return sorted((uid, size) for uid, size in found.items() if uid >= first_uid)

    async def fetch(self, uids: Sequence[int], *, header_only: bool = False) -> dict[int, bytes]:
        """The raw messages (or only their headers), without setting \\Seen."""
        part = "BODY.PEEK[HEADER]" if header_only else "BODY.PEEK[]"
        response = await self._check(
            await self.client.protocol.uid("fetch", uid_set(uids), f"(UID {part})", timeout=self.timeout),
            "UID FETCH")
        return _messages(response.lines, set(uids))

    async def search(self, *criteria: str) -> list[int]:
        response = await self._check(await self.client.uid_search(*criteria, charset=None), "UID SEARCH")
        uids: list[int] = []
        for line in response.lines[:-1]:  # the last line is the tagged status
            # aioimaplib strips "* SEARCH" from the untagged line, leaving the numbers (none: empty line).
            words = line.removeprefix(b"SEARCH").split() if isinstance(line, bytes) else []
            if all(word.isdigit() for word in words):
                uids.extend(int(word) for word in words)
        return uids

    async def mark_seen(self, uids: Sequence[int]) -> None:
        await self._check(await self.client.protocol.store(uid_set(uids), "+FLAGS.SILENT", r"(\Seen)", by_uid=True),
                          "UID STORE \\Seen")

    async def move(self, uids: Sequence[int], folder: str) -> None:
        target = utf7.quote(utf7.encode(folder))
        if "MOVE" in self.capabilities:
            await self._check(await self.client.protocol.move(uid_set(uids), target, by_uid=True), "UID MOVE")
            return
        await self._check(await self.client.protocol.copy(uid_set(uids), target, by_uid=True), "UID COPY")
        await self.delete(uids)

    async def delete(self, uids: Sequence[int]) -> None:
        protocol = self.client.protocol
        await self._check(await protocol.store(uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)", by_uid=True),
                          "UID STORE \\Deleted")
        if "UIDPLUS" in self.capabilities:  # expunge only these, not what a user flagged
            await self._check(await protocol.expunge(uid_set(uids), by_uid=True), "UID EXPUNGE")
        else:
            await self._check(await self.client.expunge(), "EXPUNGE")

    async def append(self, folder: str, raw: bytes, flags: str = r"(\Seen)") -> int | None:
        """Add a message to a folder; its UID when the server says (UIDPLUS), else None."""
        response = await self._check(
            await self.client.protocol.append(raw, utf7.quote(utf7.encode(folder)), flags, None, timeout=self.timeout),
            f"APPEND to {folder!r}")
        for line in response.lines:
            if isinstance(line, bytes) and (found := APPENDUID.search(line)):
                return int(found.group(2))
        return None

    async def folders(self) -> list[str]:
        response = await self._check(await self.client.list('""', "*"), "LIST")
        names = []
        for line in response.lines:
            if isinstance(line, bytes) and (found := LIST_LINE.match(line.removeprefix(b"LIST "))):
                names.append(utf7.decode(_unquote(found.group("name").decode("ascii", "replace"))))
        return names

    async def wait_for_news(self, seconds: float) -> bool:
        """IDLE until the server reports a change, `seconds` pass, or the connection drops.

        True when the folder changed (or may have: a server that says BYE). Raises ImapError when the
        connection was lost or the server stops answering, so the caller reconnects.
        """
        client = self.client
        idle = await asyncio.wait_for(client.idle_start(timeout=seconds + 60), self.timeout)
        self._idle = idle
        push = asyncio.ensure_future(client.wait_server_push(timeout=seconds))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                raise ImapError("connection lost while idling")
            try:
                lines = push.result()
            except (TimeoutError, asyncio.TimeoutError):
                lines = []
            if lines == lib.STOP_WAIT_SERVER_PUSH:
                lines = []
            news = any(isinstance(line, bytes) and (line.endswith((b"EXISTS", b"EXPUNGE")) or b"BYE" in line)
                       for line in lines)
            client.idle_done()
            # The watchdog: a server that does not confirm DONE is gone, even if TCP has not noticed.
            # One that closes the connection (a shutdown: BYE, then close) is gone at once; waiting
            # for its confirmation would put off the reconnect by the whole timeout.
            finished, _ = await asyncio.wait({idle, lost}, timeout=self.timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            if idle not in finished:
                idle.cancel()
                await asyncio.gather(idle, return_exceptions=True)
                raise ImapError("connection lost after IDLE" if lost.done()
                                else f"no answer to DONE within {self.timeout:g} s")
            idle.result()
            return news
        finally:
            for waiter in (push, lost):
                waiter.cancel()

    async def noop(self) -> None:
        await self._check(await self.client.noop(), "NOOP")


@asynccontextmanager
async def imap_session(settings: MailboxSettings) -> AsyncIterator[ImapSession]:
    session = ImapSession(settings)
    try:
        await session.open()
        yield session
    finally:
        await session.close()


def uid_set(uids: Iterable[int]) -> str:
    """`1:5,8,10:12`: ranges keep the command line short however many messages it names."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("no UIDs")
    parts: list[str] = []
    start = previous = ordered[0]
    for uid in ordered[1:] + [0]:
        if uid == previous + 1:
            previous = uid
            continue
        parts.append(str(start) if start == previous else f"{start}:{previous}")
        start = previous = uid
    return ",".join(parts)


def _messages(lines: Sequence[Any], wanted: set[int]) -> dict[int, bytes]:
    """Group a FETCH response's lines per message: {uid: literal}. The UID may come before or after it."""
    found: dict[int, bytes] = {}
    uid: int | None = None
    literal: bytes | None = None

    def finish() -> None:
        if uid is not None and literal is not None and uid in wanted:
            found[uid] = literal

    for line in lines:
        if isinstance(line, bytearray):
            literal = bytes(line)
            continue
        if FETCH_LINE.match(line):
            finish()
            uid, literal = None, None
        if uid is None and (match := UID_ITEM.search(line)):
            uid = int(match.group(1))
    finish()
    return found


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _text(response: lib.Response) -> str:
    last = response.lines[-1] if response.lines else b""
    text = last.decode("utf-8", "replace") if isinstance(last, bytes | bytearray) else str(last)
    return f"{response.result} {text}".strip()
