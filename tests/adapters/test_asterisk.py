"""Asterisk: legs correlated by Linkedid, DIALSTATUS and hangup causes as outcomes, and the shipped dialplan."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlencode

import pytest
from multidict import CIMultiDict
from support.http_fixture import ADAPTERS_DIR, source_context

from adapters.asterisk import SPEC
from adapters.asterisk.parse import HANDLERS
from commhub.telephony.contract import (
    BadPayload,
    CallEvent,
    IgnoredEvent,
    LookupAnswer,
    Outcome,
    Phase,
    RawRequest,
    VerificationFailed,
)

DIALPLAN = (ADAPTERS_DIR / "asterisk" / "snippets" / "extensions.conf").read_text("utf-8")


def posted(token: str | None = "Xk3r9PqL2vWz7HtB", **fields: str) -> RawRequest:
    query = {"token": token} if token is not None else {}
    url = "https://commhub.example.com/hooks/asterisk" + (f"?{urlencode(query)}" if query else "")
    return RawRequest("POST", url, CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"}), query,
                      urlencode(fields).encode())


def parse(**fields: str) -> list[CallEvent]:
    return SPEC.parse(posted(**fields), source_context("asterisk"))


def hangup(**fields: str) -> Outcome | None:
    [event] = parse(Event="Hangup", Uniqueid="1.1", Linkedid="1.1", CallerIDNum="+4930555", **fields)
    assert event.phase is Phase.ENDED
    return event.outcome


class TestOutcomes:
    @pytest.mark.parametrize(("status", "outcome"), [
        ("ANSWER", Outcome.COMPLETED), ("BUSY", Outcome.BUSY), ("NOANSWER", Outcome.MISSED),
        ("CANCEL", Outcome.MISSED), ("CONGESTION", Outcome.FAILED), ("CHANUNAVAIL", Outcome.FAILED),
        ("DONTCALL", Outcome.REJECTED),
    ])
    def test_dial_status(self, status: str, outcome: Outcome) -> None:
        assert hangup(DialStatus=status) is outcome

    @pytest.mark.parametrize(("cause", "outcome"), [
        ("16", None), ("17", Outcome.BUSY), ("19", Outcome.MISSED), ("21", Outcome.REJECTED),
        ("34", Outcome.FAILED), ("127", None),
    ])
    def test_hangup_cause_when_there_was_no_dial(self, cause: str, outcome: Outcome | None) -> None:
        assert hangup(Cause=cause, DialStatus="") is outcome

    def test_dial_status_outranks_the_normal_cause_of_a_caller_who_gave_up(self) -> None:
        assert hangup(Cause="16", DialStatus="CANCEL") is Outcome.MISSED

    def test_a_cause_that_is_not_a_number_names_the_field(self) -> None:
        with pytest.raises(BadPayload) as caught:
            hangup(Cause="Normal Clearing")
        assert caught.value.field == "Cause"


class TestLegs:
    def test_every_leg_belongs_to_the_call_of_its_linkedid(self) -> None:
        [event] = parse(Event="Answer", Uniqueid="7.2", Linkedid="7.1", DestExten="1002")
        assert event.call_id == "7.1" and event.answered_by == "1002"

    def test_without_linkedid_the_uniqueid_is_the_call(self) -> None:
        [event] = parse(Event="Newchannel", Uniqueid="7.1", CallerIDNum="+4930555", Exten="0301234")
        assert event.call_id == "7.1" and event.targets == ("0301234",)

    def test_a_phone_leg_being_created_or_hung_up_is_ignored(self) -> None:
        for name in ("Newchannel", "Hangup"):
            with pytest.raises(IgnoredEvent):
                parse(Event=name, Uniqueid="7.2", Linkedid="7.1", CallerIDNum="1001", Cause="26")

    def test_dial_end_counts_only_when_answered(self) -> None:
        [event] = parse(Event="DialEnd", Uniqueid="7.1", Linkedid="7.1", DestExten="1001", DialStatus="ANSWER")
        assert event.phase is Phase.ANSWERED and event.answered_by == "1001"
        with pytest.raises(IgnoredEvent):
            parse(Event="DialEnd", Uniqueid="7.1", Linkedid="7.1", DestExten="1002", DialStatus="NOANSWER")

    def test_outbound_call_rings_for_the_agent_who_dials(self) -> None:
        [event] = parse(Event="DialBegin", Uniqueid="8.1", Linkedid="8.1", CallerIDNum="1001",
                        Exten="08912345678", DestExten="08912345678", direction="out")
        assert event.targets == ("1001",) and event.callee == "08912345678"

    def test_placeholder_extensions_are_no_party(self) -> None:
        [event] = parse(Event="Newchannel", Uniqueid="9.1", Linkedid="9.1", CallerIDNum="<unknown>", Exten="s")
        assert event.callee is None and event.targets == () and event.caller == "<unknown>"

    def test_numbers_are_kept_as_the_pbx_wrote_them(self) -> None:
        [event] = parse(Event="Newchannel", Uniqueid="9.1", CallerIDNum="+49 123 456789", Exten="030 1234")
        assert event.caller == "+49 123 456789"


class TestOddRequests:
    def test_unknown_direction_names_the_field(self) -> None:
        with pytest.raises(BadPayload) as caught:
            parse(Event="Newchannel", Uniqueid="1.1", direction="inbound")
        assert caught.value.field == "direction"

    def test_unreadable_timestamp_names_the_field(self) -> None:
        with pytest.raises(BadPayload) as caught:
            parse(Event="Newchannel", Uniqueid="1.1", Timestamp="Tue 10:00")
        assert caught.value.field == "Timestamp"

    def test_direction_defaults_to_in(self) -> None:
        assert parse(Event="Newchannel", Uniqueid="1.1", Exten="100")[0].direction == "in"


class TestUrlToken:
    def test_right_token_passes(self) -> None:
        SPEC.verify(posted(Event="Hangup", Uniqueid="1.1"), source_context("asterisk"))

    @pytest.mark.parametrize("token", ["wrong", "", None])
    def test_wrong_or_missing_token_fails(self, token: str | None) -> None:
        with pytest.raises(VerificationFailed):
            SPEC.verify(posted(token=token, Event="Hangup", Uniqueid="1.1"), source_context("asterisk"))

    def test_source_without_secret_accepts_no_token(self) -> None:
        with pytest.raises(VerificationFailed):
            SPEC.verify(posted(token="", Event="Hangup"), replace(source_context("asterisk"), secret=None))


def test_lookup_answers_the_display_name_as_plain_text() -> None:
    answer = LookupAnswer(number="+491711234567", e164="+491711234567", withheld=False,
                          display_name="Erika Mustermann (Muster GmbH)", matches=(), ambiguous=False)
    reply = SPEC.lookup_reply(answer)
    assert (reply.content_type, reply.body) == ("text/plain", "Erika Mustermann (Muster GmbH)")


class TestShippedDialplan:
    def test_every_event_it_posts_is_one_the_adapter_follows(self) -> None:
        events = set(re.findall(r"Event=(\w+)", DIALPLAN)) | set(re.findall(r"commhub-event,s,1\((\w+)", DIALPLAN))
        assert {"Newchannel", "DialBegin", "Answer", "Hangup"} <= events
        assert {e.lower() for e in events} <= set(HANDLERS)

    def test_it_posts_to_the_hook_with_the_token_and_looks_names_up(self) -> None:
        assert "/hooks/asterisk?token=" in DIALPLAN
        assert "Set(CALLERID(name)=${CURL(${COMMHUB_LOOKUP}&number=${URIENCODE(${CALLERID(num)})})})" in DIALPLAN

    def test_it_sends_the_fields_outcomes_depend_on(self) -> None:
        for field in ("Cause=${HANGUPCAUSE}", "DialStatus=${DIALSTATUS}", "AnsweredTime=${ANSWEREDTIME}",
                      "Linkedid=${CHANNEL(linkedid)}", "Uniqueid=${UNIQUEID}"):
            assert field in DIALPLAN
