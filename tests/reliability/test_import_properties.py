"""Property: whatever file is imported (any bytes, any encoding, broken CSV and vCard), the readers never
raise and give rows carrying line numbers, and the import into a real SQLite database either succeeds
with every row accounted for (created + updated + duplicates + rejected == rows, each rejection with the
line it came from) or fails with commhub's own error and nothing written; the database stays consistent.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import operator
import re
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.import_checks import check_rows

from commhub.commands.common import Database, open_database
from commhub.contacts.csv_reader import decode_import_bytes
from commhub.contacts.importer import Importer, ImportReport
from commhub.contacts.readers import read_import_file
from commhub.contacts.records import ContactRecord, ImportRow
from commhub.errors import CommhubError
from commhub.settings import DatabaseSettings, Settings

FIXTURES = Path(__file__).resolve().parents[1] / "contacts" / "fixtures"
READERS = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.large_base_example])
IMPORTS = settings(READERS, max_examples=120)


# --- what a file may hold ------------------------------------------------------------------------------

def _fixture_headers() -> list[str]:
    found: set[str] = set()
    for path in sorted(FIXTURES.glob("*.csv")):
        text = decode_import_bytes(path.read_bytes())
        first = next(io.StringIO(text.replace("\r\n", "\n")), "")
        delimiter = max(";,\t", key=first.count)
        found.update(cell for cell in next(csv.reader([first.strip("\n")], delimiter=delimiter)) if cell)
    return sorted(found)


HEADERS = _fixture_headers() + ["Vorname", "Nachname", "Firma", "E-Mail", "Telefon", "Handy", "Zentrale", "PLZ/Ort",
                                "Hausnummer", "Name", "Ansprechpartner", "Klasse", "Kundennummer", "", " ", "sep=;",
                                "E-Mail;Telefon", "\ufeffVorname", "Vorname\x00"]
ODD_CELLS = [
    "", " ", '"', '""', '"a"b', "a;b", "a,b", "a\tb", "a\nb", "a\rb", "a\r\nb", "\x00", "a\x00b", "\ufeff", "\ufffd",
    "Jürgen", "Müller & Söhne GmbH", "Straße", "ß" * 120, "ﷺ" * 30, "🦜", "\u202eevil", "=cmd|'/c calc'!A1",
    "+49 (221) 123456", "0221 123456-10", "0171 2345678 ::: 0160 9876543", "anonymous", "+", "00", "0" * 40,
    "j.mueller@mueller-soehne.de", "a@b.de; c@d.de", "mailto:x@y.de", "@", "a@", "x" * 400 + "@example.com",
    "A", "b-Kunde", "Klasse C", "D-10115 Berlin", "10115", "Herr Dr.", "Müller, Jürgen", "Dr. Prof.", "Frau",
    "https://www.example.com/", "www.", "0/0/00", "::::::", " ::: ",
]
# A small pool of real-looking values, so that rows of one file (and of files imported earlier into the
# same database) meet again: matches, updates and duplicates, not only new files.
PLAIN_CELLS = ["Jürgen", "Sabine", "Thomas", "Anna", "Müller", "Weiß", "Maier", "Meier", "Müller Haustechnik GmbH",
               "Bäckerei Schön OHG", "030 1234567", "+49 30 1234567-10", "0171 2345678", "089 2345678",
               "info@mh.example", "j.mueller@mh.example", "A", "Köln", "50667", "Hauptstraße 5", "Herr"]
CELLS = st.one_of(st.sampled_from(PLAIN_CELLS), st.sampled_from(PLAIN_CELLS), st.sampled_from(ODD_CELLS),
                  st.text(max_size=30),
                  st.builds(operator.mul, st.sampled_from(["x", "ü", "9", '"', ";", "\n", "\x00"]),
                            st.integers(min_value=100, max_value=140_000)))
LAYOUTS = [["Vorname", "Nachname", "Firma", "Telefon", "E-Mail"], ["First Name", "Last Name", "Company", "Mobile Phone"],
           ["Firma", "Zentrale", "PLZ/Ort", "Klasse"], ["Name", "Telefon"], ["Ansprechpartner", "E-Mail", "Handy"]]
LINE_ENDS = st.sampled_from(["\r\n", "\n", "\r"])
ENCODINGS = st.one_of(st.just("utf-8"), st.sampled_from(["utf-8-sig", "utf-16", "cp1252", "latin-1"]),
                      st.sampled_from(["utf-16-le", "utf-16-be", "mac-roman", "utf-32"]))


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, "replace")


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    delimiter = draw(st.sampled_from([";", ",", "\t", "|"]))
    header = draw(st.one_of(st.sampled_from(LAYOUTS), st.lists(st.sampled_from(HEADERS), min_size=1, max_size=10)))
    width = len(header)
    row = st.one_of(st.lists(CELLS, min_size=width, max_size=width), st.lists(CELLS, min_size=width, max_size=width),
                    st.lists(CELLS, max_size=width + 2))
    rows = draw(st.lists(row, max_size=8))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, escapechar="\\", lineterminator="\n")
    for line in [header, *rows]:
        try:
            writer.writerow(line)
        except csv.Error:
            out.write(delimiter.join(line) + "\n")  # what a careless exporter writes
    text = out.getvalue()
    if draw(st.booleans()):
        text = f"sep={delimiter}\n" + text
    # mixed line ends, as files edited on several systems have
    text = "".join(part + draw(LINE_ENDS) if part else "" for part in text.split("\n"))
    data = encode(text, draw(ENCODINGS))
    return draw(damaged(data))


VCARD_LINES = [
    "VERSION:2.1", "VERSION:3.0", "VERSION:4.0", "N:Müller;Jürgen;;Dr.;", "N:;;;;", "N:" + ";" * 30, "FN:Jürgen Müller",
    "FN:", "ORG:Müller & Söhne GmbH;Geschäftsleitung", "ORG:;", "TITLE:Chef", "TEL;TYPE=WORK:+49 221 123456",
    "TEL;type=CELL;type=VOICE:0171 2345678", "TEL;VALUE=uri:tel:+1-555-555-5555;ext=102", "TEL:", "TEL;WORK;VOICE:0",
    "EMAIL;TYPE=INTERNET:j.mueller@example.de", "EMAIL:not-an-address", "EMAIL:mailto:a@b.de",
    "ADR;TYPE=WORK:;;Hauptstraße 5;Köln;;50667;Deutschland", "ADR:;;;;;;", "ADR;TYPE=HOME:" + ";" * 20,
    "N;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:M=FCller;J=FCrgen", "N;ENCODING=QUOTED-PRINTABLE:=ZZ=",
    "FN;CHARSET=bogus-charset;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen=", "NOTE;ENCODING=b:////", "NOTE;ENCODING=b:%%%%",
    "NOTE;ENCODING=BASE64;CHARSET=utf-16:AAAA", "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ", " CQoKCggLDAsK", "\tfolded",
    "X-KUNDENKLASSE:A-Kunde", "X-ABShowAs:COMPANY", "KIND:org", "CATEGORIES:Kunden,VIP,\\,", "URL:https://x.example",
    'TEL;TYPE="voice,work":0221 1', "TEL;TYPE=" + ",".join(["x"] * 40) + ":1", 'N;X="unclosed:quote";A=^n^^:x;y',
    "item1.EMAIL;type=pref:a@b.de", "no colon at all", ":", ";;;:", "BEGIN:VCARD", "END:VCARD", "\x00", "NOTE:a\\nb\\,c\\",
]


@st.composite
def vcard_files(draw: st.DrawFn) -> bytes:
    lines: list[str] = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        lines.append("BEGIN:VCARD")
        plain = st.builds(lambda name, value: f"{name}:{value}",
                          st.sampled_from(["FN", "N", "ORG", "TEL", "EMAIL", "X-A", "TEL;TYPE=CELL"]), CELLS)
        odd = st.one_of(st.sampled_from(VCARD_LINES), st.text(max_size=40))
        lines += draw(st.lists(st.one_of(plain, plain, st.sampled_from(VCARD_LINES[:20]), odd), max_size=10))
        if draw(st.integers(min_value=0, max_value=5)):
            lines.append(draw(st.sampled_from(["END:VCARD", "end:vcard", " END:VCARD "])))
    text = "".join(line + draw(LINE_ENDS) for line in lines)
    return draw(damaged(encode(text, draw(ENCODINGS))))


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """Most files arrive whole; some cut off, with stray bytes, or with a BOM that lies."""
    how = draw(st.sampled_from(["whole"] * 6 + ["cut", "bytes", "bom"]))
    if how == "cut" and data:
        return data[:draw(st.integers(min_value=0, max_value=len(data)))]
    if how == "bytes":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if how == "bom":
        return draw(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])) + data
    return data


NAMES = st.sampled_from(["kunden.csv", "kontakte.vcf", "export.VCARD", "liste.txt", "", "weird name.csv "])
FILES = st.one_of(
    st.tuples(NAMES, csv_files()), st.tuples(NAMES, csv_files()), st.tuples(NAMES, vcard_files()),
    st.tuples(NAMES, vcard_files()),
    st.tuples(NAMES, st.binary(max_size=400)),
    st.tuples(NAMES, st.sampled_from([b"", b"\x00" * 64, codecs.BOM_UTF8, codecs.BOM_UTF16_LE + b"\x00",
                                      b"\xff\xfe\x00\xd8", b"BEGIN:VCARD", b"sep=;", b'"' * 1000, b"\r" * 50])),
)


# --- what the readers must hold to ----------------------------------------------------------------------

def physical_lines(data: bytes) -> int:
    return len(re.split(r"\r\n|\r|\n", decode_import_bytes(data)))


def read_rows(name: str, data: bytes, *, note: bool = False) -> list[ImportRow]:
    rows = list(read_import_file(name, data))
    check_rows(rows)
    last = physical_lines(data)
    lines = [row.line for row in rows]
    assert lines == sorted(lines), lines  # in file order
    assert all(1 <= line <= last for line in lines), (lines, last)
    for row in rows:
        if row.error is not None:
            assert row.error.strip(), row
    if note:
        event(f"rows: {min(len(rows), 5)}{'+' if len(rows) >= 5 else ''}, "
              f"rejected: {'some' if any(r.error for r in rows) else 'none'}")
    return rows


@READERS
@given(file=FILES)
def test_the_readers_take_any_file(file: tuple[str, bytes]) -> None:
    read_rows(*file, note=True)


def test_the_recorded_files_survive_any_cut() -> None:
    """Every real export in tests/contacts/fixtures, cut off at every 97th byte."""
    for path in sorted(FIXTURES.iterdir()):
        data = path.read_bytes()
        for end in range(0, len(data), 97):
            read_rows(path.name, data[:end])


# --- the import into a real database ----------------------------------------------------------------------

NUL = chr(0)
COUNTED = ("contacts", "organizations", "phone_numbers", "email_addresses")


class Store:
    """One database for every example (SQLite, and the test suite's private PostgreSQL, whose columns
    refuse what SQLite keeps): imports pile up, as in a real office."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.settings = Settings(database=DatabaseSettings(url=url))
        self._context = open_database(self.settings)
        self.database: Database = self.runner.run(self._context.__aenter__())
        self.sqlite = url.startswith("sqlite")

    def close(self) -> None:
        self.runner.run(self._context.__aexit__(None, None, None))
        self.runner.close()

    def run_file(self, name: str, data: bytes, **options: int) -> ImportReport:
        return self.runner.run(Importer(self.database.sessions, **options).run_file(name, data))

    def _rows(self, query: str) -> list[tuple[object, ...]]:
        async def fetch() -> list[tuple[object, ...]]:
            async with self.database.engine.connect() as connection:
                return [tuple(row) for row in await connection.exec_driver_sql(query)]
        return self.runner.run(fetch())

    def counts(self) -> dict[str, int]:
        return {table: int(self._rows(f"SELECT count(*) FROM {table}")[0][0]) for table in COUNTED}

    def inconsistencies(self) -> list[object]:
        """What a half-written import would leave: broken references, numbers without an owner."""
        queries = [
            "SELECT 'no single owner', id FROM phone_numbers WHERE (contact_id IS NULL) = (organization_id IS NULL)",
            "SELECT 'no single owner', id FROM email_addresses WHERE (contact_id IS NULL) = (organization_id IS NULL)",
            # (NULL NOT IN an empty list is true in SQL: every reference is tested only where it is set)
            "SELECT 'orphan number', id FROM phone_numbers WHERE contact_id IS NOT NULL AND contact_id NOT IN "
            "(SELECT id FROM contacts) OR organization_id IS NOT NULL AND organization_id NOT IN "
            "(SELECT id FROM organizations)",
            "SELECT 'orphan address', id FROM email_addresses WHERE contact_id IS NOT NULL AND contact_id NOT IN "
            "(SELECT id FROM contacts) OR organization_id IS NOT NULL AND organization_id NOT IN "
            "(SELECT id FROM organizations)",
            "SELECT 'lost company', id FROM contacts WHERE organization_id IS NOT NULL AND organization_id NOT IN "
            "(SELECT id FROM organizations)",
            "SELECT 'nameless', id FROM organizations WHERE trim(name) = ''",
        ]
        if self.sqlite:
            queries += ["PRAGMA integrity_check", "PRAGMA foreign_key_check"]
        found = [row for query in queries for row in self._rows(query)]
        return [row for row in found if row != ("ok",)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if request.param == "sqlite":
        url, drop = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('import') / 'commhub.db'}", None
    else:
        cluster = request.getfixturevalue("pg_cluster")  # tests/conftest.py: skipped where PostgreSQL is missing
        url, drop = cluster.create_database("reliability_import"), cluster
    opened = Store(url)
    yield opened
    opened.close()
    if drop is not None:
        drop.drop_database("reliability_import")


