"""commhub's own event format: what a PBX script that can call a URL sends (see README.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from commhub.telephony.contract import (
    MAX_SECONDS,
    BadPayload,
    CallEvent,
    Direction,
    Outcome,
    Phase,
    as_direction,
    every,
    first,
    plausible_time,
)

EVENTS = {"ringing": Phase.RINGING, "answered": Phase.ANSWERED, "ended": Phase.ENDED}


def parse_commhub(fields: Mapping[str, list[str]]) -> CallEvent:
    phase = EVENTS[first(fields, "event") or ""]
    return CallEvent(
        call_id=first(fields, "call_id") or "",
        phase=phase,
        direction=direction(fields),
        caller=first(fields, "from", required=False),
        callee=first(fields, "to", required=False),
        targets=tuple(dict.fromkeys(every(fields, "targets"))),
        answered_by=first(fields, "answered_by", required=False),
        outcome=outcome(fields) if phase is Phase.ENDED else None,
        occurred_at=occurred_at(fields),
        duration=duration(fields),
        related_call_id=first(fields, "related_call_id", required=False),
        caller_name=first(fields, "caller_name", required=False),
        event_id=first(fields, "event_id", required=False),
    )


def direction(fields: Mapping[str, list[str]]) -> Direction:
    value = first(fields, "direction")
    return as_direction(value)


def outcome(fields: Mapping[str, list[str]]) -> Outcome | None:
    value = first(fields, "outcome", required=False)
    if value is None:
        return None
    try:
        return Outcome(value)
    except ValueError:
        known = ", ".join(item.value for item in Outcome)
        raise BadPayload(f"outcome must be one of {known}, not {value!r}", field="outcome") from None


def occurred_at(fields: Mapping[str, list[str]]) -> datetime | None:
    """ISO-8601 with a UTC offset, or Unix seconds; a time without offset is refused, not guessed."""
    value = first(fields, "timestamp", required=False)
    if value is None:
        return None
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise BadPayload(f"timestamp {value!r} is neither ISO-8601 nor Unix seconds", field="timestamp") from None
    if moment.tzinfo is None:
        raise BadPayload("timestamp needs a UTC offset (…Z or …+01:00)", field="timestamp")
    return plausible_time(moment, "timestamp")


def duration(fields: Mapping[str, list[str]]) -> int | None:
    value = first(fields, "duration", required=False)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise BadPayload(f"duration must be seconds (a number >= 0), not {value!r}", field="duration")
    return round(seconds)
