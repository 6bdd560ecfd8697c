"""Caller-ID lookup, import rate and `serve` memory on a realistic 1,000,000-contact SQLite database.

    .venv/bin/python bench/lookup.py [--contacts 1000000] [--out bench/out] [--quick] [--docs docs/benchmarks.md]

Steps (each figure is measured in this one run; the machine is shared, so compare ratios, not absolutes):
  1. build a database with commhub's real schema (Alembic migrations), filled with plain sqlite3;
  2. time single lookups on four paths (raw sqlite3, aiosqlite, SQLAlchemy ORM, commhub's
     CallerId.match) in rotating rounds, so background noise hits every path alike;
  3. time `commhub serve`'s memory and HTTP lookups on that database;
  4. time `commhub contacts import` of an Outlook-style CSV, then the same import again;
  5. print a markdown report, write it to <out>/lookup.md and, with --docs, into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import phonenumbers
from phonenumbers import PhoneNumberFormat
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commhub.app import caller_index
from commhub.contacts.caller_id import CallerId
from commhub.contacts.index import CallerIndex
from commhub.contacts.names import contact_key, fold
from commhub.contacts.phone import describe, normalise
from commhub.store.db import create_engine, session_factory
from commhub.store.migrate import upgrade
from commhub.store.models import PhoneNumberRow

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COMMHUB = VENV_BIN / "commhub"
SEED = 20261124

# Targets from the brief; the report says for each whether it is met.
TARGET_MATCH_P99_RATIO = 20.0
TARGET_IMPORT_ROWS_PER_S = 20_000.0
TARGET_SERVE_RSS_MB = 200.0

CONTACTS_PER_ORGANIZATION = 20
PHONES_PER_CONTACT = 2.5
NO_ORGANIZATION_SHARE = 0.05  # private persons
SHARED_OFFICE_LINE_SHARE = 0.01  # a contact who gives a colleague's line as their own
SHARED_FAX_SHARE = 0.25  # of fax numbers: the company's one fax machine
DIRECT_DIAL_SHARE = 0.7  # of work numbers: an extension behind the company's switchboard
UNKNOWN_DIRECT_DIAL_SHARE = 0.25  # of unknown numbers: an unstored extension of a stored switchboard
BUILD_CHUNK = 10_000
ROUND_SIZE = 2_000
WARMUP_LOOKUPS = 1_000

SUBPROCESS_TIMEOUT_S = 300.0
IMPORT_TIMEOUT_S = 3_600.0
SERVER_START_TIMEOUT_S = 180.0
SERVER_STOP_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0
HTTP_CONCURRENCY = 16
READERS_WAIT_S = 120.0
READERS_MAX_WAIT_S = 25 * 60.0

RAW_SQL = "SELECT contact_id, organization_id FROM phone_numbers WHERE e164 = ?"
TOKEN_PATTERN = re.compile(r"chub_[A-Za-z0-9_-]+")


# === test data: names, places, phone numbers ==========================================================

FIRST_NAMES_M = ("Alexander Andreas Bernd Christian Daniel David Dennis Dieter Dirk Florian Frank Georg Gerhard "
                 "Hans Harald Heinz Helmut Jan Jens Joachim Jörg Jürgen Kai Karl Klaus Lars Lukas Manfred Marc "
                 "Marco Markus Martin Matthias Max Michael Niklas Oliver Patrick Paul Peter Philipp Rainer Ralf "
                 "René Robert Roland Sebastian Stefan Sven Thomas Thorsten Tim Tobias Uwe Volker Werner Wolfgang "
                 "Yannick Zoltan Björn Günter Jonas Felix Leon Moritz Finn Elias").split()
FIRST_NAMES_F = ("Andrea Angelika Anja Anna Annette Barbara Birgit Brigitte Carina Christina Claudia Daniela "
                 "Doris Elke Emma Eva Franziska Gabriele Heike Helga Ines Jana Jennifer Julia Karin Katharina "
                 "Kerstin Laura Lea Lena Maria Marie Martina Melanie Monika Nadine Nicole Petra Renate Sabine "
                 "Sandra Sarah Silke Simone Sonja Stefanie Susanne Tanja Ursula Ute Vanessa Yvonne Jürgen "
                 "Sophie Hannah Mia Lina Clara Jasmin Gülay Zeynep Ayşe Małgorzata").split()
LAST_NAMES = ("Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer "
              "Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange "
              "Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter "
              "Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich "
              "Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon "
              "Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel "
              "Heinrich Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch "
              "Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer Gruber Steiner Moser Hofer Egger Brunner "
              "Eder Pichler Leitner Wimmer Aigner Baumgartner Mayr Lechner Gasser Meili Bühler Frei Gerber "
              "Kälin Zürcher Ammann Bachmann Sutter Yilmaz Kaya Demir Nowak Kowalski Wójcik Popović Rossi "
              "Nguyen Ivanov Petrović Papadopoulos Öztürk Łukasik Dvořák").split()
BRANCHES = ("Maschinenbau Metallbau Elektrotechnik Haustechnik Logistik Immobilien Steuerberatung Consulting "
            "Bau Holzbau Dachdeckerei Autohaus Druckerei Software Systemhaus Medizintechnik Reisen "
            "Versicherungsmakler Lebensmittel Getränkehandel Gartenbau Kunststofftechnik Anlagenbau "
            "Gebäudereinigung Sanitär Malerbetrieb Optik Zahntechnik Verpackungen Spedition").split()
LEGAL_FORMS = {"49": ("GmbH", "GmbH & Co. KG", "AG", "KG", "e.K.", "OHG"),
               "43": ("GmbH", "GesmbH", "AG", "KG", "OG"),
               "41": ("AG", "GmbH", "SA", "Sàrl")}
POSITIONS = ("Geschäftsführer", "Einkauf", "Vertrieb", "Buchhaltung", "Technik", "Projektleitung",
             "Assistenz der Geschäftsleitung", "Personal", "IT-Leitung", "Lager")
STREETS = ("Hauptstraße", "Bahnhofstraße", "Industriestraße", "Gartenstraße", "Schillerstraße",
           "Goethestraße", "Lindenstraße", "Am Markt", "Gewerbepark", "Mühlenweg", "Ringstraße")


@dataclass(frozen=True, slots=True)
class Area:
    code: str  # national destination code without the trunk 0
    city: str
    postal_code: str
    digits: int  # subscriber digits of an ordinary line (a switchboard has the same length)


@dataclass(frozen=True, slots=True)
class Country:
    calling_code: str
    name: str
    share: float
    areas: tuple[Area, ...]
    mobiles: tuple[tuple[str, int], ...]  # (mobile prefix, subscriber digits)
    extension_digits: int  # what a direct-dial number adds to its switchboard prefix
    variable_length: bool  # DE and AT numbers vary in length; Swiss ones have exactly nine digits


GERMANY = Country("49", "Deutschland", 0.80, tuple(Area(c, city, plz, 7 if len(c) <= 3 else 6) for c, city, plz in (
    ("30", "Berlin", "10115"), ("40", "Hamburg", "20095"), ("89", "München", "80331"), ("221", "Köln", "50667"),
    ("69", "Frankfurt am Main", "60311"), ("711", "Stuttgart", "70173"), ("211", "Düsseldorf", "40213"),
    ("201", "Essen", "45127"), ("231", "Dortmund", "44135"), ("421", "Bremen", "28195"),
    ("511", "Hannover", "30159"), ("341", "Leipzig", "04109"), ("351", "Dresden", "01067"),
    ("911", "Nürnberg", "90402"), ("621", "Mannheim", "68159"), ("761", "Freiburg im Breisgau", "79098"),
    ("6221", "Heidelberg", "69117"), ("7071", "Tübingen", "72070"), ("8031", "Rosenheim", "83022"),
    ("5251", "Paderborn", "33098"), ("228", "Bonn", "53111"), ("241", "Aachen", "52062"),
    ("251", "Münster", "48143"), ("361", "Erfurt", "99084"), ("371", "Chemnitz", "09111"),
    ("381", "Rostock", "18055"), ("391", "Magdeburg", "39104"), ("431", "Kiel", "24103"),
    ("451", "Lübeck", "23552"), ("521", "Bielefeld", "33602"), ("531", "Braunschweig", "38100"),
    ("561", "Kassel", "34117"), ("611", "Wiesbaden", "65183"), ("681", "Saarbrücken", "66111"),
    ("721", "Karlsruhe", "76133"), ("731", "Ulm", "89073"), ("821", "Augsburg", "86150"),
    ("941", "Regensburg", "93047"), ("931", "Würzburg", "97070"), ("6131", "Mainz", "55116"),
    ("6151", "Darmstadt", "64283"), ("9131", "Erlangen", "91052"), ("7031", "Böblingen", "71032"),
)), tuple((p, 8 if p.startswith("15") else 7) for p in (
    "151", "152", "157", "159", "160", "162", "163", "170", "171", "172", "173", "174", "175", "176", "177",
    "178", "179")), 2, True)
AUSTRIA = Country("43", "Österreich", 0.12, tuple(Area(c, city, plz, {1: 7, 3: 6}.get(len(c), 5)) for c, city, plz in (
    ("1", "Wien", "1010"), ("316", "Graz", "8010"), ("512", "Innsbruck", "6020"), ("662", "Salzburg", "5020"),
    ("732", "Linz", "4020"), ("463", "Klagenfurt", "9020"), ("2742", "St. Pölten", "3100"),
    ("5572", "Dornbirn", "6850"),
)), (("660", 7), ("664", 7), ("676", 7), ("699", 8), ("650", 7), ("681", 8), ("688", 7)), 2, True)
SWITZERLAND = Country("41", "Schweiz", 0.08, tuple(Area(c, city, plz, 7) for c, city, plz in (
    ("44", "Zürich", "8001"), ("31", "Bern", "3011"), ("61", "Basel", "4051"), ("22", "Genève", "1201"),
    ("21", "Lausanne", "1003"), ("41", "Luzern", "6003"), ("71", "St. Gallen", "9000"),
    ("52", "Winterthur", "8400"),
)), (("76", 7), ("77", 7), ("78", 7), ("79", 7)), 1, False)
COUNTRIES = (GERMANY, AUSTRIA, SWITZERLAND)
EXTENSION_DIGITS = {country.calling_code: country.extension_digits for country in COUNTRIES}


@dataclass(frozen=True, slots=True)
class Number:
    """A generated number: its E.164 key and the text a person typed into the CRM."""

    e164: str
    raw: str


@dataclass(slots=True)
class Switchboard:
    """A company's main line; its direct-dial numbers are the prefix plus a short extension."""

    country: Country
    area: Area
    number: Number
    prefix: str  # E.164 minus the final "0"
    next_extension: int
    fax: Number | None = None
    office_line: Number | None = None  # the last work number handed out, for shared office lines