def holds_nul(record: ContactRecord) -> bool:
    texts = [value for value in (getattr(record, f.name) for f in fields(record)) if isinstance(value, str)]
    texts += [phone.raw for phone in record.phones] + record.emails + [t for kv in record.attributes.items() for t in kv]
    return any(NUL in text for text in texts)


def check_import(store: Store, name: str, data: bytes, *, note: bool = False) -> None:
    rows = read_rows(name, data)
    before = store.counts()
    try:
        report = store.run_file(name, data)
    except CommhubError as refused:  # the project's own, clear error: then nothing was written
        assert refused.message
        assert store.counts() == before
        if note:
            event("import refused")
        return
    after = store.counts()
    assert report.rows == len(rows)
    assert report.created + report.updated + report.duplicates + len(report.rejected) == report.rows, report.summary()
    # rejected: the rows the reader could not read (with its reason), and rows holding a NUL character
    unreadable = {row.line: row.error for row in rows if row.error}
    with_nul = {row.line for row in rows if row.record is not None and holds_nul(row.record)}
    assert {line for line, _ in report.rejected} == unreadable.keys() | with_nul, report.rejected
    assert all(unreadable.get(line, reason) == reason and reason for line, reason in report.rejected)
    assert all(1 <= line <= physical_lines(data) for line, _ in report.warnings)
    people = after["contacts"] - before["contacts"]
    assert 0 <= people <= report.created, (people, report.summary())
    assert people + after["organizations"] - before["organizations"] >= report.created, report.summary()
    assert store.inconsistencies() == []
    if note:
        event(f"import: {bool(report.created)=} {bool(report.updated)=} {bool(report.duplicates)=} "
              f"{bool(report.rejected)=}")


