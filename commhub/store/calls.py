"""A stored call (`CallRow`, see call_sql.py) as the state machine's facts and as JSON; event dedupe keys."""

from __future__ import annotations

from typing import Any

from commhub.store.call_sql import CallRow
from commhub.telephony.calls import CallFacts
from commhub.telephony.contract import CallEvent, Outcome

MAX_PAGE = 200  # the longest page of GET /api/calls


def facts_of(call: CallRow) -> CallFacts:
    return CallFacts(direction=call.direction, started_at=call.started_at, answered_at=call.answered_at,
                     ended_at=call.ended_at, answered_by=call.answered_by,
                     vendor_outcome=Outcome(call.vendor_outcome) if call.vendor_outcome else None,
                     duration=call.duration)


def store_facts(call: CallRow, facts: CallFacts) -> None:
    call.state = facts.state
    call.started_at = facts.started_at
    call.answered_at = facts.answered_at
    call.ended_at = facts.ended_at
    call.answered_by = facts.answered_by
    call.vendor_outcome = facts.vendor_outcome.value if facts.vendor_outcome else None
    call.duration = facts.talk_seconds() if facts.ended_at is not None else None


def dedupe_key(event: CallEvent) -> str:
    """Two deliveries of the same event give the same key; the vendor's own id wins when it has one."""
    if event.event_id:
        return f"id:{event.event_id}"[:400]
    stamp = event.occurred_at.isoformat() if event.occurred_at else ""
    parts = (event.phase.value, ",".join(sorted(event.targets)), event.answered_by or "",
             event.outcome.value if event.outcome else "", str(event.duration or ""), stamp)
    return "|".join(parts)[:400]


def event_data(event: CallEvent) -> dict[str, Any]:
    data = {name: value for name, value in event.__dict__.items() if value not in (None, ())}
    for name, value in data.items():
        if hasattr(value, "isoformat"):
            data[name] = value.isoformat()
        elif isinstance(value, tuple):
            data[name] = list(value)
        elif hasattr(value, "value"):
            data[name] = value.value
    data.pop("caller", None)  # the number is kept once, on the call, so erasure finds it in one place
    return data


def call_json(call: CallRow, agents: dict[int, str] | None = None) -> dict[str, Any]:
    agents = agents or {}
    answered_by = None
    if call.answered_by_agent_id is not None or call.answered_by:
        answered_by = {"agent_id": call.answered_by_agent_id, "key": call.answered_by,
                       "name": agents.get(call.answered_by_agent_id or 0)}
    return {
        "id": call.id, "source": call.source, "provider_call_id": call.provider_call_id,
        "direction": call.direction, "state": call.state,
        "caller": {"raw": call.caller_raw, "e164": call.caller_e164, "withheld": call.withheld,
                   "name": call.caller_name},
        "callee": call.callee_raw, "customer_number": call.customer_e164,
        "started_at": call.started_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration": call.duration, "agent_ids": list(call.agent_ids), "answered_by": answered_by,
        "matches": [{key: m.get(key) for key in ("kind", "id", "name", "company", "class", "via")}
                    for m in call.matches],
        "related_call_id": call.related_call_id, "task_id": call.task_id,
    }