class NumberFactory:
    """Unique, valid DACH numbers (libphonenumber accepts every one) from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def _unique(self, make: Callable[[], Number]) -> Number:
        while True:
            number = make()
            if number.e164 not in self.used:
                self.used.add(number.e164)
                return number

    def _subscriber(self, digits: int) -> str:
        # Subscriber numbers never start with 0 or 1 (trunk and service prefixes).
        return str(self.rng.randrange(2 * 10 ** (digits - 1), 10 ** digits))

    def fixed(self, country: Country, area: Area) -> Number:
        def make() -> Number:
            longer = country.variable_length and self.rng.random() < 1 / 3
            subscriber = self._subscriber(area.digits + longer)
            return Number(f"+{country.calling_code}{area.code}{subscriber}",
                          f"+{country.calling_code} {area.code} {subscriber}")
        return self._unique(make)

    def mobile(self, country: Country) -> Number:
        def make() -> Number:
            prefix, digits = self.rng.choice(country.mobiles)
            subscriber = str(self.rng.randrange(10 ** (digits - 1), 10 ** digits))
            return Number(f"+{country.calling_code}{prefix}{subscriber}", f"0{prefix} {subscriber}")
        return self._unique(make)

    def switchboard(self, country: Country, area: Area) -> Switchboard:
        def make() -> Number:
            base = self._subscriber(area.digits - 1)
            return Number(f"+{country.calling_code}{area.code}{base}0",
                          f"+{country.calling_code} {area.code} {base}-0")
        number = self._unique(make)
        first_extension = 10 ** (country.extension_digits - 1)
        return Switchboard(country, area, number, number.e164[:-1], first_extension)

    def direct_dial(self, board: Switchboard) -> Number | None:
        """The company's next free extension, or None when its extension range is used up."""
        while board.next_extension < 10 ** board.country.extension_digits:
            extension = str(board.next_extension)
            board.next_extension += 1
            e164 = board.prefix + extension
            if e164 not in self.used:
                self.used.add(e164)
                local = board.prefix[1 + len(board.country.calling_code) + len(board.area.code):]
                return Number(e164, f"+{board.country.calling_code} {board.area.code} {local}-{extension}")
        return None


def pick_country(rng: random.Random) -> Country:
    roll = rng.random()
    for country in COUNTRIES:
        if roll < country.share:
            return country
        roll -= country.share
    return GERMANY


def company_name(rng: random.Random, country: Country) -> str:
    return f"{rng.choice(LAST_NAMES)} {rng.choice(BRANCHES)} {rng.choice(LEGAL_FORMS[country.calling_code])}"


def person_name(rng: random.Random) -> tuple[str, str, str]:
    """(salutation, first name, last name)."""
    if rng.random() < 0.5:
        return "Herr", rng.choice(FIRST_NAMES_M), rng.choice(LAST_NAMES)
    return "Frau", rng.choice(FIRST_NAMES_F), rng.choice(LAST_NAMES)


# === step 1: the database =============================================================================

