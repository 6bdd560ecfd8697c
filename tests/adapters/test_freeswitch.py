"""FreeSWITCH: legs joined by originating_leg_uuid, hangup causes as outcomes, form and JSON alike, the snippets."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from urllib.parse import urlencode

import pytest
from multidict import CIMultiDict
from support.http_fixture import ADAPTERS_DIR, source_context

from adapters.freeswitch import SPEC
from adapters.freeswitch.parse import HANDLERS
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

SNIPPETS = ADAPTERS_DIR / "freeswitch" / "snippets"
TOKEN = "fS8mQ2zR7tY4uW1e"
A_LEG = {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "a-1", "Call-Direction": "inbound",
         "Caller-Caller-ID-Number": "+491711234567", "Caller-Destination-Number": "4930123456700"}


def form_request(fields: dict[str, str], token: str | None = TOKEN) -> RawRequest:
    query = {"token": token} if token is not None else {}
    return RawRequest("POST", "https://commhub.example.com/hooks/freeswitch?" + urlencode(query),
                      CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"}), query,
                      urlencode(fields).encode())


def json_request(fields: dict[str, str]) -> RawRequest:
    return RawRequest("POST", f"https://commhub.example.com/hooks/freeswitch?token={TOKEN}",
                      CIMultiDict({"Content-Type": "application/json"}), {"token": TOKEN},
                      json.dumps(fields).encode())


def parse(**changes: str) -> CallEvent:
    [event] = SPEC.parse(form_request({**A_LEG, **changes}), source_context("freeswitch"))
    return event


class TestOutcomes:
    @pytest.mark.parametrize(("cause", "outcome"), [
        ("NORMAL_CLEARING", None), ("USER_BUSY", Outcome.BUSY), ("NO_ANSWER", Outcome.MISSED),
        ("NO_USER_RESPONSE", Outcome.MISSED), ("ORIGINATOR_CANCEL", Outcome.MISSED),
        ("CALL_REJECTED", Outcome.REJECTED), ("NORMAL_TEMPORARY_FAILURE", Outcome.FAILED),
        ("UNALLOCATED_NUMBER", Outcome.FAILED), ("USER_NOT_REGISTERED", Outcome.FAILED),
        ("BLIND_TRANSFER", None), ("MANAGER_REQUEST", None), ("", None),
    ])
    def test_hangup_cause(self, cause: str, outcome: Outcome | None) -> None:
        event = parse(**{"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Hangup-Cause": cause})
        assert event.phase is Phase.ENDED and event.outcome is outcome


class TestLegs:
    def test_a_phone_leg_belongs_to_the_callers_call(self) -> None:
        event = parse(**{"Unique-ID": "b-1", "Call-Direction": "outbound", "variable_originating_leg_uuid": "a-1",
                         "Caller-Destination-Number": "1002", "Event-Name": "CHANNEL_ANSWER"})
        assert (event.call_id, event.direction, event.answered_by) == ("a-1", "in", "1002")

    def test_a_leg_naming_itself_as_origin_is_the_first_leg(self) -> None:
        with pytest.raises(IgnoredEvent):  # the PBX answering the caller
            parse(**{"Event-Name": "CHANNEL_ANSWER", "variable_originating_leg_uuid": "a-1"})

    def test_originate_from_the_api_is_outbound(self) -> None:
        event = parse(**{"Call-Direction": "outbound", "Caller-Caller-ID-Number": "1001",
                         "Caller-Destination-Number": "08912345678"})
        assert event.direction == "out" and event.targets == ("1001",)

    def test_the_dialplan_tag_outranks_freeswitchs_view(self) -> None:
        assert parse(variable_commhub_direction="out").direction == "out"

    def test_a_wrong_tag_names_the_field(self) -> None:
        with pytest.raises(BadPayload) as caught:
            parse(variable_commhub_direction="sideways")
        assert caught.value.field == "direction"

    def test_answer_on_an_outbound_call_names_nobody(self) -> None:
        event = parse(**{"Event-Name": "CHANNEL_ANSWER", "variable_commhub_direction": "out"})
        assert event.phase is Phase.ANSWERED and event.answered_by is None

    def test_only_the_events_commhub_follows(self) -> None:
        with pytest.raises(IgnoredEvent):
            parse(**{"Event-Name": "CHANNEL_HANGUP", "Hangup-Cause": "NORMAL_CLEARING"})


class TestCallers:
    def test_form_and_event_socket_json_give_the_same_event(self) -> None:
        source = source_context("freeswitch")
        assert SPEC.parse(form_request(A_LEG), source) == SPEC.parse(json_request(A_LEG), source)

    def test_freeswitchs_no_number_is_withheld(self) -> None:
        assert parse(**{"Caller-Caller-ID-Number": "0000000000"}).caller == "anonymous"

    def test_privacy_hides_number_and_name(self) -> None:
        event = parse(**{"Caller-Privacy-Hide-Number": "true", "Caller-Privacy-Hide-Name": "true",
                         "Caller-Caller-ID-Name": "Erika Mustermann"})
        assert event.caller == "anonymous" and event.caller_name is None

    def test_sip_user_when_the_caller_profile_has_no_number(self) -> None:
        fields = {k: v for k, v in A_LEG.items() if k != "Caller-Caller-ID-Number"}
        [event] = SPEC.parse(form_request({**fields, "variable_sip_from_user": "0301234567"}),
                             source_context("freeswitch"))
        assert event.caller == "0301234567"


class TestOddRequests:
    @pytest.mark.parametrize(("field", "value"), [("Event-Date-Timestamp", "2026-11-24"),
                                                  ("variable_billsec", "12s")])
    def test_unreadable_numbers_name_their_field(self, field: str, value: str) -> None:
        with pytest.raises(BadPayload) as caught:
            parse(**{"Event-Name": "CHANNEL_HANGUP_COMPLETE", field: value})
        assert caught.value.field == field

    def test_timestamp_is_microseconds(self) -> None:
        assert parse(**{"Event-Date-Timestamp": "1795510800123456"}).occurred_at.isoformat() == \
            "2026-11-24T09:00:00.123456+00:00"

    @pytest.mark.parametrize("token", ["wrong", None])
    def test_wrong_or_missing_token_fails(self, token: str | None) -> None:
        with pytest.raises(VerificationFailed):
            SPEC.verify(form_request(A_LEG, token=token), source_context("freeswitch"))

    def test_right_token_passes_and_no_secret_fails(self) -> None:
        SPEC.verify(form_request(A_LEG), source_context("freeswitch"))
        with pytest.raises(VerificationFailed):
            SPEC.verify(form_request(A_LEG), replace(source_context("freeswitch"), secret=None))


def test_lookup_answers_the_display_name_for_cidlookup() -> None:
    answer = LookupAnswer(number="+491711234567", e164="+491711234567", withheld=False,
                          display_name="Erika Mustermann", matches=(), ambiguous=False)
    assert SPEC.lookup_reply(answer).body == "Erika Mustermann"


class TestSnippets:
    def test_the_lua_script_binds_the_events_commhub_follows(self) -> None:
        script = (SNIPPETS / "commhub.lua").read_text("utf-8")
        bound = set(re.findall(r'events:bind\("(\w+)"\)', script)) - {"SHUTDOWN"}
        assert bound == set(HANDLERS)
        assert "/hooks/freeswitch?token=" in script

    def test_the_lua_script_posts_the_headers_outcomes_depend_on(self) -> None:
        script = (SNIPPETS / "commhub.lua").read_text("utf-8")
        for header in ("Event-Name", "Unique-ID", "Hangup-Cause", "variable_billsec",
                       "variable_originating_leg_uuid", "variable_commhub_direction", "Caller-Privacy-Hide-Number"):
            assert f'"{header}"' in script

    def test_cidlookup_asks_commhub_with_token_and_number(self) -> None:
        settings = ET.parse(SNIPPETS / "cidlookup.conf.xml").getroot().find("settings")
        assert settings is not None
        url = {p.get("name"): p.get("value") for p in settings.iter("param")}["url"]
        assert url == "https://commhub.example.com/lookup/freeswitch?token=CHANGE-ME&number=${caller_id_number}"
