"""The shape of Zammad's "generic CTI" (sipgate's field names), so existing PBX scripts can switch over.

Fields per Zammad's API docs (docs.zammad.org, api/generic-cti) and its controller
(zammad/zammad app/models/cti/log.rb): `event` newCall|answer|hangup, `from`, `to`, `direction`,
`callId` (the code also reads `call_id`), `user` / `user[]`, `queue`, `cause`, `answeringNumber`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from commhub.telephony.contract import (
    BadPayload,
    CallEvent,
    Outcome,
    Phase,
    every,
    first,
    plus_e164,
)

from .commhub_format import direction

EVENTS = {"newCall": Phase.RINGING, "answer": Phase.ANSWERED, "hangup": Phase.ENDED}

# sipgate's hangup causes, as Zammad documents them; `voicemail` and `blocked` are what Zammad's own
# Placetel driver writes, so scripts ported from it may send them too
CAUSES: dict[str, Outcome | None] = {
    "normalClearing": None,  # the core knows whether the call was answered
    "busy": Outcome.BUSY,
    "cancel": Outcome.MISSED,  # the caller hung up before anyone picked up
    "noAnswer": Outcome.REJECTED,  # documented as "the called party rejected the call (e.g. DND)"
    "congestion": Outcome.FAILED,
    "notFound": Outcome.FAILED,
    "forwarded": Outcome.FORWARDED,  # the call goes on under a new call id
    "voicemail": Outcome.MISSED,
    "blocked": Outcome.REJECTED,
}

VOICEMAIL = "voicemail"


def parse_zammad(fields: Mapping[str, list[str]]) -> CallEvent:
    event = CallEvent(
        call_id=call_id(fields),
        phase=EVENTS[first(fields, "event") or ""],
        direction=direction(fields),
        caller=plus_e164(first(fields, "from", required=False)),
        callee=plus_e164(first(fields, "to", required=False)),
    )
    users = every(fields, "user")
    answering = first(fields, "answeringNumber", required=False)
    # Zammad applies its voicemail rule to inbound calls only (app/models/cti/log.rb)
    by_voicemail = event.direction == "in" and VOICEMAIL in {value.lower() for value in (*users, answering or "")}
    if event.phase is Phase.RINGING:
        return replace(event, targets=tuple(dict.fromkeys(users + every(fields, "queue"))))
    if event.phase is Phase.ANSWERED and by_voicemail:
        # Zammad counts a call taken by the voicemail as missed; for the agents it is over now
        return replace(event, phase=Phase.ENDED, outcome=Outcome.MISSED)
    if event.phase is Phase.ANSWERED:
        return replace(event, answered_by=answering or (users[0] if users else None))
    cause = first(fields, "cause", required=False) or ""
    return replace(event, outcome=Outcome.MISSED if by_voicemail else CAUSES.get(cause))


def call_id(fields: Mapping[str, list[str]]) -> str:
    value = first(fields, "callId", required=False) or first(fields, "call_id", required=False)
    if value is None:
        raise BadPayload("field 'callId' (or 'call_id') is missing or empty", field="callId")
    return value