@dataclass(frozen=True, slots=True)
class Scale:
    contacts: int
    organizations: int
    phones: int
    lookups_per_path: int
    import_rows: int
    import_companies: int
    http_requests: int

    @staticmethod
    def of(contacts: int, quick: bool) -> Scale:
        return Scale(contacts=contacts, organizations=max(1, contacts // CONTACTS_PER_ORGANIZATION),
                     phones=int(contacts * PHONES_PER_CONTACT),
                     lookups_per_path=4_000 if quick else 24_000,
                     import_rows=5_000 if quick else 100_000,
                     import_companies=100 if quick else 2_000,
                     http_requests=500 if quick else 5_000)


@dataclass(slots=True)
class BuildResult:
    seconds_schema: float = 0.0
    seconds_organizations: float = 0.0
    seconds_contacts_and_phones: float = 0.0
    seconds_indexes: float = 0.0
    seconds_finish: float = 0.0
    seconds_inserting: float = 0.0  # of organizations + contacts + numbers: inside executemany
    organizations: int = 0
    contacts: int = 0
    phones: int = 0
    distinct_e164: int = 0
    switchboards: int = 0
    file_bytes: int = 0
    valid_checked: int = 0  # a sample of stored numbers run through libphonenumber's validity check
    valid_found: int = 0

    @property
    def seconds_total(self) -> float:
        return (self.seconds_schema + self.seconds_organizations + self.seconds_contacts_and_phones
                + self.seconds_indexes + self.seconds_finish)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def sqlalchemy_timestamp() -> str:
    # The text SQLAlchemy's SQLite DateTime type stores (UTC, microseconds, no zone).
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def create_schema(path: Path) -> None:
    engine = create_engine(sqlite_url(path))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def open_for_bulk_load(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    # A scratch database: no journal, no fsync, a large page cache for building the indexes.
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1048576", "temp_store=MEMORY"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


class DatabaseBuilder:
    """Writes organizations, contacts and their numbers with executemany, chunk by chunk."""

    def __init__(self, connection: sqlite3.Connection, scale: Scale, rng: random.Random) -> None:
        self.connection = connection
        self.scale = scale
        self.rng = rng
        self.numbers = NumberFactory(rng)
        self.now = sqlalchemy_timestamp()
        self.boards: list[Switchboard] = []
        self.name_keys: dict[tuple[str, str], str] = {}
        self.phone_id = 0
        self.seconds_in_sqlite = 0.0  # the rest of the build time is generating the rows in Python

    def organizations(self) -> None:
        rows, phones = [], []
        for org_id in range(1, self.scale.organizations + 1):
            country = pick_country(self.rng)
            area = self.rng.choice(country.areas)
            name = company_name(self.rng, country)
            rows.append((org_id, name, fold(name), self.rng.choice(("A", "B", "C", None)),
                         f"{self.rng.choice(STREETS)} {self.rng.randrange(1, 200)}", area.postal_code,
                         area.city, country.name, None, "{}", None, self.now, self.now))
            board = self.numbers.switchboard(country, area)
            self.boards.append(board)
            phones.append(self._phone(None, org_id, "switchboard", board.number, board.prefix))
        self._write(
            "INSERT INTO organizations (id, name, name_key, customer_class, street, postal_code, city, country,"
            " domain, attributes, owner_agent_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows)
        self._insert_phones(phones)

    def contacts_and_phones(self) -> None:
        extra_total = self.scale.phones - self.scale.organizations - 2 * self.scale.contacts
        extra_rate = max(0, extra_total) / self.scale.contacts
        for start in range(1, self.scale.contacts + 1, BUILD_CHUNK):
            contacts, phones = [], []
            for contact_id in range(start, min(start + BUILD_CHUNK, self.scale.contacts + 1)):
                # Spreads the home/fax numbers so the total is exactly `scale.phones`.
                extra = math.floor(contact_id * extra_rate) > math.floor((contact_id - 1) * extra_rate)
                contacts.append(self._contact(contact_id, phones, extra))
            self._write(
                "INSERT INTO contacts (id, organization_id, salutation, title, first_name, last_name, name_key,"
                " position, customer_class, street, postal_code, city, country, attributes, owner_agent_id,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", contacts)
            self._insert_phones(phones)

    def _contact(self, contact_id: int, phones: list[tuple[Any, ...]], extra: bool) -> tuple[Any, ...]:
        org_id = None if self.rng.random() < NO_ORGANIZATION_SHARE else self.rng.randrange(len(self.boards)) + 1
        board = None if org_id is None else self.boards[org_id - 1]  # boards are in organization order
        country = board.country if board else pick_country(self.rng)
        area = board.area if board else self.rng.choice(country.areas)
        phones.append(self._phone(contact_id, None, "work", self._work_number(board, country, area)))
        phones.append(self._phone(contact_id, None, "mobile", self.numbers.mobile(country)))
        if extra:
            kind = "home" if self.rng.random() < 0.6 else "fax"
            phones.append(self._phone(contact_id, None, kind, self._fax_number(board, country, area) if kind == "fax"
                                      else self.numbers.fixed(country, self.rng.choice(country.areas))))
        salutation, first, last = person_name(self.rng)
        key = self.name_keys.get((first, last))
        if key is None:
            key = self.name_keys[(first, last)] = contact_key(first, last)
        title = "Dr." if self.rng.random() < 0.05 else None
        return (contact_id, org_id, salutation, title, first, last, key,
                self.rng.choice(POSITIONS) if board else None, self.rng.choice(("A", "B", "C", None)),
                f"{self.rng.choice(STREETS)} {self.rng.randrange(1, 200)}", area.postal_code, area.city,
                country.name, "{}", None, self.now, self.now)

    def _work_number(self, board: Switchboard | None, country: Country, area: Area) -> Number:
        if board is not None:
            if board.office_line is not None and self.rng.random() < SHARED_OFFICE_LINE_SHARE:
                return board.office_line
            number = self.numbers.direct_dial(board) if self.rng.random() < DIRECT_DIAL_SHARE else None
            board.office_line = number or self.numbers.fixed(country, area)
            return board.office_line
        return self.numbers.fixed(country, area)

    def _fax_number(self, board: Switchboard | None, country: Country, area: Area) -> Number:
        if board is not None and self.rng.random() < SHARED_FAX_SHARE:
            if board.fax is None:
                board.fax = self.numbers.fixed(country, area)
            return board.fax
        return self.numbers.fixed(country, area)

    def _phone(self, contact_id: int | None, org_id: int | None, kind: str, number: Number,
               prefix: str | None = None) -> tuple[Any, ...]:
        self.phone_id += 1
        return (self.phone_id, contact_id, org_id, kind, number.raw, number.e164, None, prefix)

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        started = time.perf_counter()
        self.connection.executemany(sql, rows)
        self.seconds_in_sqlite += time.perf_counter() - started

    def _insert_phones(self, rows: list[tuple[Any, ...]]) -> None:
        self._write(
            "INSERT INTO phone_numbers (id, contact_id, organization_id, kind, raw, e164, extension,"
            " switchboard_prefix) VALUES (?,?,?,?,?,?,?,?)", rows)


BULK_TABLES = ("organizations", "contacts", "phone_numbers")


def drop_indexes(connection: sqlite3.Connection) -> list[str]:
    """Drop the migration's indexes on the bulk-filled tables; returns their exact CREATE statements.

    Building each index once at the end, from sorted keys, avoids inserting millions of random
    e164 keys into a B-tree one by one; re-running the migration's own statements keeps the schema
    exact (partial indexes included).
    """
    marks = ", ".join("?" for _ in BULK_TABLES)
    indexes = connection.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                                 f"AND tbl_name IN ({marks})", BULK_TABLES).fetchall()
    for name, _ in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in indexes]


def build_database(path: Path, scale: Scale) -> BuildResult:
    result = BuildResult()
    remove_database(path)
    started = time.perf_counter()
    asyncio.run(create_schema(path))
    result.seconds_schema = time.perf_counter() - started
    connection = open_for_bulk_load(path)
    try:
        builder = DatabaseBuilder(connection, scale, random.Random(SEED))
        connection.execute("BEGIN")
        index_statements = drop_indexes(connection)
        started = time.perf_counter()
        builder.organizations()
        result.seconds_organizations = time.perf_counter() - started
        started = time.perf_counter()
        builder.contacts_and_phones()
        result.seconds_contacts_and_phones = time.perf_counter() - started
        result.seconds_inserting = builder.seconds_in_sqlite
        started = time.perf_counter()
        for statement in index_statements:
            connection.execute(statement)
        connection.execute("COMMIT")
        result.seconds_indexes = time.perf_counter() - started
        started = time.perf_counter()
        connection.execute("PRAGMA journal_mode=WAL")  # what commhub runs with
        result.seconds_finish = time.perf_counter() - started
    finally:
        connection.close()
    return count_database(path, result)


def count_database(path: Path, result: BuildResult) -> BuildResult:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        one = lambda sql: int(connection.execute(sql).fetchone()[0])  # noqa: E731
        result.organizations = one("SELECT COUNT(*) FROM organizations")
        result.contacts = one("SELECT COUNT(*) FROM contacts")
        result.phones = one("SELECT COUNT(*) FROM phone_numbers")
        result.distinct_e164 = one("SELECT COUNT(DISTINCT e164) FROM phone_numbers")
        result.switchboards = one("SELECT COUNT(switchboard_prefix) FROM phone_numbers")
    finally:
        connection.close()
    result.file_bytes = database_bytes(path)
    result.valid_checked, result.valid_found = check_validity(path)
    return result


def check_validity(path: Path, sample: int = 2_000) -> tuple[int, int]:
    """(checked, valid): the generated numbers must be real-looking, or parsing costs would be atypical."""
    rng = random.Random(SEED + 3)
    numbers = known_numbers(path, sample, rng)
    return len(numbers), sum(phonenumbers.is_valid_number(phonenumbers.parse(e164)) for e164 in numbers)


def database_bytes(path: Path) -> int:
    return sum(Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal")
               if Path(f"{path}{suffix}").exists())


# === step 2: lookups ==================================================================================

@dataclass(frozen=True, slots=True)
class Query:
    e164: str
    text: str  # the number as a PBX sends it
    known: bool


def pbx_text(e164: str, rng: random.Random) -> str:
    """German PBXs send domestic callers nationally (`030 1234567`), foreign ones with + or 00."""
    parsed = phonenumbers.parse(e164)
    roll = rng.random()
    if parsed.country_code == 49 and roll < 0.5:
        return phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
    if roll < 0.75:
        return phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)
    return "00" + e164[1:]


