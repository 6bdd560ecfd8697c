"""Numbering, storing and handing over the messages for agents.

Every message an agent should see gets the agent's next `seq` and is written to the backlog in the
same transaction as the change it reports; it reaches the live sessions only after that commit.
`CallDatabase` runs transactions one at a time and hands control back in the same order, so the seq
order is the commit order is the delivery order, and a client that resumes after seq N gets
exactly what came later.

Shared (PostgreSQL, any number of nodes): the numbers come from the database instead. A transaction
takes each of its agents' advisory lock before reading the agent's last seq, and holds it until it
commits, so the next number is only handed out after the previous one is committed. Its messages
travel to every node, this one included, as notifications of the same commit; PostgreSQL delivers
those in commit order, so the seq order is still the delivery order on every node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from commhub.push.message import Message, encode
from commhub.push.notices import CHANNEL, encode_notices
from commhub.store.call_db import CallDatabase
from commhub.store.call_sql import CallSql

T = TypeVar("T")
__all__ = ["Dispatcher", "Message", "encode", "write_and_push"]


class Dispatcher:
    """Owns the per-agent sequence numbers. `stage` runs only inside `CallDatabase` transactions."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC), *, shared: bool = False) -> None:
        self._now = now
        self._seq: dict[int, int] = {}
        self.shared = shared

    def current_seq(self, agent_id: int) -> int | None:
        """The agent's last seq if this node knows it for sure (never when other nodes number too)."""
        return None if self.shared else self._seq.get(agent_id)

    def known_seq(self, sql: CallSql, agent_id: int) -> int:
        if agent_id not in self._seq:
            self._seq[agent_id] = sql.last_seq(agent_id)
        return self._seq[agent_id]

    def stage(self, sql: CallSql, agent_ids: Iterable[int], type_: str, payload: dict[str, Any]) -> list[Message]:
        """Number and store one message for each agent; deliver them after the commit."""
        ts = self._now()
        at = time.time()
        ids = list(dict.fromkeys(agent_ids))
        if not ids:
            return []
        if self.shared:
            sql.lock_agent_seqs(ids)
            last = sql.last_seqs(ids)
        else:
            last = {agent_id: self.known_seq(sql, agent_id) for agent_id in ids}
        staged, rows = [], []
        for agent_id in ids:
            seq = last[agent_id] + 1
            if not self.shared:
                self._seq[agent_id] = seq
            rows.append({"agent_id": agent_id, "seq": seq, "type": type_, "payload": payload, "created_at": ts})
            staged.append(Message(agent_id, seq, type_, encode(type_, seq, ts, payload), at))
        sql.insert_messages(rows)
        if self.shared:
            for notice in encode_notices(staged):
                sql.notify(CHANNEL, notice)
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
