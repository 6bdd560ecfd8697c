"""The hub never waits for a client: one that stops reading is dropped (1013) and the others go on."""

from __future__ import annotations

import asyncio

from commhub.push.dispatch import Message
from commhub.push.hub import TOO_SLOW, AgentSession, Hub


class FakeSocket:
    """A client connection: `stalled` ones never finish a send, like a peer that stopped reading."""

    def __init__(self, stalled: bool = False) -> None:
        self.stalled = stalled
        self.received: list[str] = []
        self.closed_with: tuple[int, str] | None = None

    async def send(self, text: str) -> None:
        if self.stalled:
            await asyncio.Event().wait()
        self.received.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def message(agent_id: int, seq: int) -> Message:
    return Message(agent_id, seq, "call.ringing", f'{{"seq": {seq}}}')


async def test_a_stalled_client_is_dropped_and_the_others_keep_receiving() -> None:
    hub = Hub()
    slow_socket, quick_socket = FakeSocket(stalled=True), FakeSocket()
    slow = AgentSession(1, slow_socket.send, slow_socket.close, queue_size=4)
    quick = AgentSession(2, quick_socket.send, quick_socket.close, queue_size=4)
    writers = [asyncio.create_task(session.write()) for session in (slow, quick)]
    hub.register(slow)
    hub.register(quick)
    for seq in range(1, 21):
        hub.deliver([message(1, seq), message(2, seq)])
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert slow_socket.closed_with is not None and slow_socket.closed_with[0] == TOO_SLOW
    assert hub.online(1) == 0 and hub.online(2) == 1
    assert len(quick_socket.received) == 20
    for writer in writers:
        writer.cancel()
    await asyncio.gather(*writers, return_exceptions=True)


async def test_replayed_messages_are_not_sent_again_from_the_queue() -> None:
    socket = FakeSocket()
    session = AgentSession(1, socket.send, socket.close, queue_size=8)
    session.offer(message(1, 5))  # live copy queued while the replay reads the backlog
    assert await session.replay([(4, "four"), (5, "five")]) == 2
    session.offer(message(1, 6))
    writer = asyncio.create_task(session.write())
    await asyncio.sleep(0.01)
    writer.cancel()
    assert socket.received == ["four", "five", '{"seq": 6}']