def known_numbers(path: Path, count: int, rng: random.Random) -> list[str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        highest = int(connection.execute("SELECT MAX(id) FROM phone_numbers").fetchone()[0])
        found: list[str] = []
        while len(found) < count:
            row = connection.execute("SELECT e164 FROM phone_numbers WHERE id = ?",
                                     (rng.randrange(1, highest + 1),)).fetchone()
            if row and row[0]:
                found.append(row[0])
        return found
    finally:
        connection.close()


def unknown_numbers(path: Path, count: int, rng: random.Random) -> list[str]:
    """Numbers not stored: mostly anywhere in DACH, some an unstored extension of a stored switchboard."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        prefixes = [row[0] for row in connection.execute(
            "SELECT switchboard_prefix FROM phone_numbers WHERE switchboard_prefix IS NOT NULL")]
        factory = NumberFactory(rng)
        found: list[str] = []
        while len(found) < count:
            if prefixes and rng.random() < UNKNOWN_DIRECT_DIAL_SHARE:
                prefix = rng.choice(prefixes)
                digits = EXTENSION_DIGITS.get(prefix[1:3], 2)
                e164 = prefix + str(rng.randrange(10 ** (digits - 1), 10 ** digits))
            else:
                country = pick_country(rng)
                e164 = (factory.mobile(country) if rng.random() < 0.4
                        else factory.fixed(country, rng.choice(country.areas))).e164
            if connection.execute("SELECT 1 FROM phone_numbers WHERE e164 = ?", (e164,)).fetchone() is None:
                found.append(e164)
        return found
    finally:
        connection.close()


def query_rounds(path: Path, scale: Scale, rng: random.Random) -> tuple[list[Query], list[list[Query]]]:
    """A warm-up list and rounds of ROUND_SIZE queries, each half known and half unknown, shuffled."""
    rounds = math.ceil(scale.lookups_per_path / ROUND_SIZE)
    half = (rounds * ROUND_SIZE + WARMUP_LOOKUPS) // 2 + 1
    known = [Query(e, pbx_text(e, rng), True) for e in known_numbers(path, half, rng)]
    unknown = [Query(e, pbx_text(e, rng), False) for e in unknown_numbers(path, half, rng)]
    mixed = [query for pair in zip(known, unknown, strict=True) for query in pair]
    warmup, rest = mixed[:WARMUP_LOOKUPS], mixed[WARMUP_LOOKUPS:]
    batches = [rest[i * ROUND_SIZE:(i + 1) * ROUND_SIZE] for i in range(rounds)]
    for batch in batches:
        rng.shuffle(batch)
    return warmup, batches


@dataclass(slots=True)
class Samples:
    known: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    rounds: list[list[int]] = field(default_factory=list)  # the same figures, per round

    @property
    def all(self) -> list[int]:
        return self.known + self.unknown


SyncLookup = Callable[[Query], object]
AsyncLookup = Callable[[Query], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class LookupPath:
    key: str
    label: str
    sync: SyncLookup | None = None
    async_: AsyncLookup | None = None


async def run_path(path: LookupPath, queries: Sequence[Query], samples: Samples | None) -> None:
    clock = time.perf_counter_ns
    if samples is not None:
        samples.rounds.append([])
    for query in queries:
        if path.sync is not None:
            started = clock()
            path.sync(query)
            elapsed = clock() - started
        else:
            assert path.async_ is not None
            started = clock()
            await path.async_(query)
            elapsed = clock() - started
        if samples is not None:
            (samples.known if query.known else samples.unknown).append(elapsed)
            samples.rounds[-1].append(elapsed)


def warm_page_cache(database: Path) -> None:
    """Read the database file once so that its pages are in the OS page cache.

    On the machine this was written on (a VM), the kernel hands page cache back to the host within
    seconds even with gigabytes free, and a lookup that has to read its index page from disk takes
    ≈ 100 µs instead of 10; reading the file before every round gives every path the same warm start.
    """
    with open(database, "rb") as handle:
        while handle.read(1 << 20):
            pass


async def measure_rotating(paths: list[LookupPath], warmup: list[Query], rounds: list[list[Query]],
                           database: Path) -> dict[str, Samples]:
    warm_page_cache(database)
    for path in paths:
        await run_path(path, warmup, None)
    samples = {path.key: Samples() for path in paths}
    for number, batch in enumerate(rounds):
        warm_page_cache(database)
        shift = number % len(paths)  # each path goes first, second, … equally often
        for path in paths[shift:] + paths[:shift]:
            await run_path(path, batch, samples[path.key])
    return samples


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """How busy the machine was while something was timed: other work preempts the timed code."""

    seconds: float
    machine_busy: float  # share of all CPUs busy, any process
    own: float  # share of all CPUs used by this process
    involuntary_switches: int  # times this process was preempted
    load_before: float
    load_after: float


def cpu_counters() -> tuple[float, int, int, float, int, float]:
    """(wall, busy jiffies, total jiffies, own CPU seconds, involuntary switches, 1-min load)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (time.monotonic(), sum(fields) - idle, sum(fields), usage.ru_utime + usage.ru_stime,
            usage.ru_nivcsw, os.getloadavg()[0])


def cpu_window(before: tuple[float, int, int, float, int, float]) -> CpuWindow:
    after = cpu_counters()
    seconds = after[0] - before[0]
    cpus = os.cpu_count() or 1
    return CpuWindow(seconds, (after[1] - before[1]) / max(1, after[2] - before[2]),
                     (after[3] - before[3]) / (seconds * cpus), after[4] - before[4], before[5], after[5])


@dataclass(slots=True)
class LookupResult:
    samples: dict[str, Samples]
    cpu: CpuWindow
    labels: dict[str, str]
    known_queries: int = 0
    matched_known: int = 0  # sanity: stored numbers commhub found a candidate for
    unknown_queries: int = 0
    matched_unknown: int = 0  # unstored numbers that still matched (an extension of a stored switchboard)


def lookup_paths(raw: sqlite3.Connection, async_db: aiosqlite.Connection,
                 sessions: async_sessionmaker[AsyncSession], caller_id: CallerId,
                 index: CallerIndex) -> list[LookupPath]:
    async def via_aiosqlite(query: Query) -> object:
        return await async_db.execute_fetchall(RAW_SQL, (query.e164,))

    async def via_orm(query: Query) -> object:
        async with sessions() as session:
            return (await session.scalars(select(PhoneNumberRow).where(PhoneNumberRow.e164 == query.e164))).all()

    async def via_commhub(query: Query) -> object:
        return await caller_id.match(query.text)

    async def index_only(query: Query) -> object:
        return await index.exact(query.e164) or await index.via_switchboard(query.e164)

    def phone_only(query: Query) -> object:
        return describe(normalise(query.text, "DE"), language="de", locate=False)

    return [
        LookupPath("raw", "a. `sqlite3`, indexed query (floor)",
                   sync=lambda query: raw.execute(RAW_SQL, (query.e164,)).fetchall()),
        LookupPath("aiosqlite", "b. the same query through `aiosqlite`", async_=via_aiosqlite),
        LookupPath("orm", "c. SQLAlchemy 2 async ORM, a session per lookup", async_=via_orm),
        LookupPath("commhub", "d. commhub `CallerId.match(text)`", async_=via_commhub),
        LookupPath("index", "d′ part: `SqliteCallerIndex` exact → switchboard (no parsing)", async_=index_only),
        LookupPath("phone", "d″ part: `normalise` + `describe` (phonenumbers, no database)", sync=phone_only),
    ]


async def measure_lookups(path: Path, warmup: list[Query], rounds: list[list[Query]]) -> LookupResult:
    url = sqlite_url(path)
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    engine = create_engine(url)
    index = caller_index(url, engine)
    caller_id = CallerId(index, region="DE")
    try:
        async with aiosqlite.connect(path) as async_db:
            paths = lookup_paths(raw, async_db, session_factory(engine), caller_id, index)
            # Objects made while building and sampling would otherwise be rescanned by every full
            # garbage collection during the timed loops and show up as harness noise in p99.9.
            gc.collect()
            gc.freeze()
            counters = cpu_counters()
            samples = await measure_rotating(paths, warmup, rounds, path)
            cpu = cpu_window(counters)
            gc.unfreeze()
        result = LookupResult(samples, cpu, {p.key: p.label for p in paths})
        await count_matches(caller_id, rounds, result)
    finally:
        index.close()
        raw.close()
        await engine.dispose()
    return result


async def count_matches(caller_id: CallerId, rounds: list[list[Query]], result: LookupResult) -> None:
    """Sanity check, untimed: every stored number must match; unstored ones only via a switchboard."""
    for query in (query for batch in rounds for query in batch):
        hit = bool((await caller_id.match(query.text)).candidates)
        if query.known:
            result.known_queries += 1
            result.matched_known += hit
        else:
            result.unknown_queries += 1
            result.matched_unknown += hit


@dataclass(frozen=True, slots=True)
class Stats:
    count: int
    mean_us: float
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float


def percentile(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile in µs."""
    rank = max(1, math.ceil(fraction * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1000


def stats(samples_ns: list[int]) -> Stats:
    ordered = sorted(samples_ns)
    return Stats(len(ordered), sum(ordered) / len(ordered) / 1000, percentile(ordered, 0.50),
                 percentile(ordered, 0.99), percentile(ordered, 0.999), ordered[-1] / 1000)


# === step 3: `commhub serve` memory and HTTP lookups ===================================================

@dataclass(slots=True)
class ServeResult:
    port: int = 0
    startup_seconds: float = 0.0
    rss_idle_mb: float = 0.0
    rss_after_sequential_mb: float = 0.0
    rss_after_concurrent_mb: float = 0.0
    hwm_mb: float = 0.0
    sequential: Stats | None = None
    sequential_rps: float = 0.0
    concurrent: Stats | None = None
    concurrent_rps: float = 0.0
    errors: int = 0
    known_matched: int = 0
    known_sent: int = 0


def commhub_env(database: Path, **extra: str) -> dict[str, str]:
    # Inherited COMMHUB_* variables would silently change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMHUB_")}
    env["COMMHUB_DATABASE__URL"] = f"sqlite+aiosqlite:///{database}"
    env.update(extra)
    return env


def run_commhub(args: list[str], env: dict[str, str], cwd: Path,
                timeout: float = SUBPROCESS_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMMHUB), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def agent_token(database: Path, out: Path) -> str:
    """A token for the admin agent `bench` (added on a fresh database, re-issued on a reused one)."""
    env = commhub_env(database, COMMHUB_LOGGING__LEVEL="warning")
    added = run_commhub(["agents", "add", "bench", "--role", "admin"], env, out)
    output = added.stdout
    if added.returncode != 0:
        issued = run_commhub(["agents", "token", "bench"], env, out)
        if issued.returncode != 0:
            raise RuntimeError(f"cannot get an agent token: {added.stderr.strip()} / {issued.stderr.strip()}")
        output = issued.stdout
    found = TOKEN_PATTERN.search(output)
    if found is None:
        raise RuntimeError(f"no token in the output of `commhub agents`: {output!r}")
    return found.group(0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB (MiB), from /proc/<pid>/status."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def wait_healthy(server: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"commhub serve exited with {server.returncode} before /healthz answered")
            try:
                async with client.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"/healthz did not answer 200 within {SERVER_START_TIMEOUT_S:.0f} s")


async def http_lookups(client: aiohttp.ClientSession, base: str, queries: Sequence[Query], concurrency: int,
                       result: ServeResult) -> tuple[list[int], float]:
    """Send every query's text to /api/contacts?phone=; returns per-request latencies and the wall time."""
    latencies: list[int] = []
    pending = iter(queries)

    async def worker() -> None:
        for query in pending:
            started = time.perf_counter_ns()
            async with client.get(f"{base}/api/contacts", params={"phone": query.text}) as response:
                body = await response.read()
            latencies.append(time.perf_counter_ns() - started)
            if response.status != 200:
                result.errors += 1
            elif query.known:
                result.known_sent += 1
                result.known_matched += bool(json.loads(body)["matches"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def drive_server(server: subprocess.Popen[bytes], base: str, token: str, queries: list[Query],
                       result: ServeResult) -> None:
    started = time.perf_counter()
    await wait_healthy(server, base)
    result.startup_seconds = time.perf_counter() - started
    result.rss_idle_mb, _ = memory_mb(server.pid)
    half = len(queries) // 2
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=HTTP_CONCURRENCY)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as client:
        await http_lookups(client, base, queries[:200], 1, ServeResult())  # warm-up, not counted
        latencies, seconds = await http_lookups(client, base, queries[:half], 1, result)
        result.sequential, result.sequential_rps = stats(latencies), len(latencies) / seconds
        result.rss_after_sequential_mb, _ = memory_mb(server.pid)
        latencies, seconds = await http_lookups(client, base, queries[half:], HTTP_CONCURRENCY, result)
        result.concurrent, result.concurrent_rps = stats(latencies), len(latencies) / seconds
    result.rss_after_concurrent_mb, result.hwm_mb = memory_mb(server.pid)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=SERVER_STOP_TIMEOUT_S)


def measure_serve(database: Path, out: Path, queries: list[Query]) -> ServeResult:
    """`commhub serve` on the big database: RSS after start and after two sets of HTTP lookups.

    The first half of the requests goes one at a time (latency), the second half with
    HTTP_CONCURRENCY in flight (throughput); VmHWM is the peak over the whole run.
    """
    token = agent_token(database, out)
    warm_page_cache(database)
    result = ServeResult(port=free_port())
    env = commhub_env(database, COMMHUB_LOGGING__LEVEL="warning")
    with open(out / "serve.log", "wb") as log:
        server = subprocess.Popen([str(COMMHUB), "serve", "--host", "127.0.0.1", "--port", str(result.port)],
                                  env=env, cwd=out, stdout=log, stderr=subprocess.STDOUT)
        try:
            asyncio.run(drive_server(server, f"http://127.0.0.1:{result.port}", token, queries, result))
        finally:
            stop_server(server)
    return result


# === step 4: `commhub contacts import` ===============================================================

IMPORT_HEADER = ("Vorname", "Nachname", "Firma", "Telefon geschäftlich", "Mobiltelefon", "E-Mail-Adresse",
                 "Ort", "Kundennummer")
_MAIL_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "à": "a",
                            "ç": "c", "ğ": "g", "ş": "s", "ł": "l", "ó": "o", "ć": "c", "ř": "r", "ı": "i"})


