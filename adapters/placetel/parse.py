"""Placetel Notify API events as commhub call events.

Fields per Placetel's README (github.com/Placetel/call-control-notify-api): `event` IncomingCall |
OutgoingCall | CallAccepted | HungUp, `call_id` (hex SHA-256), `from`, `to` (national numbers such as
022129191999, `anonymous`, SIP ids for internal calls), `peer` (the SIP user), `direction` (in|out),
and on HungUp `type` and `duration`.
"""

from __future__ import annotations

from collections.abc import Mapping

from commhub.telephony.contract import (
    as_direction,
    CallEvent,
    Direction,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    Reply,
    SourceContext,
    first,
    whole_seconds,
)

PHASES = {"IncomingCall": Phase.RINGING, "OutgoingCall": Phase.RINGING,
          "CallAccepted": Phase.ANSWERED, "HungUp": Phase.ENDED}

# Placetel sends only answered incoming calls as CallAccepted; older API versions sent no `direction`
# and notified incoming calls only, so an event without it is inbound
DIRECTIONS: dict[str, Direction] = {"OutgoingCall": "out"}

OUTCOMES = {
    "accepted": Outcome.COMPLETED,
    "voicemail": Outcome.MISSED,  # nobody of ours took it
    "missed": Outcome.MISSED,
    "canceled": Outcome.MISSED,
    "blocked": Outcome.REJECTED,
    "busy": Outcome.BUSY,
    "unavailable": Outcome.FAILED,
    "congestion": Outcome.FAILED,
}


def parse(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    event = first(fields, "event") or ""
    if event not in PHASES:
        raise IgnoredEvent(f"Placetel event {event!r} is not a call event", reply=Reply(""))
    phase = PHASES[event]
    peer = first(fields, "peer", required=False)
    return [CallEvent(
        call_id=first(fields, "call_id") or "",
        phase=phase,
        direction=direction(fields, event),
        caller=first(fields, "from", required=False),
        callee=first(fields, "to", required=False),
        targets=(peer,) if peer and phase is Phase.RINGING else (),
        answered_by=peer if phase is Phase.ANSWERED else None,
        outcome=OUTCOMES.get(first(fields, "type", required=False) or "") if phase is Phase.ENDED else None,
        duration=duration(fields) if phase is Phase.ENDED else None,
    )]


def direction(fields: Mapping[str, list[str]], event: str) -> Direction:
    value = first(fields, "direction", required=False) or DIRECTIONS.get(event, "in")
    return as_direction(value)


def duration(fields: Mapping[str, list[str]]) -> int | None:
    value = first(fields, "duration", required=False)
    if value is None:
        return None
    return whole_seconds(value, "duration")
