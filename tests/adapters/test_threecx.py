"""3CX: defensive journal parsing, stable ids for a call commhub never saw, the lookup JSON and the template."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from multidict import CIMultiDict
from support.http_fixture import ADAPTERS_DIR, read_fixture, source_context

from adapters.threecx import SPEC
from adapters.threecx.when import journal_time, seconds
from commhub.telephony.contract import (
    LookupAnswer,
    LookupMatch,
    Outcome,
    RawRequest,
    VerificationFailed,
)

TEMPLATE = ADAPTERS_DIR / "threecx" / "snippets" / "commhub-crm-template.xml"
FIXTURES = ADAPTERS_DIR / "threecx" / "fixtures"


def journal(**fields: str) -> RawRequest:
    body = urlencode(fields).encode()
    return RawRequest("POST", "https://commhub.example.com/hooks/threecx?token=x",
                      CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"}), {"token": "x"}, body)


def match(**changes: object) -> LookupMatch:
    base = LookupMatch(kind="contact", id=7, name="Erika Mustermann", first_name="Erika", last_name="Mustermann",
                       company="Muster GmbH", customer_class=None, email="erika@muster.example",
                       phone="+49301234567", mobile="+491711234567", url="https://commhub.example.com/contacts/7")
    return replace(base, **changes)


def answer(*matches: LookupMatch, withheld: bool = False) -> LookupAnswer:
    return LookupAnswer(number="00491711234567", e164="+491711234567", withheld=withheld,
                        display_name="Erika Mustermann", matches=matches, ambiguous=len(matches) > 1)


class TestJournalDates:
    @pytest.mark.parametrize(("text", "expected"), [
        ("2026-11-24T09:03:41Z", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),
        ("2026-11-24T10:03:41+01:00", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),
        ("2026-11-24 10:03:41", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),
        ("24.11.2026 10:03:41", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),
        ("24.11.2026 10:03", datetime(2026, 11, 24, 9, 3, tzinfo=UTC)),
        ("11/24/2026 10:03:41 AM", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),
        ("11/24/2026 12:30:00 AM", datetime(2026, 11, 23, 23, 30, tzinfo=UTC)),
        ("11/24/2026 3:15:00 PM", datetime(2026, 11, 24, 14, 15, tzinfo=UTC)),
        ("24/11/2026 10:03:41", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),
        ("07/01/2026 10:00:00", datetime(2026, 1, 7, 9, 0, tzinfo=UTC)),  # day-first without AM/PM
        ("11/24/2026 10:03:41", datetime(2026, 11, 24, 9, 3, 41, tzinfo=UTC)),  # no 24th month: month-first
        ("24.07.2026 10:00:00", datetime(2026, 7, 24, 8, 0, tzinfo=UTC)),  # summer time in Berlin
    ])
    def test_locale_formats_are_read_in_the_configured_zone(self, text: str, expected: datetime) -> None:
        assert journal_time(text, "Europe/Berlin") == expected

    @pytest.mark.parametrize("text", ["", "Dienstag, 24. November 2026", "31.02.2026 10:00:00", "now"])
    def test_unreadable_dates_are_none(self, text: str) -> None:
        assert journal_time(text, "Europe/Berlin") is None

    def test_without_a_zone_option_local_times_are_utc(self) -> None:
        assert journal_time("24.11.2026 10:00:00", None) == datetime(2026, 11, 24, 10, tzinfo=UTC)

    def test_a_misspelt_zone_does_not_invent_an_hour(self) -> None:
        assert journal_time("24.11.2026 10:00:00", "Europe/Berln") is None
        assert journal_time("2026-11-24T09:00:00Z", "Europe/Berln") == datetime(2026, 11, 24, 9, tzinfo=UTC)

    @pytest.mark.parametrize(("text", "expected"), [
        ("00:03:25", 205), ("1:02:03", 3723), ("03:25", 205), ("125", 125), ("00:01:05.1230000", 65),
        ("1.02:00:00", 93600), ("3 min", None), ("", None), ("00:61", None),
    ])
    def test_durations(self, text: str, expected: int | None) -> None:
        assert seconds(text) == expected


class TestJournal:
    def test_the_same_entry_posted_twice_is_the_same_call(self) -> None:
        source = source_context("threecx")
        entry = {"CallType": "Inbound", "Number": "00491711234567", "Agent": "101", "DateTime": "24.11.2026 10:00:00"}
        first_post = SPEC.parse(journal(**entry), source)[0]
        again = SPEC.parse(journal(**entry, Duration="00:00:10"), source)[0]
        later = SPEC.parse(journal(**{**entry, "DateTime": "24.11.2026 10:07:00"}), source)[0]
        assert first_post.call_id == again.call_id != later.call_id

    @pytest.mark.parametrize(("call_type", "direction", "outcome"), [
        ("inbound", "in", Outcome.COMPLETED), ("MISSED", "in", Outcome.MISSED),
        ("Outbound", "out", Outcome.COMPLETED), ("NotAnswered", "out", Outcome.MISSED),
    ])
    def test_call_type_is_read_whatever_its_case(self, call_type: str, direction: str, outcome: Outcome) -> None:
        [event] = SPEC.parse(journal(CallType=call_type, Number="004930555", Agent="101"), source_context("threecx"))
        assert (event.direction, event.outcome) == (direction, outcome)

    def test_only_an_answered_inbound_call_names_who_answered(self) -> None:
        source = source_context("threecx")
        answered = SPEC.parse(journal(CallType="Inbound", Number="004930555", Agent="101"), source)[0]
        dialled = SPEC.parse(journal(CallType="Outbound", Number="004930555", Agent="101"), source)[0]
        assert answered.answered_by == "101" and dialled.answered_by is None
        assert dialled.caller == "101" and dialled.callee == "004930555"

    def test_the_journal_may_come_as_get(self) -> None:
        fixture = read_fixture(FIXTURES / "journal__missed_us_date.http")
        assert fixture.method == "GET"
        SPEC.verify(fixture.request(), source_context("threecx"))

    def test_token_is_compared_with_the_sources_secret(self) -> None:
        request = read_fixture(FIXTURES / "journal__inbound.http").request()
        with pytest.raises(VerificationFailed):
            SPEC.verify(request, replace(source_context("threecx"), secret="another-secret"))


class TestLookupReply:
    def test_a_match_in_the_shape_the_template_maps(self) -> None:
        body = json.loads(SPEC.lookup_reply(answer(match())).body)
        assert body == {"contacts": [{
            "id": "contact-7", "firstname": "Erika", "lastname": "Mustermann", "company": "Muster GmbH",
            "email": "erika@muster.example", "businessphone": "+49301234567", "mobilephone": "+491711234567",
            "url": "https://commhub.example.com/contacts/7"}]}

    def test_no_match_is_an_empty_list_so_3cx_shows_the_number(self) -> None:
        reply = SPEC.lookup_reply(answer())
        assert reply.content_type == "application/json"
        assert json.loads(reply.body) == {"contacts": []}

    def test_withheld_caller_matches_nobody(self) -> None:
        assert json.loads(SPEC.lookup_reply(answer(match(), withheld=True)).body) == {"contacts": []}

    def test_an_organisation_shows_its_name(self) -> None:
        org = match(kind="organization", id=3, name="Muster GmbH", first_name=None, last_name=None, company=None)
        [contact] = json.loads(SPEC.lookup_reply(answer(org)).body)["contacts"]
        assert contact["id"] == "organization-3"
        assert contact["lastname"] == contact["company"] == "Muster GmbH"

    def test_every_candidate_is_listed(self) -> None:
        both = answer(match(), match(id=8, first_name="Max", name="Max Mustermann"))
        assert [c["id"] for c in json.loads(SPEC.lookup_reply(both).body)["contacts"]] == ["contact-7", "contact-8"]


class TestTemplate:
    def scenarios(self) -> dict[str, ET.Element]:
        root = ET.parse(TEMPLATE).getroot()
        assert root.tag == "Crm"
        return {s.get("Id", ""): s for s in root.iter("Scenario")}

    def test_lookup_asks_commhub_by_number_with_the_token(self) -> None:
        request = self.scenarios()[""].find("Request")
        assert request is not None and request.get("RequestType") == "Get"
        assert request.get("Url") == "[CommhubUrl]/lookup/[SourceName]?number=[Number]&token=[Token]"

    def test_lookup_paths_are_keys_commhub_answers_with(self) -> None:
        keys = set(json.loads(SPEC.lookup_reply(answer(match())).body)["contacts"][0])
        paths = {v.get("Path") for v in self.scenarios()[""].iter("Variable")}
        assert {p.removeprefix("contacts.") for p in paths} <= keys

    def test_journal_posts_every_field_the_adapter_reads(self) -> None:
        request = self.scenarios()["ReportCall"].find("Request")
        assert request is not None and request.get("Url") == "[CommhubUrl]/hooks/[SourceName]?token=[Token]"
        posted = {v.get("Key") for v in request.iter("Value")}
        assert {"CallType", "Number", "Name", "Agent", "Duration", "DateTime", "CallStartTimeUTC",
                "CallEndTimeUTC"} <= posted