@IMPORTS
@given(file=FILES)
def test_an_import_of_any_file_accounts_for_every_row(store: Store, file: tuple[str, bytes]) -> None:
    check_import(store, *file, note=True)


def test_an_import_of_the_recorded_files_with_damage(store: Store) -> None:
    """The real exports, whole and with a byte flipped in each kilobyte."""
    for path in sorted(FIXTURES.iterdir()):
        data = path.read_bytes()
        check_import(store, path.name, data)
        broken = bytearray(data)
        for at in range(0, len(broken), 1024):
            broken[at] ^= 0xFF
        check_import(store, path.name, bytes(broken))


def test_a_large_garbage_file_read_in_a_second_process_is_accounted_for(store: Store) -> None:
    """Files above `parallel_from_bytes` are read by a worker process; garbage must not break that path."""
    data = b"Vorname;Nachname;Telefon\n" + b"".join(
        b"J\xfcrgen%d;M\xfcller;0221 %06d\r\n\x00;;\n\"open;quote\n" % (i, i) for i in range(2000))
    rows = read_rows("kunden.csv", data)
    report = store.run_file("kunden.csv", data, parallel_from_bytes=1)
    assert report.rows == len(rows)
    assert report.created + report.updated + report.duplicates + len(report.rejected) == report.rows
    assert store.inconsistencies() == []
