"""Property: however a stored valid number is written, it leads to the same customer file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from commhub.app import caller_index
from commhub.commands.common import open_database
from commhub.contacts.caller_id import CallerId
from commhub.contacts.records import ContactRecord, PhoneRecord
from commhub.settings import DatabaseSettings, Settings
from commhub.store.files import create_file

# (country code, national trunk prefix, area codes) for numbers customers of a German business have.
PLANS = [("49", "0", ["30", "40", "89", "221", "711", "6221", "171", "160", "1520"]),
         ("43", "0", ["1", "662", "664"]), ("41", "0", ["44", "31", "79"])]


@st.composite
def numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    country, trunk, areas = draw(st.sampled_from(PLANS))
    area = draw(st.sampled_from(areas))
    subscriber = draw(st.text("0123456789", min_size=6, max_size=8).filter(lambda s: s[0] not in "01"))
    parsed = phonenumbers.parse(f"+{country}{area}{subscriber}")
    assume(phonenumbers.is_valid_number(parsed))
    return country, area, subscriber


def spellings(country: str, area: str, subscriber: str) -> list[str]:
    head, tail = subscriber[:-2], subscriber[-2:]
    spaced = " ".join(subscriber[i:i + 2] for i in range(0, len(subscriber), 2))
    return [
        f"+{country} {area} {subscriber}", f"+{country} (0){area} {subscriber}", f"00{country} {area} {subscriber}",
        f"+{country}-{area}-{head}-{tail}", f"+{country}{area}{subscriber}", f"+{country} {area} {spaced}",
        f"sip:+{country}{area}{subscriber}@pbx.example;user=phone", f"tel:+{country}-{area}-{subscriber}",
        f'"Kunde" <sip:00{country}{area}{subscriber}@pbx.example>',
    ] + ([f"0{area} {subscriber}", f"(0{area}) {head}-{tail}", f"0{area}/{spaced}", f"0{area}{subscriber}"]
         if country == "49" else [])


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, int]]]:
    path: Path = tmp_path_factory.mktemp("prop") / "commhub.db"
    config = Settings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
    yield config, {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=numbers(), spelling=st.integers(min_value=0, max_value=100))
def test_any_spelling_of_a_stored_number_matches_its_file(stored: tuple[Settings, dict[str, int]],
                                                          number: tuple[str, str, str], spelling: int) -> None:
    config, files = stored
    canonical = f"+{number[0]} {number[1]} {number[2]}"
    variants = spellings(*number)
    text = variants[spelling % len(variants)]

    async def scenario() -> list[int]:
        async with open_database(config) as db:
            if canonical not in files:
                async with db.sessions() as session, session.begin():
                    _kind, files[canonical], _ = await create_file(session, ContactRecord(
                        first_name="Kunde", last_name=str(len(files)), phones=[PhoneRecord(canonical)]), "DE")
            index = caller_index(config.database.url, db.engine)
            try:
                match = await CallerId(index, region="DE").match(text)
            finally:
                index.close()
            return [candidate.id for candidate in match.candidates]

    assert asyncio.run(scenario()) == [files[canonical]], text
