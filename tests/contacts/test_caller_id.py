"""The hard caller-ID cases of DESIGN §3, against a real database on each backend."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from commhub.app import caller_index
from commhub.commands.common import Database
from commhub.contacts.caller_id import CallerId
from commhub.contacts.records import ContactRecord, PhoneRecord
from commhub.settings import Settings
from commhub.store.files import create_file


async def seed(db: Database) -> None:
    records = [
        ContactRecord(company="Müller Haustechnik GmbH", customer_class="A",
                      phones=[PhoneRecord("+49 30 1234567-0", "switchboard")]),
        ContactRecord(first_name="Jürgen", last_name="Müller", company="Müller Haustechnik GmbH",
                      customer_class="A", phones=[PhoneRecord("030 1234567-10"), PhoneRecord("0171 2345678", "mobile")]),
        ContactRecord(first_name="Petra", last_name="Schön", company="Bäckerei Schön", customer_class="C",
                      phones=[PhoneRecord("089 2345678")]),
        ContactRecord(first_name="Lukas", last_name="Schön", company="Bäckerei Schön", customer_class="B",
                      phones=[PhoneRecord("089 2345678")]),
        ContactRecord(first_name="Reto", last_name="Keller", company="Zürcher Treuhand AG",
                      phones=[PhoneRecord("+41 44 668 18 15")]),
        ContactRecord(company="Zürcher Treuhand AG", phones=[PhoneRecord("+41 44 668 18 00", "switchboard")]),
    ]
    async with db.sessions() as session, session.begin():
        for record in records:
            await create_file(session, record, "DE")


@dataclass(frozen=True)
class Case:
    text: str
    names: tuple[str, ...]  # expected files, in rank order
    via: str | None = None


CASES = [
    Case("030 1234567-10", ("Jürgen Müller",), "exact"),
    Case("+49 (0)30 1234567 10", ("Jürgen Müller",), "exact"),
    Case("0049 30 123456710", ("Jürgen Müller",), "exact"),
    Case("(030) 1234567-10", ("Jürgen Müller",), "exact"),
    Case("sip:+4930123456710@pbx.example;user=phone", ("Jürgen Müller",), "exact"),
    Case("tel:+49-30-1234567-10", ("Jürgen Müller",), "exact"),
    Case("+49 171 2345678", ("Jürgen Müller",), "exact"),
    Case("+49 30 1234567-33", ("Müller Haustechnik GmbH",), "switchboard"),
    Case("030 1234567 0", ("Müller Haustechnik GmbH",), "exact"),
    Case("089 2345678", ("Lukas Schön", "Petra Schön"), "exact"),  # shared: B before C
    Case("+41 44 668 18 15", ("Reto Keller",), "exact"),
    Case("0041 44 668 18 15", ("Reto Keller",), "exact"),
    Case("+41 44 668 18 27", ("Zürcher Treuhand AG",), "switchboard"),  # operator group "00"
    Case("+49 30 1234568", ()),  # the neighbour's number is not a direct dial of the company
    Case("030 12345", ()),  # shorter than the switchboard prefix
    Case("+1 212 555 0100", ()),
]


@pytest.fixture
async def caller_id(db: Database, settings: Settings) -> CallerId:
    await seed(db)
    return CallerId(caller_index(settings.database.url, db.engine), region="DE")


@pytest.mark.parametrize("case", CASES, ids=[c.text for c in CASES])
async def test_hard_cases(caller_id: CallerId, case: Case) -> None:
    match = await caller_id.match(case.text)
    assert tuple(c.name for c in match.candidates) == case.names, match.explain()
    assert match.ambiguous == (len(case.names) > 1)
    if case.via:
        assert {c.via for c in match.candidates} == {case.via}


async def test_switchboard_match_names_the_direct_dial(caller_id: CallerId) -> None:
    match = await caller_id.match("+49 30 1234567-33")
    (company,) = match.candidates
    assert company.kind == "organization" and company.customer_class == "A"
    assert company.direct_dial == "33"
    assert "via the switchboard" in company.reason()


async def test_ambiguity_is_stated_never_resolved(caller_id: CallerId) -> None:
    match = await caller_id.match("089 2345678")
    assert match.ambiguous
    assert "2 files match" in match.explain()
    body = match.to_json()
    assert body["ambiguous"] is True and len(body["matches"]) == 2
    assert all(m["company"] == "Bäckerei Schön" for m in body["matches"])


@pytest.mark.parametrize("text", ["anonymous", "unknown", "restricted", "private", "", "0"])
async def test_withheld_matches_nothing(caller_id: CallerId, text: str) -> None:
    match = await caller_id.match(text)
    assert match.number.withheld and not match.candidates
    assert match.to_json()["withheld"] is True
    assert "withheld" in match.explain()


@pytest.mark.parametrize("text", ["abc", "12", "+999 123"])
async def test_garbage_matches_nothing_and_says_why(caller_id: CallerId, text: str) -> None:
    match = await caller_id.match(text)
    assert not match.candidates and not match.number.withheld
    assert "is not a phone number" in match.explain()


async def test_unknown_caller_gets_facts(caller_id: CallerId) -> None:
    match = await caller_id.match("+1 212 555 0100")
    assert match.candidates == []
    assert match.facts["region"] == "US" and match.facts["international"] == "+1 212-555-0100"
    assert "no customer file" in match.explain()


async def test_index_sees_every_write_at_once(caller_id: CallerId, db: Database) -> None:
    assert (await caller_id.match("0221 998877")).candidates == []
    async with db.sessions() as session, session.begin():
        await create_file(session, ContactRecord(first_name="Neu", last_name="Kunde",
                                                 phones=[PhoneRecord("0221 998877")]), "DE")
    assert [c.name for c in (await caller_id.match("+49 221 998877")).candidates] == ["Neu Kunde"]
