"""sipgate.io push events (newCall, answer, hangup) as commhub call events.

Field names from sipgate's API reference (sipgate/docs, docs/push-api/api-reference.md) and its
official library (sipgate-io/sipgateio-node, lib/webhook/webhook.types.ts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from commhub.telephony.contract import (
    as_direction,
    CallEvent,
    Direction,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    SourceContext,
    every,
    first,
    plus_e164,
)

from .reply import empty_response

PHASES = {"newCall": Phase.RINGING, "answer": Phase.ANSWERED, "hangup": Phase.ENDED}

CAUSES: dict[str, Outcome | None] = {
    "normalClearing": None,  # the core knows whether an answer came first
    "busy": Outcome.BUSY,
    "cancel": Outcome.MISSED,  # the caller hung up before anyone picked up
    "noAnswer": Outcome.REJECTED,  # sipgate: "the called party rejected the call (e.g. through a DND setting)"
    "congestion": Outcome.FAILED,
    "notFound": Outcome.FAILED,
    "forwarded": Outcome.FORWARDED,  # the call goes on as a new newCall with `diversion`; see README
}


def parse(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    event = first(fields, "event") or ""
    if event not in PHASES:
        # `dtmf` (answers to <Gather>) and whatever sipgate adds later
        raise IgnoredEvent(f"sipgate event {event!r} is not a call event", reply=empty_response())
    call = CallEvent(
        call_id=first(fields, "callId") or "",
        phase=PHASES[event],
        direction=direction(fields),
        caller=plus_e164(first(fields, "from", required=False)),
        callee=plus_e164(first(fields, "to", required=False)),
        related_call_id=first(fields, "origCallId", required=False)
        or first(fields, "originalCallId", required=False),
    )
    if call.phase is Phase.RINGING:
        return [replace(call, targets=targets(fields))]
    if call.phase is Phase.ANSWERED:
        return [replace(call, answered_by=answered_by(fields))]
    return [replace(call, outcome=CAUSES.get(first(fields, "cause", required=False) or ""))]


def direction(fields: Mapping[str, list[str]]) -> Direction:
    value = first(fields, "direction")
    return as_direction(value)


def targets(fields: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Every key an admin may know a sipgate user by: `w0`, `1234567w0`, the user's name."""
    keys = every(fields, "userId") + every(fields, "fullUserId") + every(fields, "user")
    return tuple(dict.fromkeys(keys))


def answered_by(fields: Mapping[str, list[str]]) -> str | None:
    for name in ("userId", "fullUserId", "user", "answeringNumber"):
        value = first(fields, name, required=False)
        if value:
            return value
    return None
