"""Likely duplicates: same email, same personal number with a similar name, names that sound alike."""

from __future__ import annotations

import pytest

from commhub.commands.common import Database
from commhub.contacts.duplicates import find_duplicates
from commhub.contacts.phonetics import cologne_code
from commhub.contacts.records import ContactRecord, PhoneRecord
from commhub.store.files import create_file


@pytest.mark.parametrize(("word", "code"), [
    ("Wikipedia", "3412"), ("Müller-Lüdenscheidt", "65752682"), ("Breschnew", "17863"),
    ("Meier", "67"), ("Maier", "67"), ("Mayer", "67"), ("Müller", "657"), ("Mueller", "657"),
    ("Schmidt", "862"), ("Schmitt", "862"), ("", ""),
])
def test_cologne_phonetics_reference_values(word: str, code: str) -> None:
    assert cologne_code(word) == code


async def test_evidence_is_ranked_and_shared_lines_are_only_a_hint(db: Database) -> None:
    people = [
        ContactRecord(first_name="Thomas", last_name="Maier", phones=[PhoneRecord("0711 987654")]),
        ContactRecord(first_name="Thomas", last_name="Meier", phones=[PhoneRecord("+49 711 987654")]),
        ContactRecord(first_name="Anna", last_name="Schmidt", emails=["a.schmidt@example.com"]),
        ContactRecord(first_name="Anne", last_name="Schmitt-Berg", emails=["A.Schmidt@example.com"]),
        ContactRecord(first_name="Petra", last_name="Schön", company="Schön OHG", phones=[PhoneRecord("089 2345678")]),
        ContactRecord(first_name="Lukas", last_name="Schön", company="Schön OHG", phones=[PhoneRecord("089 2345678")]),
        ContactRecord(first_name="Jürgen", last_name="Müller", company="Müller GmbH"),
        ContactRecord(first_name="Juergen", last_name="Mueller", company="Müller GmbH"),
        ContactRecord(first_name="Karl", last_name="Lehmann"),
    ]
    async with db.sessions() as session, session.begin():
        for person in people:
            await create_file(session, person, "DE")
    async with db.sessions() as session:
        pairs = await find_duplicates(session)
    found = {(p.first.name, p.second.name): p for p in pairs}
    assert set(found) == {("Thomas Maier", "Thomas Meier"), ("Anna Schmidt", "Anne Schmitt-Berg"),
                          ("Petra Schön", "Lukas Schön"), ("Jürgen Müller", "Juergen Mueller")}
    maier = found[("Thomas Maier", "Thomas Meier")]
    assert maier.reasons == ["same number +49711987654", "similar names"] and maier.score == 5
    assert found[("Petra Schön", "Lukas Schön")].reasons == ["same number +49892345678 (a shared line?)"]
    assert pairs[0] is maier and pairs[-1] is found[("Petra Schön", "Lukas Schön")]
