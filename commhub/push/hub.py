"""The live agent sessions. Each has a bounded queue and its own writer, so one slow client never
holds up the others: a client that falls a whole queue behind is disconnected and resumes later
from the backlog (`resume` with its last seq)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable

from commhub.log import get_logger
from commhub.push.message import Message

log = get_logger("commhub.push")
# WebSocket close code 1013 "Try Again Later" (RFC 6455 registry): the client should reconnect and resume.
TOO_SLOW = 1013
# 1012 "Service Restart": this node is going away; the client reconnects (through the load balancer, to
# another node) and resumes.
SERVICE_RESTART = 1012
_session_ids = itertools.count(1)


class AgentSession:
    """One connected client of one agent."""

    def __init__(self, agent_id: int, send: Callable[[str], Awaitable[None]],
                 close: Callable[[int, str], Awaitable[object]], queue_size: int,
                 sent: Callable[[Message], None] = lambda message: None) -> None:
        self.id = next(_session_ids)
        self.agent_id = agent_id
        self._send = send
        self._close = close
        self._sent = sent
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=queue_size)
        self.send_lock = asyncio.Lock()  # the writer and a replay take turns
        self.last_sent = 0
        self.overflowed = False

    def offer(self, message: Message) -> bool:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    async def send_now(self, text: str) -> None:
        async with self.send_lock:
            await self._send(text)

    async def replay(self, messages: Iterable[tuple[int, str]]) -> int:
        """Send stored messages in order, before anything queued after them; returns how many."""
        count = 0
        async with self.send_lock:
            for seq, text in messages:
                await self._send(text)
                self.last_sent = max(self.last_sent, seq)
                count += 1
        return count

    async def write(self) -> None:
        """Runs for the life of the session."""
        while True:
            message = await self._queue.get()
            async with self.send_lock:
                if message.seq <= self.last_sent:
                    continue  # already replayed
                await self._send(message.text)
                self.last_sent = message.seq
            self._sent(message)

    async def close(self, code: int, reason: str) -> None:
        await self._close(code, reason)

    async def drop_for_slowness(self) -> None:
        self.overflowed = True
        await self._close(TOO_SLOW, "too slow: reconnect and resume")


class Hub:
    """Shared (PostgreSQL): messages committed by any node, this one included, arrive through the push
    bus (`hand_out`), in commit order; what a local commit staged needs no `deliver` then."""

    def __init__(self, *, shared: bool = False) -> None:
        self._sessions: dict[int, set[AgentSession]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.shared = shared
        self.sent: Callable[[Message], None] = lambda message: None  # each message written to a socket

    def register(self, session: AgentSession) -> None:
        self._sessions.setdefault(session.agent_id, set()).add(session)

    def unregister(self, session: AgentSession) -> None:
        sessions = self._sessions.get(session.agent_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[session.agent_id]

    def online(self, agent_id: int) -> int:
        return len(self._sessions.get(agent_id, ()))

    def sessions(self) -> int:
        return sum(len(group) for group in self._sessions.values())

    def agents(self) -> int:
        return len(self._sessions)

    async def close_all(self, code: int = SERVICE_RESTART,
                        reason: str = "server restarting: reconnect and resume") -> None:
        """Tell every client to come back and resume, rather than cut it off (shutdown, a lost bus)."""
        sessions = [session for group in self._sessions.values() for session in group]
        await asyncio.gather(*(session.close(code, reason) for session in sessions), return_exceptions=True)

    def deliver(self, messages: Iterable[Message]) -> None:
        """After this node's commit: hand the messages out, unless the bus brings them (shared)."""
        if not self.shared:
            self.hand_out(messages)

    def hand_out(self, messages: Iterable[Message]) -> None:
        """Hand committed messages to every session of their agent; never waits for a client."""
        for message in messages:
            for session in tuple(self._sessions.get(message.agent_id, ())):
                if not session.offer(message) and not session.overflowed:
                    log.warning("push.client_too_slow", agent_id=session.agent_id, session=session.id)
                    self.unregister(session)
                    task = asyncio.ensure_future(session.drop_for_slowness())
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)
