"""3CX's call journal (`ReportCall` scenario of the CRM template) -> one ended call event.

3CX journals a call once, after it ended, without a call id: commhub may never have seen the call.
The id is derived from the journal entry itself, so the same entry posted twice is the same call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from commhub.telephony.contract import (
    CallEvent,
    Direction,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    Reply,
    SourceContext,
    first,
)

from adapters.threecx.when import journal_time, seconds

# [CallType] -> (direction, outcome). Notanswered: our agent called out, nobody picked up.
CALL_TYPES: dict[str, tuple[Direction, Outcome]] = {
    "inbound": ("in", Outcome.COMPLETED),
    "missed": ("in", Outcome.MISSED),
    "outbound": ("out", Outcome.COMPLETED),
    "notanswered": ("out", Outcome.MISSED),
}

JOURNAL_REPLY = Reply("{}", "application/json")


def parse_journal(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    call_type = first(fields, "CallType") or ""
    if call_type.lower() not in CALL_TYPES:
        raise IgnoredEvent(f"3CX CallType {call_type!r} is not journaled by commhub", JOURNAL_REPLY)
    direction, outcome = CALL_TYPES[call_type.lower()]
    number = first(fields, "Number", required=False)
    agent = first(fields, "Agent", required=False)
    if number is None and direction == "in":
        number = "anonymous"  # 3CX journals a withheld caller with an empty [Number]
    return [CallEvent(
        call_id=journal_call_id(fields),
        phase=Phase.ENDED,
        direction=direction,
        caller=number if direction == "in" else agent,
        callee=agent if direction == "in" else number,
        targets=(agent,) if agent else (),
        answered_by=agent if outcome is Outcome.COMPLETED and direction == "in" else None,
        outcome=outcome,
        occurred_at=ended_at(fields, source),
        duration=seconds(first(fields, "Duration", required=False)),
        caller_name=first(fields, "Name", required=False) if direction == "in" else None,
    )]


def journal_call_id(fields: Mapping[str, list[str]]) -> str:
    parts = [first(fields, name, required=False) or "" for name in
             ("CallType", "Number", "Agent", "DateTime", "CallStartTimeUTC")]
    return "3cx-" + hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()[:24]


def ended_at(fields: Mapping[str, list[str]], source: SourceContext) -> datetime | None:
    """The end of the call when the template sends it, else 3CX's locale-formatted [DateTime]."""
    zone = source.option("timezone")
    for name in ("CallEndTimeUTC", "DateTime", "CallStartTimeUTC"):
        when = journal_time(first(fields, name, required=False), "UTC" if name.endswith("UTC") else zone)
        if when is not None:
            return when
    return None
