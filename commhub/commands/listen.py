"""`commhub listen`: a terminal agent client. Prints pops as they come; a typed line writes a note.

    note <text>            a note on the latest call
    note <call id> <text>  a note on that call

It reconnects by itself (backing off up to 30 s) and resumes after the last seq it printed, so a
dropped connection loses nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from typing import Any, TextIO

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from commhub.errors import CommhubError
from commhub.settings import Settings

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0
OPEN_TIMEOUT_S = 10.0


class ListenError(CommhubError):
    code = "listen_failed"


def socket_url(base: str, after: int | None) -> str:
    url = base.rstrip("/")
    if url.startswith("http"):
        url = "ws" + url[4:]
    if not url.endswith("/ws"):
        url += "/ws"
    return url + (f"?after={after}" if after is not None else "")


def describe(message: dict[str, Any]) -> str:
    """One readable line (or a few) per server message."""
    kind = message.get("type")
    call = message.get("call") or {}
    if kind == "hello":
        agent = message.get("agent", {})
        return f"connected as {agent.get('name')} (session {message.get('session')}, seq {message.get('seq')})"
    if kind == "call.ringing":
        return _ringing(message, call)
    if kind == "call.answered":
        by = message.get("by") or {}
        return f"[call {call.get('id')}] answered by {by.get('name') or by.get('key') or 'someone'}"
    if kind == "call.ended":
        duration = f", {call['duration']} s" if call.get("duration") is not None else ""
        return f"[call {call.get('id')}] ended: {call.get('state')}{duration}"
    if kind in ("task.created", "task.updated"):
        task = message.get("task", {})
        return f"task {task.get('id')} {kind.split('.')[1]}: {task.get('title')} ({task.get('status')})"
    if kind == "history.added":
        entry = message.get("entry", {})
        return f"history: {entry.get('kind')} {entry.get('title')!r}"
    if kind == "note.saved":
        return f"note saved (entry {message.get('entry', {}).get('id')})"
    if kind == "error":
        return f"error: {message.get('message')}"
    if kind == "resumed":
        return f"resumed: {message.get('replayed')} missed message(s) replayed"
    return json.dumps(message, ensure_ascii=False)


def _ringing(message: dict[str, Any], call: dict[str, Any]) -> str:
    caller = message.get("caller") or {}
    number = "withheld" if caller.get("withheld") else (caller.get("international") or caller.get("raw") or "?")
    lines = [f"[call {call.get('id')}] RINGING {number}"]
    matches = message.get("matches") or []
    if not matches:
        facts = [caller.get(k) for k in ("region", "line_type", "carrier", "location") if caller.get(k)]
        lines.append("  unknown caller" + (f" ({', '.join(map(str, facts))})" if facts else ""))
    if message.get("ambiguous"):
        lines.append(f"  {len(matches)} files share this number:")
    for match in matches:
        company = f", {match['company']}" if match.get("company") and match["kind"] == "contact" else ""
        klass = f", class {match['class']}" if match.get("class") else ""
        lines.append(f"  {match['name']}{company}{klass} — {match.get('reason', '')}")
        if match.get("open_tasks"):
            lines.append(f"    open tasks: {match['open_tasks']} ("
                         + "; ".join(task["title"] for task in match.get("tasks", [])) + ")")
        for entry in match.get("recent", []):
            lines.append(f"    {entry['occurred_at'][:16].replace('T', ' ')} {entry['kind']}: {entry['title']}")
    return "\n".join(lines)


class Listener:
    def __init__(self, base: str, token: str, *, as_json: bool, after: int | None, out: TextIO) -> None:
        self.base, self.token, self.as_json, self.out = base, token, as_json, out
        self.last_seq = after
        self.last_call: int | None = None
        self.connection: ClientConnection | None = None

    def show(self, message: dict[str, Any]) -> None:
        if message.get("type") == "call.ringing":
            self.last_call = (message.get("call") or {}).get("id")
        print(json.dumps(message, ensure_ascii=False) if self.as_json else describe(message), file=self.out,
              flush=True)

    async def run(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            try:
                await self._session()
                delay = FIRST_RETRY_S
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    raise ListenError(f"the server refused the token ({exc.response.status_code})") from None
                self._note_failure(f"server answered {exc.response.status_code}")
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                self._note_failure(str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)

    def _note_failure(self, reason: str) -> None:
        print(f"connection lost ({reason}); reconnecting", file=sys.stderr, flush=True)

    async def _session(self) -> None:
        url = socket_url(self.base, self.last_seq)
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                      open_timeout=OPEN_TIMEOUT_S, compression=None) as connection:
            self.connection = connection
            try:
                async for raw in connection:
                    message = json.loads(raw)
                    if message.get("type") in ("call.ringing", "call.answered", "call.ended", "task.created",
                                               "task.updated", "history.added"):
                        self.last_seq = max(self.last_seq or 0, message["seq"])
                    elif message.get("type") == "hello" and self.last_seq is None:
                        self.last_seq = message["seq"]
                    self.show(message)
            finally:
                self.connection = None

    async def send_line(self, line: str) -> None:
        verb, _, rest = line.strip().partition(" ")
        if not verb:
            return
        if verb != "note":
            print("commands: note <text> | note <call id> <text>", file=sys.stderr, flush=True)
            return
        first, _, text = rest.partition(" ")
        call_id = int(first) if first.isdigit() and text else self.last_call
        text = text if first.isdigit() and text else rest
        if call_id is None or not text.strip():
            print("no call yet: wait for a pop, or give the call id", file=sys.stderr, flush=True)
            return
        if self.connection is None:
            print("not connected; try again in a moment", file=sys.stderr, flush=True)
            return
        await self.connection.send(json.dumps({"type": "note", "call_id": call_id, "text": text}))


async def read_lines(listener: Listener) -> None:
    """Typed lines, read by a daemon thread: a blocked `readline` must not keep the process alive."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while True:
        await listener.send_line(await lines.get())


async def listen(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("COMMHUB_TOKEN")
    if not token:
        raise ListenError("give an agent token: --token T or COMMHUB_TOKEN (see `commhub agents token NAME`)")
    base = args.url or settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    listener = Listener(base, token, as_json=args.json, after=args.after, out=sys.stdout)
    try:
        socket_url(base, None).encode("ascii")
    except UnicodeEncodeError:
        raise ListenError(f"not a URL: {base}") from None
    reader = asyncio.create_task(read_lines(listener))
    try:
        await listener.run()
    except InvalidURI:
        raise ListenError(f"not a WebSocket URL: {base}") from None
    finally:
        reader.cancel()
    return 0