def mail_part(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower().translate(_MAIL_FOLD)).strip("-")


def outlook_phone(number: Number, rng: random.Random) -> str:
    """Outlook writes `+49 (30) 1234567`; people type `030 1234567-12` or `030/1234567`."""
    calling_code, area, local = number.raw[1:].split(" ", 2)
    roll = rng.random()
    if roll < 0.5 or calling_code != "49":
        return f"+{calling_code} ({area}) {local}"
    if roll < 0.75:
        return f"0{area} {local}"
    return f"0{area}/{local.replace('-', '')}"


def outlook_mobile(number: Number, rng: random.Random) -> str:
    prefix, subscriber = number.raw[1:].split(" ", 1)
    calling_code = number.e164[1:3]
    if rng.random() < 0.5:
        return f"+{calling_code} ({prefix}) {subscriber}"
    return f"0{prefix} {subscriber}" if calling_code == "49" else f"+{calling_code} {prefix} {subscriber}"


@dataclass(slots=True)
class ImportCompany:
    name: str
    domain: str
    customer_number: str
    board: Switchboard
    people: set[str] = field(default_factory=set)  # folded names already used in this company


def import_companies(count: int, factory: NumberFactory, rng: random.Random) -> list[ImportCompany]:
    companies: list[ImportCompany] = []
    names: set[str] = set()
    while len(companies) < count:
        country = pick_country(rng)
        name = company_name(rng, country)
        if fold(name) in names:
            continue
        names.add(fold(name))
        tld = {"49": "de", "43": "at", "41": "ch"}[country.calling_code]
        domain = f"{mail_part(name.rsplit(' ', 1)[0])}-{len(companies)}.{tld}"
        board = factory.switchboard(country, rng.choice(country.areas))
        companies.append(ImportCompany(name, domain, f"KD-{10000 + len(companies)}", board))
    return companies


