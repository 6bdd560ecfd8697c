"""From a verified vendor event to stored call state, history, tasks and the agents' pops.

Everything an event changes is written in one transaction, together with the messages it produces;
the webhook is answered only after that commit, and the messages reach the sockets only after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commhub.contacts.caller_id import CallerId
from commhub.log import get_logger
from commhub.push.dispatch import Dispatcher, Message
from commhub.push.hub import Hub
from commhub.store import calls as stored
from commhub.store.history import add_entry
from commhub.store.models import Call, HistoryEntry
from commhub.telephony import callbacks, routing
from commhub.telephony.calls import Change, apply
from commhub.telephony.contract import CallEvent
from commhub.telephony.screen_pop import match_snapshot, pop_matches

log = get_logger("commhub.calls")


@dataclass(frozen=True)
class Received:
    """What became of one event: the call it belongs to, and whether it was new."""

    call_id: int
    state: str
    duplicate: bool


class CallDesk:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], caller_id: CallerId, dispatcher: Dispatcher,
                 hub: Hub, *, region: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self._caller_id = caller_id
        self._dispatcher = dispatcher
        self._hub = hub
        self._region = region
        self._now = now

    async def receive(self, source: str, options: dict[str, Any], events: list[CallEvent],
                      received_at: datetime) -> list[Received]:
        return [await self._one(source, options, event, received_at) for event in events]

    async def _one(self, source: str, options: dict[str, Any], event: CallEvent,
                   received_at: datetime) -> Received:
        for attempt in (1, 2):
            try:
                async with self._dispatcher.lock:
                    received, staged = await self._store(source, options, event, received_at)
                    self._hub.deliver(staged)
                return received
            except IntegrityError:
                # Another node stored the same call or event between our read and our write: read again.
                self._dispatcher.forget()
                if attempt == 2:
                    raise
            except BaseException:
                self._dispatcher.forget()
                raise
        raise AssertionError("unreachable")

    async def _store(self, source: str, options: dict[str, Any], event: CallEvent,
                     received_at: datetime) -> tuple[Received, list[Message]]:
        at = event.occurred_at or received_at
        key = stored.dedupe_key(event)
        async with self._sessions() as session, session.begin():
            call = await stored.find_call(session, source, event.call_id)
            if call is not None and await stored.seen_event(session, call, key):
                return Received(call.id, call.state, duplicate=True), []
            before = stored.facts_of(call) if call is not None else None
            change = apply(before, event, at)
            pop: dict[str, Any] = {}
            if call is None:
                call, pop = await self._open_call(session, source, options, event, change)
            stored.store_facts(call, change.after)
            await self._learn(session, call, event)
            session.add(stored.event_row(call, event, key, at))
            staged = await self._consequences(session, call, change, pop)
        log.info("call.event", source=source, call_id=call.id, phase=event.phase.value, state=call.state,
                 agents=len(call.agent_ids), pushed=len(staged))
        return Received(call.id, call.state, duplicate=False), staged

    async def _open_call(self, session: AsyncSession, source: str, options: dict[str, Any], event: CallEvent,
                         change: Change) -> tuple[Call, dict[str, Any]]:
        """A call seen for the first time: whose number it is, and whom it rings."""
        customer = event.caller if event.direction == "in" else event.callee
        match = await self._caller_id.match(customer)
        agent_side = [event.callee] if event.direction == "in" else [event.caller]
        keys = routing.routing_keys([*event.targets, *agent_side, event.answered_by], self._region)
        agent_ids, fallback = await routing.route(session, keys, options)
        caller = match.number if event.direction == "in" else None
        call = Call(source=source, provider_call_id=event.call_id, direction=event.direction,
                    state=change.after.state, started_at=change.after.started_at,
                    caller_raw=event.caller, callee_raw=event.callee,
                    caller_e164=caller.e164 if caller else None, withheld=bool(caller and caller.withheld),
                    customer_e164=match.number.e164, caller_name=event.caller_name,
                    targets=list(event.targets), agent_ids=agent_ids, matches=match_snapshot(match),
                    related_call_id=event.related_call_id)
        session.add(call)
        await session.flush()
        pop = {"caller": match.to_json()["number"], "ambiguous": match.ambiguous, "explanation": match.explain(),
               "routed": "fallback" if fallback else "direct"}
        return call, pop

    async def _learn(self, session: AsyncSession, call: Call, event: CallEvent) -> None:
        """Later events may name who answered, or more targets: the agents concerned grow with them."""
        call.caller_name = call.caller_name or event.caller_name
        call.related_call_id = call.related_call_id or event.related_call_id
        new_targets = [t for t in event.targets if t not in call.targets]
        if new_targets:
            call.targets = [*call.targets, *new_targets]
        if event.answered_by and call.answered_by == event.answered_by and call.answered_by_agent_id is None:
            keys = routing.routing_keys([event.answered_by], self._region)
            found = await routing.agents_for_keys(session, keys)
            if found:
                call.answered_by_agent_id = found[0]
                if found[0] not in call.agent_ids:
                    call.agent_ids = [*call.agent_ids, found[0]]

    async def _consequences(self, session: AsyncSession, call: Call, change: Change,
                            pop: dict[str, Any]) -> list[Message]:
        stage = self._dispatcher.stage
        staged: list[Message] = []
        names = await stored.agent_names(session, {call.answered_by_agent_id} - {None})  # type: ignore[arg-type]
        if change.created and call.ended_at is None:
            payload = {"call": stored.call_json(call, names), **pop,
                       "matches": await pop_matches(session, call.matches)}
            staged += await stage(session, call.agent_ids, "call.ringing", payload)
        if change.answered_now:
            by = {"agent_id": call.answered_by_agent_id, "key": call.answered_by,
                  "name": names.get(call.answered_by_agent_id or 0)}
            staged += await stage(session, call.agent_ids, "call.answered",
                                  {"call": stored.call_json(call, names), "by": by})
        if change.ended_now or change.verdict_changed:
            staged += await self._ended(session, call, change, names)
        return staged

    async def _ended(self, session: AsyncSession, call: Call, change: Change, names: dict[int, str]
                     ) -> list[Message]:
        stage = self._dispatcher.stage
        staged: list[Message] = []
        entry = await self._file_call(session, call, names)
        if call.state == "missed":
            filed = await callbacks.file_missed_call(session, call, self._now())
            if filed is not None:
                task, created = filed
                staged += await stage(session, self._task_audience(call, task.assignee_agent_id),
                                      "task.created" if created else "task.updated",
                                      {"task": callbacks.task_json(task)})
        elif change.verdict_changed:
            task = await callbacks.withdraw_call(session, call)
            if task is not None:
                staged += await stage(session, self._task_audience(call, task.assignee_agent_id), "task.updated",
                                      {"task": callbacks.task_json(task)})
        staged += await stage(session, call.agent_ids, "call.ended",
                              {"call": stored.call_json(call, names), "history_entry_id": entry.id,
                               "corrected": change.verdict_changed})
        return staged

    @staticmethod
    def _task_audience(call: Call, assignee: int | None) -> list[int]:
        return [assignee] if assignee is not None else list(call.agent_ids)

    async def _file_call(self, session: AsyncSession, call: Call, names: dict[int, str]) -> HistoryEntry:
        """The call on the timeline of every matched file; a corrected verdict updates the same entry."""
        title = call_title(call, names.get(call.answered_by_agent_id or 0))
        data = {"direction": call.direction, "state": call.state, "duration": call.duration,
                "number": call.customer_e164, "withheld": call.withheld, "source": call.source}
        existing = await session.scalar(select(HistoryEntry).where(HistoryEntry.call_id == call.id,
                                                                   HistoryEntry.kind == "call"))
        if existing is not None:
            existing.title, existing.data = title, data
            return existing
        contacts = [m["id"] for m in call.matches if m["kind"] == "contact"]
        organizations = [m["id"] for m in call.matches if m["kind"] == "organization"]
        return await add_entry(session, kind="call", title=title, data=data, agent_id=call.answered_by_agent_id,
                               contact_ids=contacts, organization_ids=organizations,
                               occurred_at=call.started_at, call_id=call.id)


def call_title(call: Call, answered_by: str | None) -> str:
    way = "Incoming call" if call.direction == "in" else "Outgoing call"
    if call.state == "completed":
        minutes, seconds = divmod(call.duration or 0, 60)
        who = f" with {answered_by}" if answered_by else ""
        return f"{way}{who}, {minutes}:{seconds:02d} min"
    wording = {"missed": "missed" if call.direction == "in" else "not answered", "busy": "busy",
               "rejected": "rejected", "failed": "failed",
               "forwarded": "forwarded"}
    return f"{way}, {wording.get(call.state, call.state)}"
