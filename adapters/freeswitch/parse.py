"""FreeSWITCH channel events (posted by commhub.lua, or forwarded from the event socket) -> commhub events.

Fields are FreeSWITCH's own event header names, as a form or as the event socket's JSON: `Event-Name`,
`Unique-ID`, `Call-Direction`, `Caller-Caller-ID-Number`, `Caller-Destination-Number`, `Hangup-Cause`,
`Event-Date-Timestamp`, `variable_billsec`, `variable_originating_leg_uuid`, …

A call has one channel per leg. The first leg (the caller's) is the call; the legs it creates to
ring phones or reach a trunk carry `variable_originating_leg_uuid`, the first leg's `Unique-ID`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from commhub.telephony.contract import (
    BadPayload,
    CallEvent,
    Direction,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    Reply,
    SourceContext,
    first,
    plausible_time,
    whole_seconds,
)

EMPTY_REPLY = Reply("", "text/plain")

# Hangup Cause Code Table (FreeSWITCH docs). Causes that say nothing about how the call went
# leave the outcome to the core, which knows whether it saw an answer.
NEUTRAL = {"NORMAL_CLEARING", "NORMAL_UNSPECIFIED", "NONE", "MANAGER_REQUEST", "BLIND_TRANSFER",
           "ATTENDED_TRANSFER", "PICKED_OFF", "LOSE_RACE", "ALLOTTED_TIMEOUT", "SUCCESS"}
CAUSES = {"USER_BUSY": Outcome.BUSY, "NO_ANSWER": Outcome.MISSED, "NO_USER_RESPONSE": Outcome.MISSED,
          "ORIGINATOR_CANCEL": Outcome.MISSED, "SUBSCRIBER_ABSENT": Outcome.MISSED,
          "CALL_REJECTED": Outcome.REJECTED}

DIRECTIONS: dict[str, Direction] = {"in": "in", "inbound": "in", "out": "out", "outbound": "out"}
NO_NUMBER = "0000000000"  # FreeSWITCH's caller ID number when the network sent none


def parse_event(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    name = first(fields, "Event-Name") or ""
    handler = HANDLERS.get(name.upper())
    if handler is None:
        raise IgnoredEvent(f"FreeSWITCH event {name!r} is not one commhub follows", EMPTY_REPLY)
    return [handler(Leg(fields))]


class Leg:
    """One channel event: the channel, the call it belongs to, and who is calling whom."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self.fields = fields
        unique = first(fields, "Unique-ID") or ""
        origin = self.get("variable_originating_leg_uuid")
        self.is_first_leg = origin is None or origin == unique
        self.call_id = unique if self.is_first_leg else origin or unique
        self.direction = self.call_direction()
        self.caller = caller_number(self)
        self.callee = (self.get("Caller-Destination-Number") or self.get("variable_sip_req_user")
                       or self.get("variable_sip_to_user"))

    def get(self, name: str) -> str | None:
        return first(self.fields, name, required=False)

    def flag(self, name: str) -> bool:
        return (self.get(name) or "").lower() == "true"

    def call_direction(self) -> Direction:
        """commhub's tag (set in the dialplan) first; FreeSWITCH's own view only on the first leg."""
        tagged = self.get("direction") or self.get("variable_commhub_direction")
        if tagged is not None:
            if tagged.lower() not in DIRECTIONS:
                raise BadPayload(f"direction {tagged!r} must be 'in' or 'out'", field="direction")
            return DIRECTIONS[tagged.lower()]
        # a leg FreeSWITCH creates is always "outbound", whichever way the call goes
        call_direction = self.get("Call-Direction") if self.is_first_leg else None
        return DIRECTIONS.get((call_direction or "in").lower(), "in")

    def event(self, phase: Phase, **extra: object) -> CallEvent:
        party = self.callee if self.direction == "in" else self.caller
        values: dict = {"targets": (party,) if party else ()}
        values.update(extra)
        hide_name = self.flag("Caller-Privacy-Hide-Name")
        return CallEvent(call_id=self.call_id, phase=phase, direction=self.direction, caller=self.caller,
                         callee=self.callee, occurred_at=event_time(self.fields),
                         caller_name=None if hide_name else self.get("Caller-Caller-ID-Name"), **values)


def caller_number(leg: Leg) -> str | None:
    number = leg.get("Caller-Caller-ID-Number") or leg.get("variable_sip_from_user")
    if leg.flag("Caller-Privacy-Hide-Number") or number == NO_NUMBER:
        return "anonymous"
    return number


def channel_create(leg: Leg) -> CallEvent:
    if not leg.is_first_leg and leg.direction == "out":
        raise IgnoredEvent("the trunk leg of an outbound call: its first leg already rang", EMPTY_REPLY)
    return leg.event(Phase.RINGING)


def channel_answer(leg: Leg) -> CallEvent:
    if leg.is_first_leg and leg.direction == "in":
        # FreeSWITCH itself answered the caller (IVR, voicemail, queue): no agent yet
        raise IgnoredEvent("the PBX answered the caller; the phone's leg says who answered", EMPTY_REPLY)
    answered_by = leg.callee if leg.direction == "in" else None
    return leg.event(Phase.ANSWERED, answered_by=answered_by)


def channel_hangup(leg: Leg) -> CallEvent:
    if not leg.is_first_leg:
        raise IgnoredEvent("a phone or trunk leg ended; the caller's leg ends the call", EMPTY_REPLY)
    cause = (leg.get("Hangup-Cause") or "").upper()
    outcome = None if not cause or cause in NEUTRAL else CAUSES.get(cause, Outcome.FAILED)
    return leg.event(Phase.ENDED, outcome=outcome, duration=billsec(leg.fields))


HANDLERS = {"CHANNEL_CREATE": channel_create, "CHANNEL_ANSWER": channel_answer,
            "CHANNEL_HANGUP_COMPLETE": channel_hangup}


def event_time(fields: Mapping[str, list[str]]) -> datetime | None:
    """`Event-Date-Timestamp`: microseconds since 1970."""
    text = first(fields, "Event-Date-Timestamp", required=False)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadPayload(f"Event-Date-Timestamp {text[:40]!r} is not microseconds since 1970",
                         field="Event-Date-Timestamp")
    try:
        moment = datetime.fromtimestamp(int(text) / 1_000_000, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadPayload(f"Event-Date-Timestamp {text[:40]!r} is out of range", field="Event-Date-Timestamp") from None
    return plausible_time(moment, "Event-Date-Timestamp")


def billsec(fields: Mapping[str, list[str]]) -> int | None:
    text = first(fields, "variable_billsec", required=False)
    if text is None:
        return None
    return whole_seconds(text, "variable_billsec")