def import_rows(count: int, companies: list[ImportCompany], factory: NumberFactory,
                rng: random.Random) -> Iterator[list[str]]:
    """Distinct people (a name repeats across companies, never inside one), numbers and addresses."""
    weights = [1 / math.sqrt(rank + 1) for rank in range(len(companies))]  # a few big customers, many small
    for company in rng.choices(companies, weights, k=count):
        while True:
            _, first, last = person_name(rng)
            if contact_key(first, last) not in company.people:
                company.people.add(contact_key(first, last))
                break
        board = company.board
        work = factory.direct_dial(board) or factory.fixed(board.country, board.area)
        mobile = outlook_mobile(factory.mobile(board.country), rng) if rng.random() < 0.8 else ""
        email = f"{mail_part(first)}.{mail_part(last)}@{company.domain}" if rng.random() < 0.95 else ""
        yield [first, last, company.name, outlook_phone(work, rng), mobile, email, board.area.city,
               company.customer_number]


def write_import_csv(path: Path, rows: int, companies: int) -> None:
    rng = random.Random(SEED + 1)
    factory = NumberFactory(rng)
    # Excel's "CSV UTF-8" on a German Windows: BOM, semicolons, CRLF.
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        writer.writerow(IMPORT_HEADER)
        writer.writerows(import_rows(rows, import_companies(companies, factory, rng), factory, rng))


@dataclass(frozen=True, slots=True)
class ImportRun:
    wall_seconds: float
    rows: int
    summary: str  # commhub's own summary line
    returncode: int
    counts: dict[str, int]
    cpu_seconds: float  # user + system CPU of the command and its worker processes
    machine_busy: float  # share of all CPUs busy meanwhile, any process

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.wall_seconds


@dataclass(slots=True)
class ImportResult:
    rows: int = 0
    csv_bytes: int = 0
    runs: list[ImportRun] = field(default_factory=list)
    skipped: str | None = None  # why the import was not measured


def table_counts(database: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {table: int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("organizations", "contacts", "phone_numbers", "email_addresses")}
    finally:
        connection.close()


def readers_importable() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import commhub.contacts.readers"], capture_output=True,
                           timeout=SUBPROCESS_TIMEOUT_S, check=False)
    return probe.returncode == 0


def wait_for_readers() -> bool:
    """Every `commhub` verb imports commhub.contacts.readers, which may still be being written: wait for it."""
    deadline = time.monotonic() + READERS_MAX_WAIT_S
    while not readers_importable():
        if time.monotonic() >= deadline:
            return False
        print(f"commhub.contacts.readers is not importable yet; retrying in {READERS_WAIT_S:.0f} s",
              file=sys.stderr, flush=True)
        time.sleep(READERS_WAIT_S)
    return True


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(csv_path: Path, database: Path, out: Path, rows: int) -> ImportRun:
    counters, cpu_before = cpu_counters(), children_cpu_seconds()
    started = time.perf_counter()
    done = run_commhub(["contacts", "import", str(csv_path), "--quiet"], commhub_env(database), out,
                       timeout=IMPORT_TIMEOUT_S)
    wall = time.perf_counter() - started
    window = cpu_window(counters)
    summary = next((line for line in done.stdout.splitlines() if line.startswith(csv_path.name)),
                   done.stdout.strip()[-300:] or done.stderr.strip()[-300:])
    return ImportRun(wall, rows, summary, done.returncode, table_counts(database),
                     children_cpu_seconds() - cpu_before, window.machine_busy)


def measure_import(out: Path, scale: Scale) -> ImportResult:
    result = ImportResult(rows=scale.import_rows)
    csv_path = out / "import.csv"
    write_import_csv(csv_path, scale.import_rows, scale.import_companies)
    result.csv_bytes = csv_path.stat().st_size
    database = out / "import.db"
    remove_database(database)
    for _ in range(2):  # a fresh import, then the same file again (must update, never duplicate)
        result.runs.append(run_import(csv_path, database, out, scale.import_rows))
    return result


# === step 5: the report ===============================================================================

@dataclass(slots=True)
class Report:
    command: str
    scale: Scale
    build: BuildResult
    lookups: LookupResult
    serve: ServeResult | None
    imports: ImportResult
    started: datetime
    code: CodeState  # when the run began; others may change commhub while it runs


def machine_lines() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    return [f"- machine: {os.cpu_count()} cores (`nproc` {len(os.sched_getaffinity(0))}), {cpu}, "
            f"Linux {platform.release()}, shared with other work",
            f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"phonenumbers {phonenumbers.__version__}, aiohttp {aiohttp.__version__}, "
            f"aiosqlite {aiosqlite.__version__}"]


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S, check=False)
    return done.stdout


