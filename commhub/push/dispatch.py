"""Numbering, storing and handing over the messages for agents.

Every message an agent should see gets the agent's next `seq` and is written to the backlog in the
same transaction as the change it reports; it reaches the live sessions only after that commit.
`CallDatabase` runs transactions one at a time and hands control back in the same order, so the seq
order is the commit order is the delivery order, and a client that resumes after seq N gets
exactly what came later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from commhub.store.call_db import CallDatabase
from commhub.store.call_sql import CallSql

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
    """Owns the per-agent sequence numbers. `stage` runs only inside `CallDatabase` transactions."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._seq: dict[int, int] = {}

    def current_seq(self, agent_id: int) -> int | None:
        return self._seq.get(agent_id)

    def known_seq(self, sql: CallSql, agent_id: int) -> int:
        if agent_id not in self._seq:
            self._seq[agent_id] = sql.last_seq(agent_id)
        return self._seq[agent_id]

    def stage(self, sql: CallSql, agent_ids: Iterable[int], type_: str, payload: dict[str, Any]) -> list[Message]:
        """Number and store one message for each agent; deliver them after the commit."""
        ts = self._now()
        staged, rows = [], []
        for agent_id in dict.fromkeys(agent_ids):
            seq = self.known_seq(sql, agent_id) + 1
            self._seq[agent_id] = seq
            rows.append({"agent_id": agent_id, "seq": seq, "type": type_, "payload": payload, "created_at": ts})
            staged.append(Message(agent_id, seq, type_, encode(type_, seq, ts, payload)))
        sql.insert_messages(rows)
        return staged

    def forget(self) -> None:
        """After a failed transaction the numbers handed out are unused; read them again next time."""
        self._seq.clear()


Work = Callable[[CallSql, Dispatcher], tuple[T, list[Message]]]


async def write_and_push(database: CallDatabase, dispatcher: Dispatcher,
                         deliver: Callable[[list[Message]], None], work: Work[T]) -> T:
    """Run `work` as one write transaction; deliver the messages it staged once it is committed."""
    result, staged = await database.run(lambda sql: work(sql, dispatcher), on_error=dispatcher.forget)
    deliver(staged)
    return result
