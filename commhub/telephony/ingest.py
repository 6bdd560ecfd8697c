"""From a verified vendor event to stored call state, history, tasks and the agents' pops.

Everything an event changes is written in one transaction, together with the messages it produces;
the webhook is answered only after that commit, and the messages reach the sockets only after it.
The transaction is hand-written SQL run by `CallDatabase` (on SQLite in the loop's own thread).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlite3

from sqlalchemy.exc import IntegrityError

from commhub.contacts.caller_id import CallerId
from commhub.contacts.matching import CallerMatch
from commhub.log import get_logger
from commhub.push.dispatch import Dispatcher, Message
from commhub.push.hub import Hub
from commhub.store import calls as stored
from commhub.store.call_db import CallDatabase
from commhub.store.call_sql import CallRow, CallSql
from commhub.telephony import callbacks, routing
from commhub.telephony.calls import Change, apply
from commhub.telephony.contract import CallEvent
from commhub.telephony.screen_pop import match_snapshot, pop_matches

log = get_logger("commhub.calls")
# Calls seen lately: their events need no caller-ID match (it is stored on the call).
KNOWN_CALLS = 10_000


@dataclass(frozen=True)
class Received:
    """What became of one event: the call it belongs to, and whether it was new."""

    call_id: int
    state: str
    duplicate: bool
    pushed: int


class _MatchNeeded(Exception):  # noqa: N818 - control flow between the transaction and the loop
    pass


@dataclass(frozen=True)
class Incoming:
    source: str
    options: dict[str, Any]
    event: CallEvent
    at: datetime  # when it happened: the vendor's time, else when it arrived
    key: str  # dedupe key
    match: CallerMatch | None  # the caller-ID match, made before the transaction for a call not seen yet


class CallDesk:
    def __init__(self, database: CallDatabase, caller_id: CallerId, dispatcher: Dispatcher, hub: Hub, *, region: str,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._database = database
        self._caller_id = caller_id
        self._dispatcher = dispatcher
        self._hub = hub
        self._region = region
        self._now = now
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def receive(self, source: str, options: dict[str, Any], events: list[CallEvent],
                      received_at: datetime) -> list[Received]:
        return [await self._one(source, options, event, received_at) for event in events]

    async def _one(self, source: str, options: dict[str, Any], event: CallEvent,
                   received_at: datetime) -> Received:
        customer = event.caller if event.direction == "in" else event.callee
        match = None
        if (source, event.call_id) not in self._known:
            # Matching reads the caller-ID index outside the write transaction: the answer is the
            # same either way, and the one writer stays free for writing.
            match = await self._match(customer)
        incoming = Incoming(source, options, event, event.occurred_at or received_at, stored.dedupe_key(event),
                            match)
        for attempt in range(1, 4):
            try:
                received, staged = await self._database.run(lambda sql: self._store(sql, incoming),
                                                            on_error=self._dispatcher.forget)
                break
            except _MatchNeeded:
                incoming = replace(incoming, match=await self._match(customer))
            except (IntegrityError, sqlite3.IntegrityError):
                # Another node stored the same call or event between our read and our write: read again.
                if attempt == 3:
                    raise
        else:
            raise RuntimeError(f"call event for {event.call_id!r} could not be stored")
        self._hub.deliver(staged)
        self._remember(source, event.call_id)
        log.info("call.event", source=source, call_id=received.call_id, phase=event.phase.value,
                 state=received.state, duplicate=received.duplicate, pushed=received.pushed)
        return received

    async def _match(self, customer: str | None) -> CallerMatch:
        """The caller-ID match, within the database's deadline: on PostgreSQL it reads through the pool."""
        async with self._database.deadline():
            return await self._caller_id.match(customer)

    def _remember(self, source: str, call_id: str) -> None:
        self._known[(source, call_id)] = None
        self._known.move_to_end((source, call_id))
        if len(self._known) > KNOWN_CALLS:
            self._known.popitem(last=False)

    # --- inside the write transaction (synchronous) ---------------------------------------------

    def _store(self, sql: CallSql, incoming: Incoming) -> tuple[Received, list[Message]]:
        event = incoming.event
        now = self._now()
        call = sql.find_call(incoming.source, event.call_id)
        if call is not None and sql.seen_event(call.id, incoming.key):
            return Received(call.id, call.state, duplicate=True, pushed=0), []
        if call is None and incoming.match is None:
            raise _MatchNeeded  # remembered as known, but not stored here (erased, or another node's)
        before = stored.facts_of(call) if call is not None else None
        change = apply(before, event, incoming.at)
        pop: dict[str, Any] = {}
        newly_rung: list[int] = []
        if call is None:
            assert incoming.match is not None
            call, pop = self._open_call(sql, incoming, change, incoming.match, now)
        else:
            newly_rung = self._learn(sql, call, event)
            stored.store_facts(call, change.after)
        sql.insert_event(call.id, event.phase.value, incoming.key, incoming.at, now, stored.event_data(event))
        staged = self._consequences(sql, call, change, pop, newly_rung)
        if not change.created:
            sql.update_call(call, now)
        return Received(call.id, call.state, duplicate=False, pushed=len(staged)), staged

    def _open_call(self, sql: CallSql, incoming: Incoming, change: Change, match: CallerMatch,
                   now: datetime) -> tuple[CallRow, dict[str, Any]]:
        """A call seen for the first time: whose number it is, and whom it rings."""
        event = incoming.event
        agent_side = event.callee if event.direction == "in" else event.caller
        keys = routing.routing_keys([*event.targets, agent_side, event.answered_by], self._region)
        agent_ids, fallback = routing.route(sql, keys, incoming.options)
        caller = match.number if event.direction == "in" else None
        call = CallRow(source=incoming.source, provider_call_id=event.call_id, direction=event.direction,
                       state=change.after.state, started_at=change.after.started_at,
                       caller_raw=event.caller, callee_raw=event.callee,
                       caller_e164=caller.e164 if caller else None, withheld=bool(caller and caller.withheld),
                       customer_e164=match.number.e164, caller_name=event.caller_name,
                       targets=list(event.targets), agent_ids=agent_ids, matches=match_snapshot(match),
                       related_call_id=event.related_call_id)
        if event.answered_by:
            call.answered_by_agent_id = self._agent_for(sql, event.answered_by)
        stored.store_facts(call, change.after)
        sql.insert_call(call, now)
        pop = {"caller": match.number_json(), "ambiguous": match.ambiguous, "explanation": match.explain(),
               "routed": "fallback" if fallback else "direct"}
        return call, pop

    def _agent_for(self, sql: CallSql, key: str) -> int | None:
        found = sql.agents_for_keys(routing.routing_keys([key], self._region))
        return found[0] if found else None

    def _learn(self, sql: CallSql, call: CallRow, event: CallEvent) -> list[int]:
        """Later events name who answered, or more phones that ring (ring groups, forked legs).
        Returns the agents the call now rings for the first time: they get their pop too."""
        call.caller_name = call.caller_name or event.caller_name
        call.related_call_id = call.related_call_id or event.related_call_id
        newly_rung: list[int] = []
        new_targets = [t for t in event.targets if t not in call.targets]
        if new_targets:
            call.targets = [*call.targets, *new_targets]
            keys = routing.routing_keys(new_targets, self._region)
            newly_rung = [a for a in sql.agents_for_keys(keys) if a not in call.agent_ids]
        if event.answered_by and call.answered_by_agent_id is None:
            agent_id = self._agent_for(sql, event.answered_by)
            if agent_id is not None:
                call.answered_by_agent_id = agent_id
                if agent_id not in call.agent_ids and agent_id not in newly_rung:
                    newly_rung.append(agent_id)
        if newly_rung:
            call.agent_ids = [*call.agent_ids, *newly_rung]
        return newly_rung

    def _consequences(self, sql: CallSql, call: CallRow, change: Change, pop: dict[str, Any],
                      newly_rung: list[int]) -> list[Message]:
        stage = self._dispatcher.stage
        staged: list[Message] = []
        names = sql.agent_names([call.answered_by_agent_id])
        ringing_for = list(call.agent_ids) if change.created else newly_rung
        if ringing_for and call.ended_at is None and (change.created or call.state == "ringing"):
            payload = {"call": stored.call_json(call, names), **(pop or self._pop_again(call)),
                       "matches": pop_matches(sql, call.matches)}
            staged += stage(sql, ringing_for, "call.ringing", payload)
        if change.answered_now:
            by = {"agent_id": call.answered_by_agent_id, "key": call.answered_by,
                  "name": names.get(call.answered_by_agent_id or 0)}
            staged += stage(sql, call.agent_ids, "call.answered", {"call": stored.call_json(call, names), "by": by})
        if change.ended_now or change.verdict_changed:
            staged += self._ended(sql, call, change, names)
        return staged

    @staticmethod
    def _pop_again(call: CallRow) -> dict[str, Any]:
        """Pop facts for an agent a ringing call reaches later, from what the call stored."""
        return {"caller": {"raw": call.caller_raw, "e164": call.customer_e164, "withheld": call.withheld},
                "ambiguous": len(call.matches) > 1, "explanation": "", "routed": "direct"}

    def _ended(self, sql: CallSql, call: CallRow, change: Change, names: dict[int, str]) -> list[Message]:
        stage = self._dispatcher.stage
        staged: list[Message] = []
        now = self._now()
        entry_id = self._file_call(sql, call, names, now)
        if call.state == "missed":
            filed = callbacks.file_missed_call(sql, call, now)
            if filed is not None:
                task, created = filed
                staged += stage(sql, self._task_audience(call, task.assignee_agent_id),
                                "task.created" if created else "task.updated", {"task": callbacks.task_json(task)})
        elif change.verdict_changed:
            task = callbacks.withdraw_call(sql, call)
            if task is not None:
                staged += stage(sql, self._task_audience(call, task.assignee_agent_id), "task.updated",
                                {"task": callbacks.task_json(task)})
        if change.created and call.task_id is not None:
            sql.update_call(call, now)  # a call first seen ended: its row learns its task
        staged += stage(sql, call.agent_ids, "call.ended",
                        {"call": stored.call_json(call, names), "history_entry_id": entry_id,
                         "corrected": change.verdict_changed})
        return staged

    @staticmethod
    def _task_audience(call: CallRow, assignee: int | None) -> list[int]:
        return [assignee] if assignee is not None else list(call.agent_ids)

    def _file_call(self, sql: CallSql, call: CallRow, names: dict[int, str], now: datetime) -> int:
        """The call on the timeline of every matched file; a corrected verdict updates the same entry."""
        title = call_title(call, names.get(call.answered_by_agent_id or 0))
        data = {"direction": call.direction, "state": call.state, "duration": call.duration,
                "number": call.customer_e164, "withheld": call.withheld, "source": call.source}
        existing = sql.call_entry_id(call.id)
        if existing is not None:
            sql.update_entry(existing, title, data)
            return existing
        return sql.add_entry(kind="call", title=title, body="", data=data, agent_id=call.answered_by_agent_id,
                             contact_ids=[m["id"] for m in call.matches if m["kind"] == "contact"],
                             organization_ids=[m["id"] for m in call.matches if m["kind"] == "organization"],
                             occurred_at=call.started_at, now=now, call_id=call.id)


def call_title(call: CallRow, answered_by: str | None) -> str:
    way = "Incoming call" if call.direction == "in" else "Outgoing call"
    if call.state == "completed":
        minutes, seconds = divmod(call.duration or 0, 60)
        who = f" with {answered_by}" if answered_by else ""
        return f"{way}{who}, {minutes}:{seconds:02d} min"
    wording = {"missed": "missed" if call.direction == "in" else "not answered", "busy": "busy",
               "rejected": "rejected", "failed": "failed", "forwarded": "forwarded"}
    return f"{way}, {wording.get(call.state, call.state)}"