@dataclass(frozen=True, slots=True)
class CodeState:
    """Which commhub was measured: the commit, and any uncommitted changes to its code."""

    commit: str
    uncommitted: tuple[str, ...]
    fingerprint: str  # of the uncommitted code, so that a change during the run is noticed

    @staticmethod
    def now() -> CodeState:
        changed = tuple(line[3:] for line in git("status", "--porcelain", "--untracked-files=all", "--",
                                                 "commhub").splitlines())
        digest = hashlib.sha1(git("diff", "HEAD", "--", "commhub").encode())
        for name in changed:
            if (REPO / name).is_file():
                digest.update((REPO / name).read_bytes())
        return CodeState(git("rev-parse", "--short", "HEAD").strip() or "unknown", changed,
                         digest.hexdigest()[:8] if changed else "")

    def describe(self) -> str:
        text = f"commhub at commit {self.commit}"
        if self.uncommitted:
            text += (f" with uncommitted changes (fingerprint {self.fingerprint}) to "
                     f"{', '.join(f'`{name}`' for name in self.uncommitted)}")
        return text

    def changes_since(self, earlier: CodeState) -> str | None:
        """None when nothing under commhub/ changed since `earlier`, else which files did."""
        if self == earlier:
            return None
        names = set(git("diff", "--name-only", earlier.commit, self.commit, "--", "commhub").split())
        names |= set(self.uncommitted) | set(earlier.uncommitted)
        listed = ", ".join(f"`{name}`" for name in sorted(names)) or "uncommitted code"
        return f"{self.describe()}; files that differ from the start: {listed}"


