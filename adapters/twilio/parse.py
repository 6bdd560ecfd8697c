"""Twilio Programmable Voice requests -> commhub call events.

Three kinds of request reach the hook, told apart by their fields:
- the voice URL request of a new inbound call (`CallStatus=ringing`, no `SequenceNumber`);
- status callbacks (`SequenceNumber`, `Timestamp`, `CallStatus` queued/initiated/ringing/
  in-progress/completed/busy/no-answer/canceled/failed);
- the `<Dial action>` request when a `<Dial>` ends (`DialCallStatus`), which commhub's own
  `dial` reply asks for: it is the only request that says whether the dialled agent answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from commhub.telephony.contract import (
    BadPayload,
    CallEvent,
    Direction,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    SourceContext,
    first,
    plausible_time,
    whole_seconds,
)

from adapters.twilio.reply import empty_twiml

# Before Twilio kept the letters (changelog 2022-11-16, "withheld caller ID behavior"), it put
# the keypad spelling of the carrier's word into From: ANONYMOUS, RESTRICTED, UNAVAILABLE,
# BLOCKED, UNKNOWN. Both spellings still reach webhooks.
WITHHELD = {"+266696687", "266696687", "+7378742833", "7378742833", "+86282452253", "86282452253",
            "+2562533", "2562533", "+8656696", "8656696", "anonymous", "restricted", "unavailable",
            "blocked", "unknown", "private", "client:anonymous"}

PHASES = {"queued": Phase.RINGING, "initiated": Phase.RINGING, "ringing": Phase.RINGING,
          "in-progress": Phase.ANSWERED, "completed": Phase.ENDED, "busy": Phase.ENDED,
          "no-answer": Phase.ENDED, "canceled": Phase.ENDED, "failed": Phase.ENDED}

OUTCOMES = {"completed": Outcome.COMPLETED, "answered": Outcome.COMPLETED, "busy": Outcome.BUSY,
            "no-answer": Outcome.MISSED, "canceled": Outcome.MISSED, "failed": Outcome.FAILED}

DIRECTIONS: dict[str, Direction] = {"inbound": "in", "outbound-api": "out", "outbound-dial": "out"}


def parse_request(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    call_id = first(fields, "CallSid")
    if "DialCallStatus" in fields:
        return [dial_ended(fields, call_id, source)]
    status = first(fields, "CallStatus", required=False)
    if status is None and "RecordingSid" in fields:
        raise IgnoredEvent("a recording status callback", empty_twiml())
    status = first(fields, "CallStatus") or ""
    phase = PHASES.get(status)
    if phase is None:
        raise IgnoredEvent(f"CallStatus {status!r} is not a call state commhub follows", empty_twiml())
    return [call_event(fields, call_id, phase, status)]


def call_event(fields: Mapping[str, list[str]], call_id: str, phase: Phase, status: str) -> CallEvent:
    direction = call_direction(fields)
    caller, callee = withheld(first(fields, "From", required=False)), first(fields, "To", required=False)
    targets = (routing_key(callee),) if direction == "in" else (routing_key(caller),)
    sequence = first(fields, "SequenceNumber", required=False)
    return CallEvent(
        call_id=call_id, phase=phase, direction=direction, caller=caller, callee=callee,
        targets=tuple(t for t in targets if t),
        answered_by=routing_key(callee) if phase is Phase.ANSWERED and direction == "in" else None,
        outcome=ended_outcome(status, direction) if phase is Phase.ENDED else None,
        occurred_at=timestamp(fields),
        duration=talk_time(fields, "CallDuration") if phase is Phase.ENDED and direction == "out" else None,
        related_call_id=first(fields, "ParentCallSid", required=False),
        caller_name=first(fields, "CallerName", required=False),
        event_id=f"{call_id}:{sequence}" if sequence else None,
    )


def ended_outcome(status: str, direction: Direction) -> Outcome | None:
    # For an inbound call Twilio itself answers to run the TwiML, so "completed" says only that
    # the TwiML finished, not that a person talked: the core decides from the answer it saw.
    if status == "completed" and direction == "in":
        return None
    return OUTCOMES.get(status)


def dial_ended(fields: Mapping[str, list[str]], call_id: str, source: SourceContext) -> CallEvent:
    """The `<Dial action>` request: the dialled agent answered, was busy, or never picked up."""
    status = first(fields, "DialCallStatus") or ""
    outcome = OUTCOMES.get(status)
    if outcome is None:
        raise BadPayload(f"unknown DialCallStatus {status!r}", field="DialCallStatus")
    direction = call_direction(fields)
    callee = first(fields, "To", required=False)
    agent = routing_key(source.option("dial")) or routing_key(callee)
    return CallEvent(
        call_id=call_id, phase=Phase.ENDED, direction=direction,
        caller=withheld(first(fields, "From", required=False)), callee=callee,
        targets=(agent,) if agent else (),
        answered_by=agent if outcome is Outcome.COMPLETED else None,
        outcome=outcome, duration=talk_time(fields, "DialCallDuration"),
        caller_name=first(fields, "CallerName", required=False),
    )


def call_direction(fields: Mapping[str, list[str]]) -> Direction:
    twilio_direction = first(fields, "Direction") or ""
    direction = DIRECTIONS.get(twilio_direction)
    if direction is None:
        raise BadPayload(f"unknown Direction {twilio_direction!r}", field="Direction")
    # A call placed from the Voice SDK reaches Twilio as "inbound" from client:<identity>:
    # for the CRM that is one of our agents dialling out.
    caller = (first(fields, "From", required=False) or "").lower()
    if direction == "in" and caller.startswith("client:") and caller != "client:anonymous":
        return "out"
    return direction


def withheld(number: str | None) -> str | None:
    if number is not None and number.lower() in WITHHELD:
        return "anonymous"
    return number


def routing_key(address: str | None) -> str | None:
    """`client:alice` -> `alice`, `sip:alice@x.sip.twilio.com` -> `alice`, a number stays."""
    if not address:
        return None
    for scheme in ("client:", "sip:", "sips:"):
        if address.lower().startswith(scheme):
            return address[len(scheme):].split("@", 1)[0].split(";", 1)[0] or None
    return address


def timestamp(fields: Mapping[str, list[str]]) -> datetime | None:
    text = first(fields, "Timestamp", required=False)
    if text is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise BadPayload(f"Timestamp {text!r} is not an RFC 2822 date", field="Timestamp") from None
    # RFC 2822 "-0000" (UTC, origin unknown) comes back naive
    return plausible_time(when.replace(tzinfo=UTC) if when.tzinfo is None else when, "Timestamp")


def talk_time(fields: Mapping[str, list[str]], name: str) -> int | None:
    text = first(fields, name, required=False)
    if text is None:
        return None
    return whole_seconds(text, name)
