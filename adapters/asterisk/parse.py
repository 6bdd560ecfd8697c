"""Asterisk AMI-style call events (posted by a dialplan `CURL()` or an AMI bridge) -> commhub events.

Asterisk has no webhooks; commhub defines what a bridge posts, in AMI's own words: `Event`,
`Uniqueid`, `Linkedid`, `CallerIDNum`, `CallerIDName`, `Exten`, `DestExten`/`DestCallerIDNum`,
`ConnectedLineNum`, `Cause`, plus the dialplan's `DialStatus` (`${DIALSTATUS}`), `AnsweredTime`
(`${ANSWEREDTIME}`), `Timestamp` (`${EPOCH}`, or AMI's `timestampevents`) and `direction` (in|out).

Every leg of one call shares the `Linkedid` of the first channel, so that is the call id. A leg
that is not the first (`Uniqueid != Linkedid`) is a phone the call rings or a trunk it leaves by:
its hangup does not end the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from commhub.telephony.contract import (
    as_direction,
    BadPayload,
    CallEvent,
    Direction,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    Reply,
    SourceContext,
    every,
    first,
    MAX_SECONDS,
    plausible_time,
)

EMPTY_REPLY = Reply("", "text/plain")

# Dial()'s ${DIALSTATUS}: what happened to the call as a whole, better than the caller leg's cause
# (a caller who gives up while it rings hangs up with cause 16 "normal", DIALSTATUS says CANCEL).
DIAL_STATUS = {"ANSWER": Outcome.COMPLETED, "BUSY": Outcome.BUSY, "NOANSWER": Outcome.MISSED,
               "CANCEL": Outcome.MISSED, "CONGESTION": Outcome.FAILED, "CHANUNAVAIL": Outcome.FAILED,
               "DONTCALL": Outcome.REJECTED, "TORTURE": Outcome.REJECTED, "INVALIDARGS": Outcome.FAILED}

# Q.850 cause codes as Asterisk reports them (docs.asterisk.org "Hangup Cause Mappings").
# 16 normal clearing and anything unlisted: None, the core decides from whether it saw an answer.
CAUSES = {17: Outcome.BUSY, 18: Outcome.MISSED, 19: Outcome.MISSED, 20: Outcome.MISSED,
          21: Outcome.REJECTED, 1: Outcome.FAILED, 3: Outcome.FAILED, 27: Outcome.FAILED,
          28: Outcome.FAILED, 34: Outcome.FAILED, 38: Outcome.FAILED, 41: Outcome.FAILED, 42: Outcome.FAILED}

NOT_A_PARTY = {"", "s", "h", "<unknown>"}  # dialplan placeholders, not extensions


def parse_event(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    event = first(fields, "Event") or ""
    handler = HANDLERS.get(event.lower())
    if handler is None:
        raise IgnoredEvent(f"Asterisk event {event!r} is not one commhub follows", EMPTY_REPLY)
    return [handler(Leg(fields))]


class Leg:
    """One posted event: the channel it is about and the call that channel belongs to."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self.fields = fields
        unique = first(fields, "Uniqueid", required=False)
        linked = first(fields, "Linkedid", required=False)
        if not (unique or linked):
            raise BadPayload("field 'Uniqueid' is missing or empty", field="Uniqueid")
        self.call_id = linked or unique or ""
        self.is_first_leg = not (unique and linked and unique != linked)
        self.direction = direction(fields)

    def get(self, name: str) -> str | None:
        return first(self.fields, name, required=False)

    def party(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None or value.lower() in NOT_A_PARTY else value

    def agent(self) -> str | None:
        """The extension the call rings or that answered: the Dial() destination."""
        return self.party("DestExten") or self.party("DestCallerIDNum")

    def name(self, field: str) -> str | None:
        value = self.get(field)
        return None if value is None or value == "<unknown>" else value

    def event(self, phase: Phase, **extra: object) -> CallEvent:
        caller, callee = self.get("CallerIDNum"), self.party("Exten")
        targets = (callee,) if self.direction == "in" else (self.party("CallerIDNum"),)
        values: dict = {"caller": caller, "callee": callee, "targets": tuple(t for t in targets if t),
                        "caller_name": self.name("CallerIDName")}
        values.update(extra)
        return CallEvent(call_id=self.call_id, phase=phase, direction=self.direction,
                         occurred_at=timestamp(self.fields), **values)


def new_channel(leg: Leg) -> CallEvent:
    if not leg.is_first_leg:
        raise IgnoredEvent("a channel created for an existing call: DialBegin says who rings", EMPTY_REPLY)
    return leg.event(Phase.RINGING)


def dial_begin(leg: Leg) -> CallEvent:
    # a dialplan may name every phone of a ring group at once: DestExten=1001&DestExten=1002
    phones = tuple(p for p in every(leg.fields, "DestExten") if p.lower() not in NOT_A_PARTY)
    agents = phones or tuple(a for a in (leg.agent(),) if a)
    if leg.direction == "in" and agents:
        return leg.event(Phase.RINGING, targets=agents)
    return leg.event(Phase.RINGING)


def answered(leg: Leg) -> CallEvent:
    if (leg.get("Event") or "").lower() == "bridgeenter" and not leg.is_first_leg:
        # the answering phone's own channel: its caller ID is the agent, the connected line the caller
        agent = leg.party("CallerIDNum")
        return leg.event(Phase.ANSWERED, caller=leg.get("ConnectedLineNum"), callee=agent,
                         caller_name=leg.name("ConnectedLineName"),
                         targets=(agent,) if agent and leg.direction == "in" else (),
                         answered_by=agent if leg.direction == "in" else None)
    agent = leg.agent()
    extra: dict = {"answered_by": agent if leg.direction == "in" else None}
    if agent and leg.direction == "in":
        extra["targets"] = (agent,)
    return leg.event(Phase.ANSWERED, **extra)


def dial_end(leg: Leg) -> CallEvent:
    if (leg.get("DialStatus") or "").upper() != "ANSWER":
        raise IgnoredEvent("one dialled phone stopped ringing; the caller's hangup ends the call", EMPTY_REPLY)
    return answered(leg)


def hangup(leg: Leg) -> CallEvent:
    if not leg.is_first_leg:
        raise IgnoredEvent("a ringing or bridged phone hung up; the caller's hangup ends the call", EMPTY_REPLY)
    outcome = hangup_outcome(leg)
    agent = leg.agent()
    extra: dict = {"outcome": outcome, "duration": answered_time(leg.fields)}
    if agent and leg.direction == "in":
        extra["targets"] = (agent,)
        extra["answered_by"] = agent if outcome is Outcome.COMPLETED else None
    return leg.event(Phase.ENDED, **extra)


def hangup_outcome(leg: Leg) -> Outcome | None:
    status = (leg.get("DialStatus") or "").upper()
    if status in DIAL_STATUS:
        return DIAL_STATUS[status]
    cause = leg.get("Cause")
    if cause is None:
        return None
    if not (cause.isascii() and cause.isdigit()) or len(cause) > 3:  # Q.850 causes are 1–127
        raise BadPayload(f"Cause {cause[:40]!r} is not a numeric hangup cause", field="Cause")
    return CAUSES.get(int(cause))


HANDLERS = {"newchannel": new_channel, "dialbegin": dial_begin, "bridgeenter": answered,
            "answer": answered, "dialend": dial_end, "hangup": hangup}


def direction(fields: Mapping[str, list[str]]) -> Direction:
    return as_direction((first(fields, "direction", required=False) or "in").lower())


def timestamp(fields: Mapping[str, list[str]]) -> datetime | None:
    """`${EPOCH}` or AMI's `Timestamp: 1764000000.123456` (manager.conf timestampevents=yes)."""
    text = first(fields, "Timestamp", required=False)
    if text is None:
        return None
    try:
        moment = datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        raise BadPayload(f"Timestamp {text[:40]!r} is not seconds since 1970", field="Timestamp") from None
    return plausible_time(moment, "Timestamp")


def answered_time(fields: Mapping[str, list[str]]) -> int | None:
    text = first(fields, "AnsweredTime", required=False)
    if text is None:
        return None
    try:
        seconds = int(float(text))
    except (ValueError, OverflowError):
        seconds = -1
    if not 0 <= seconds <= MAX_SECONDS:
        raise BadPayload(f"AnsweredTime {text[:40]!r} is not a number of seconds", field="AnsweredTime")
    return seconds