def met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def us(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def build_section(report: Report) -> list[str]:
    b = report.build
    return [
        "### 1. The database", "",
        "| what | figure |", "| --- | --- |",
        f"| organizations / contacts | {b.organizations:,} / {b.contacts:,} |",
        f"| phone numbers (distinct E.164) | {b.phones:,} ({b.distinct_e164:,}; "
        f"{b.phones - b.distinct_e164:,} rows share a number) |",
        f"| switchboards (with `switchboard_prefix`) | {b.switchboards:,} |",
        f"| sample of stored numbers valid for libphonenumber | {b.valid_found:,} of {b.valid_checked:,} |",
        f"| build time: migrations / organizations / contacts + numbers / the migration's indexes / WAL on | "
        f"{b.seconds_schema:.1f} s / {b.seconds_organizations:.1f} s / {b.seconds_contacts_and_phones:.1f} s / "
        f"{b.seconds_indexes:.1f} s / {b.seconds_finish:.1f} s |",
        f"| of organizations + contacts + numbers: inside `executemany` (the rest generates rows) | "
        f"{b.seconds_inserting:.1f} s |",
        f"| build time, total | **{b.seconds_total:.1f} s** |",
        f"| file size | **{b.file_bytes / 1e6:,.0f} MB** |", "",
        "Rows are written with `sqlite3` `executemany` into the schema the migrations created; the "
        "migration's indexes on these tables are dropped first and re-created with their own statements "
        "afterwards (no emails). Countries DE 80 %, AT 12 %, CH 8 %; every contact has a work and a mobile "
        f"number, {PHONES_PER_CONTACT - 2:.1f} more per contact on average (home, fax); "
        f"{DIRECT_DIAL_SHARE:.0%} of work numbers are extensions behind their company's switchboard.", "",
    ]


def round_ratios(slow: Samples, floor: Samples) -> list[float]:
    return [percentile(sorted(a), 0.99) / percentile(sorted(b), 0.99)
            for a, b in zip(slow.rounds, floor.rounds, strict=True)]


def lookup_section(report: Report) -> list[str]:
    lookups = report.lookups
    table = {key: stats(s.all) for key, s in lookups.samples.items()}
    raw = table["raw"]
    lines = [
        "### 2. Single lookups (µs, one lookup timed at a time)", "",
        f"Each path: {WARMUP_LOOKUPS:,} warm-up lookups, then {table['raw'].count:,} timed ones in rounds of "
        f"{ROUND_SIZE:,}, the paths rotating who goes first; half the numbers are stored, half are not "
        f"({UNKNOWN_DIRECT_DIAL_SHARE:.0%} of those are unstored extensions of a stored switchboard); the "
        "database file is read once before each round so that every path starts with a warm OS page cache. "
        "Paths a–c look up the E.164 key; d gets the number as a PBX sends it "
        "(`030 1234567`, `+49 30 1234567`, `0043 1 …`) and returns the ranked candidates and the number's facts.",
        "",
        "| path | n | mean | p50 | p99 | p99.9 | p50 ÷ a | p99 ÷ a |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in lookups.labels.items():
        s = table[key]
        lines.append(f"| {label} | {s.count:,} | {us(s.mean_us)} | {us(s.p50_us)} | {us(s.p99_us)} | "
                     f"{us(s.p999_us)} | {s.p50_us / raw.p50_us:.1f}× | {s.p99_us / raw.p99_us:.1f}× |")
    lines += ["", "commhub's match (d) by outcome, and the floor (a) for the same numbers:", "",
              "| path | numbers | n | mean | p50 | p99 | p99.9 |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for key in ("commhub", "raw"):
        for name, values in (("stored", lookups.samples[key].known), ("not stored", lookups.samples[key].unknown)):
            s = stats(values)
            lines.append(f"| {lookups.labels[key]} | {name} | {s.count:,} | {us(s.mean_us)} | {us(s.p50_us)} | "
                         f"{us(s.p99_us)} | {us(s.p999_us)} |")
    ratio = table["commhub"].p99_us / raw.p99_us
    per_round = round_ratios(lookups.samples["commhub"], lookups.samples["raw"])
    cpu = lookups.cpu
    lines += ["", f"The same ratio per round of {ROUND_SIZE:,}: median {statistics.median(per_round):.1f}×, "
              f"lowest {min(per_round):.1f}×, highest {max(per_round):.1f}×. "
              f"While the lookups were timed ({cpu.seconds:.0f} s) the machine's CPUs were "
              f"{cpu.machine_busy:.0%} busy, {cpu.own:.0%} of them by this benchmark, so other work used "
              f"≈ {max(0.0, cpu.machine_busy - cpu.own):.0%}; the benchmark was preempted "
              f"{cpu.involuntary_switches:,} times; load average {cpu.load_before:.2f} → {cpu.load_after:.2f}. "
              "Preemption lengthens the slower paths' tails most: they run longer per lookup.",
              "", f"Sanity: commhub matched {lookups.matched_known:,} of {lookups.known_queries:,} stored numbers "
              f"and {lookups.matched_unknown:,} of {lookups.unknown_queries:,} unstored ones (through a switchboard).",
              "", f"**commhub match p99 ÷ raw sqlite3 p99 = {ratio:.1f}×** (target ≤ {TARGET_MATCH_P99_RATIO:.0f}×: "
              f"{met(ratio <= TARGET_MATCH_P99_RATIO)})", ""]
    return lines


def serve_section(report: Report) -> list[str]:
    s = report.serve
    if s is None or s.sequential is None or s.concurrent is None:
        return ["### 3. `commhub serve`", "", "not measured", ""]
    peak = max(s.hwm_mb, s.rss_after_concurrent_mb)
    n = report.scale.http_requests
    return [
        "### 3. `commhub serve` on this database", "",
        f"`GET /api/contacts?phone=…` with a Bearer token, aiohttp client on the same machine; {n // 2:,} "
        f"requests one at a time, then {n - n // 2:,} with {HTTP_CONCURRENCY} in flight "
        "(after 200 warm-up requests); half stored numbers, half not.", "",
        "| what | figure |", "| --- | --- |",
        f"| start until `/healthz` = 200 | {s.startup_seconds:.1f} s |",
        f"| VmRSS after start / after sequential / after concurrent | {s.rss_idle_mb:.0f} / "
        f"{s.rss_after_sequential_mb:.0f} / {s.rss_after_concurrent_mb:.0f} MB |",
        f"| VmHWM (peak) | **{s.hwm_mb:.0f} MB** |",
        f"| latency one at a time: p50 / p99 / p99.9 | {s.sequential.p50_us / 1000:.2f} / "
        f"{s.sequential.p99_us / 1000:.2f} / {s.sequential.p999_us / 1000:.2f} ms |",
        f"| throughput one at a time | {s.sequential_rps:,.0f} req/s |",
        f"| latency with {HTTP_CONCURRENCY} in flight: p50 / p99 | {s.concurrent.p50_us / 1000:.2f} / "
        f"{s.concurrent.p99_us / 1000:.2f} ms |",
        f"| throughput with {HTTP_CONCURRENCY} in flight | **{s.concurrent_rps:,.0f} req/s** |",
        f"| non-200 answers / stored numbers matched | {s.errors} / {s.known_matched:,} of {s.known_sent:,} |", "",
        f"**Peak resident memory {peak:.0f} MB** (target ≤ {TARGET_SERVE_RSS_MB:.0f} MB: "
        f"{met(peak <= TARGET_SERVE_RSS_MB)})", "",
    ]


def import_section(report: Report) -> list[str]:
    imports = report.imports
    lines = ["### 4. `commhub contacts import FILE --quiet`", ""]
    if imports.skipped or not imports.runs:
        return lines + [f"not measured: {imports.skipped}", ""]
    lines += [
        f"{imports.rows:,} rows, {imports.csv_bytes / 1e6:.1f} MB, as a German Outlook/Excel export writes them "
        f"(`{';'.join(IMPORT_HEADER)}`, UTF-8 with BOM, CRLF), {report.scale.import_companies:,} companies; "
        "wall time of the whole command (process start, migrations, import) into a fresh database.", "",
        "| run | wall time | rows/s | CPU time (cores busy) | exit | contacts | organizations | numbers | emails "
        "| commhub's summary |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, run in zip(("first (fresh database)", "second (same file again)"), imports.runs, strict=False):
        c = run.counts
        lines.append(f"| {name} | {run.wall_seconds:.1f} s | **{run.rows_per_second:,.0f}** | "
                     f"{run.cpu_seconds:.1f} s ({run.cpu_seconds / run.wall_seconds:.2f}) | {run.returncode} | "
                     f"{c['contacts']:,} | {c['organizations']:,} | {c['phone_numbers']:,} | "
                     f"{c['email_addresses']:,} | {run.summary} |")
    first = imports.runs[0]
    lines += ["", f"While the first import ran, the machine's CPUs were {first.machine_busy:.0%} busy "
              f"(all processes; {os.cpu_count()} CPUs)."]
    unchanged = len(imports.runs) == 2 and imports.runs[1].counts == first.counts
    lines += ["", f"**Import rate {first.rows_per_second:,.0f} rows/s** (target ≥ {TARGET_IMPORT_ROWS_PER_S:,.0f}: "
              f"{met(first.rows_per_second >= TARGET_IMPORT_ROWS_PER_S)}); re-import "
              f"{'left every count unchanged' if unchanged else 'CHANGED the counts'} "
              f"({'no duplicates' if unchanged else 'duplicates or losses'}).", ""]
    return lines


def summary_section(report: Report) -> list[str]:
    table = {key: stats(s.all) for key, s in report.lookups.samples.items()}
    ratio = table["commhub"].p99_us / table["raw"].p99_us
    per_round = statistics.median(round_ratios(report.lookups.samples["commhub"], report.lookups.samples["raw"]))
    rows = [f"| commhub match p99 ÷ raw sqlite3 p99 | ≤ {TARGET_MATCH_P99_RATIO:.0f}× | {ratio:.1f}× "
            f"(per round of {ROUND_SIZE:,}: median {per_round:.1f}×) | {met(ratio <= TARGET_MATCH_P99_RATIO)} |"]
    if report.imports.runs:
        rate = report.imports.runs[0].rows_per_second
        rows.append(f"| import rate | ≥ {TARGET_IMPORT_ROWS_PER_S:,.0f} rows/s | {rate:,.0f} rows/s | "
                    f"{met(rate >= TARGET_IMPORT_ROWS_PER_S)} |")
    if report.serve is not None:
        peak = max(report.serve.hwm_mb, report.serve.rss_after_concurrent_mb)
        rows.append(f"| `serve` peak resident memory | ≤ {TARGET_SERVE_RSS_MB:.0f} MB | {peak:.0f} MB | "
                    f"{met(peak <= TARGET_SERVE_RSS_MB)} |")
    return ["### Targets", "", "| target | goal | measured | |", "| --- | --- | --- | --- |", *rows, ""]


def render(report: Report) -> str:
    s = report.scale
    head = [f"Measured {report.started:%Y-%m-%d %H:%M} UTC with `{report.command}` "
            f"({s.contacts:,} contacts).", "", *machine_lines(), f"- {report.code.describe()}", ""]
    changed = CodeState.now().changes_since(report.code)
    if changed is not None:
        head.insert(-1, f"- NOTE: commhub changed during this run; at its end: {changed}")
    body = (summary_section(report) + build_section(report) + lookup_section(report) + serve_section(report)
            + import_section(report))
    return "\n".join(head + body)


DOCS_SECTION = "## Caller-ID lookup and import (bench/lookup.py)"


def write_docs(path: Path, markdown: str) -> None:
    """Replace (or add) this benchmark's section; other sections of the file are kept."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{DOCS_SECTION}\n\n{markdown.rstrip()}\n"
    start = text.find(DOCS_SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(DOCS_SECTION))
        text = text[:start] + section + (text[following:] if following >= 0 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# === main =============================================================================================

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=None, help="contacts in the database (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="working directory")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 contacts, fewer lookups")
    parser.add_argument("--reuse-db", action="store_true", help="keep an existing lookup.db of the right size")
    parser.add_argument("--skip-import", action="store_true", help="do not measure the import")
    parser.add_argument("--docs", type=Path, help="also write the report into this file (docs/benchmarks.md)")
    return parser.parse_args(argv)


def progress(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def prepare_database(database: Path, scale: Scale, reuse: bool) -> BuildResult:
    if reuse and database.exists():
        counted = count_database(database, BuildResult())
        if counted.contacts == scale.contacts:
            progress("reusing the existing database (build time not measured in this run)")
            return counted
    return build_database(database, scale)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    contacts = args.contacts or (20_000 if args.quick else 1_000_000)
    scale = Scale.of(contacts, args.quick)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    database = out / "lookup.db"
    started = datetime.now(UTC)
    code = CodeState.now()
    command = " ".join([".venv/bin/python", "bench/lookup.py", *(argv if argv is not None else sys.argv[1:])])

    progress(f"building {contacts:,} contacts / {scale.phones:,} numbers in {database}")
    build = prepare_database(database, scale, args.reuse_db)
    progress(f"built in {build.seconds_total:.1f} s, {build.file_bytes / 1e6:,.0f} MB; preparing queries")
    rng = random.Random(SEED + 2)
    warmup, rounds = query_rounds(database, scale, rng)
    progress(f"timing {len(rounds)} rounds of {ROUND_SIZE:,} lookups per path")
    lookups = asyncio.run(measure_lookups(database, warmup, rounds))
    serve, imports = None, ImportResult(rows=scale.import_rows, skipped="--skip-import")
    if not wait_for_readers():
        imports.skipped = (f"commhub.contacts.readers was still not importable after "
                           f"{READERS_MAX_WAIT_S / 60:.0f} min, so the `commhub` command could not start")
    else:
        progress(f"starting commhub serve for {scale.http_requests:,} HTTP lookups")
        http_queries = [query for batch in rounds for query in batch][:scale.http_requests]
        serve = measure_serve(database, out, http_queries)
        if not args.skip_import:
            progress(f"importing {scale.import_rows:,} CSV rows twice")
            imports = measure_import(out, scale)
    report = Report(command, scale, build, lookups, serve, imports, started, code)
    markdown = render(report)
    print(markdown)
    (out / "lookup.md").write_text(markdown + "\n", encoding="utf-8")
    if args.docs:
        write_docs(args.docs, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
