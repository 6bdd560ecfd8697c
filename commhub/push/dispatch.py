"""Numbering, storing and handing over the messages for agents.

Every message an agent should see gets the agent's next `seq` and is written to the backlog in the
same transaction as the change it reports; it reaches the live sessions only after that commit.
One lock orders it all: the seq order is the commit order is the delivery order, and a client that
resumes after seq N gets exactly what came later.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commhub.store import messages

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message:
    agent_id: int
    seq: int
    type: str
    text: str  # the JSON the socket sends


def encode(type_: str, seq: int, ts: datetime, payload: dict[str, Any]) -> str:
    return json.dumps({"type": type_, "seq": seq, "ts": ts.isoformat(), **payload}, ensure_ascii=False,
                      separators=(",", ":"))


class Dispatcher:
    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.lock = asyncio.Lock()
        self._now = now
        self._seq: dict[int, int] = {}

    def current_seq(self, agent_id: int) -> int | None:
        return self._seq.get(agent_id)

    async def known_seq(self, session: AsyncSession, agent_id: int) -> int:
        if agent_id not in self._seq:
            self._seq[agent_id] = await messages.last_seq(session, agent_id)
        return self._seq[agent_id]

    async def stage(self, session: AsyncSession, agent_ids: Iterable[int], type_: str,
                    payload: dict[str, Any]) -> list[Message]:
        """Number and store one message for each agent. Hold `lock` from here until delivery."""
        ts = self._now()
        staged, rows = [], []
        for agent_id in dict.fromkeys(agent_ids):
            seq = await self.known_seq(session, agent_id) + 1
            self._seq[agent_id] = seq
            rows.append({"agent_id": agent_id, "seq": seq, "type": type_, "payload": payload, "created_at": ts})
            staged.append(Message(agent_id, seq, type_, encode(type_, seq, ts, payload)))
        await messages.append(session, rows)
        return staged

    def forget(self) -> None:
        """After a failed transaction the numbers handed out may be unused; re-read them next time."""
        self._seq.clear()


Work = Callable[[AsyncSession, "Dispatcher"], Awaitable[tuple[T, list[Message]]]]


async def write_and_push(sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher,
                         deliver: Callable[[list[Message]], None], work: Work[T]) -> T:
    """Run `work` in one transaction under the dispatch lock; deliver its messages after the commit."""
    async with dispatcher.lock:
        try:
            async with sessions() as session, session.begin():
                result, staged = await work(session, dispatcher)
        except BaseException:
            dispatcher.forget()
            raise
        deliver(staged)
    return result
