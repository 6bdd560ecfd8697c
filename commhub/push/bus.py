"""The push bus: every node hears every committed agent message (PostgreSQL LISTEN/NOTIFY).

One dedicated connection per node listens on `notices.CHANNEL`. Notifications are handed to the
hub strictly in the order they arrive, which is the order their transactions committed; a message
too large for a notification is read from the backlog first, still in its place in that order.

While the connection is down, notifications are lost to this node. So once it is back, the node's
sockets are closed with "reconnect and resume": the clients fetch what they missed from the backlog,
which the commits kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy.engine import make_url

from commhub.log import get_logger
from commhub.push.hub import TOO_SLOW, Hub
from commhub.push.message import Message, encode
from commhub.push.notices import CHANNEL, decode_notice
from commhub.retry import Backoff

log = get_logger("commhub.bus")
CONNECT_TIMEOUT_S = 10.0
# A connection that silently stopped answering (a frozen server, a cut network) is noticed this often.
PROBE_EVERY_S = 10.0
PROBE_TIMEOUT_S = 5.0

ReadStored = Callable[[list[tuple[int, int]]], Awaitable[list[tuple[int, int, str, object, object]]]]


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://…`) as the DSN asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PushBus:
    def __init__(self, dsn: str, hub: Hub, read_stored: ReadStored) -> None:
        self._dsn = dsn
        self._hub = hub
        self._read_stored = read_stored
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()

    async def start(self, wait_s: float = CONNECT_TIMEOUT_S) -> None:
        """Start listening; returns once listening (or after `wait_s`, still trying in the background)."""
        self._tasks = [asyncio.create_task(self._listen(), name="push-bus"),
                       asyncio.create_task(self._hand_out(), name="push-bus-hand-out")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self.connected.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        backoff = Backoff(first=0.5, ceiling=30.0)
        listened_before = False
        while True:
            connection: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                connection.add_termination_listener(lambda _connection: lost.set())
                await connection.add_listener(CHANNEL, self._on_notification)
                self.connected.set()
                backoff.reset()
                log.info("bus.listening", reconnected=listened_before)
                if listened_before:
                    # Whatever was committed while we were deaf is in the backlog: have it fetched.
                    await self._hub.close_all(TOO_SLOW, "missed messages: reconnect and resume")
                listened_before = True
                while True:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(PROBE_EVERY_S):
                            await lost.wait()
                    if lost.is_set():
                        raise ConnectionError("the listening connection was closed")
                    async with asyncio.timeout(PROBE_TIMEOUT_S):
                        await connection.fetchval("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: listen again, after a pause
                self.connected.clear()
                delay = backoff.next_delay()
                log.warning("bus.lost", error=f"{type(exc).__name__}: {exc}"[:300], retry_seconds=round(delay, 2))
                await asyncio.sleep(delay)
            finally:
                if connection is not None:
                    connection.terminate()

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._inbox.put_nowait(payload)

    async def _hand_out(self) -> None:
        while True:
            payload = await self._inbox.get()
            try:
                items = decode_notice(payload)
                ready: list[Message] = []
                stored: list[tuple[int, int]] = []  # consecutive references: one query for them
                for item in items:
                    if isinstance(item, Message):
                        ready.extend(await self._stored(stored))
                        stored = []
                        ready.append(item)
                    else:
                        stored.append(item)
                ready.extend(await self._stored(stored))
                self._hub.hand_out(ready)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad notification must not stop the bus
                # Its messages are in the backlog (a database outage kept us from reading them).
                log.exception("bus.notice_failed")
                await self._hub.close_all(TOO_SLOW, "missed messages: reconnect and resume")

    async def _stored(self, keys: list[tuple[int, int]]) -> list[Message]:
        if not keys:
            return []
        rows = await self._read_stored(keys)
        return [Message(agent_id, seq, type_, encode(type_, seq, created_at, payload), created_at.timestamp())
                for agent_id, seq, type_, payload, created_at in rows]
