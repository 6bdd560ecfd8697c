"""vCard reader (2.1, 3.0, 4.0) and the dispatcher that picks CSV or vCard."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.import_checks import check_rows

from commhub.contacts.csv_reader import NO_IDENTITY
from commhub.contacts.readers import looks_like_vcard, read_import_file
from commhub.contacts.records import ContactRecord, ImportRow, PhoneRecord
from commhub.contacts.vcard_reader import read_vcard

FIXTURES = Path(__file__).parent / "fixtures"


def read_fixture(name: str) -> list[ImportRow]:
    return list(read_vcard((FIXTURES / name).read_bytes()))


def card(*lines: str, version: str = "4.0") -> bytes:
    return "\r\n".join(["BEGIN:VCARD", f"VERSION:{version}", *lines, "END:VCARD", ""]).encode("utf-8")


def only_record(data: bytes) -> ContactRecord:
    rows = list(read_vcard(data))
    assert len(rows) == 1 and rows[0].record is not None, rows
    return rows[0].record


def phones(record: ContactRecord) -> list[tuple[str, str]]:
    return [(phone.raw, phone.kind) for phone in record.phones]


# --- fixtures --------------------------------------------------------------------------------


def test_vcard_3_file_with_several_cards_and_a_broken_one() -> None:
    rows = read_fixture("contacts_v3.vcf")

    assert [row.line for row in rows] == [1, 23, 34, 39, 47]
    mueller, schaefer, broken, bakery, note_only = rows
    assert broken.record is None
    assert broken.error == "broken vCard: line 37: expected NAME:value, got 'Diese Zeile hat keinen Doppelpunkt'"
    assert note_only.error == NO_IDENTITY

    record = mueller.record
    assert record is not None
    assert (record.title, record.first_name, record.last_name) == ("Dr.", "Jürgen", "Müller")
    assert (record.company, record.position) == ("Müller & Söhne GmbH", "Geschäftsführer")
    assert phones(record) == [("+49 221 123456", "work"), ("+49 171 2345678", "mobile"), ("+49 221 123459", "fax")]
    assert record.emails == ["j.mueller@mueller-soehne.de"]
    assert (record.street, record.postal_code, record.city, record.country) == (
        "Hauptstraße 5", "50667", "Köln", "Deutschland")
    assert record.company_domain == "https://www.mueller-soehne.de"
    assert record.customer_class == "A"
    assert record.attributes == {  # PHOTO, PRODID and Apple's X-ABADR are no customer data
        "Department": "Geschäftsleitung",
        "NOTE": "Rückruf erbeten, gern vormittags.\nBevorzugt per E-Mail.",
        "CATEGORIES": "Kunden, VIP",
        "X-KUNDENNUMMER": "K-1001",
    }

    assert schaefer.record is not None
    assert phones(schaefer.record) == [("0211 987654", "home"), ("0152 11122233", "mobile")]
    assert schaefer.record.city == "Düsseldorf"
    assert schaefer.record.attributes["NOTE"] == (
        "Dieser Text ist sehr lang und wurde deshalb vom Programm auf mehrere Zeilen umgebrochen, "
        "wie RFC 6350 es verlangt.")

    assert bakery.record == ContactRecord(company="Bäckerei Groß KG", phones=[PhoneRecord("0221 555000", "work")])


def test_vcard_4_file() -> None:
    rows = read_fixture("contacts_v4.vcf")

    assert [row.line for row in rows] == [1, 19, 26, 30]
    mueller, utility, unfinished, schaefer = rows
    assert unfinished.error == "broken vCard: no END:VCARD before the next card or the end of the file"

    record = mueller.record
    assert record is not None
    assert (record.title, record.first_name, record.last_name) == ("Dr.", "Jürgen Karl Heinz", "Müller")
    assert phones(record) == [
        ("+49-221-123456;ext=102", "work"), ("+49-171-2345678", "mobile"), ("+49-221-123459", "fax")]
    assert (record.street, record.city) == ("Hauptstraße 5", "Köln")  # the work address, not the home one
    assert record.attributes["ADR home"] == "Am Rhein 3, 50668 Köln, Deutschland"
    assert record.attributes["Department"] == "Einkauf"
    assert record.attributes["NOTE"] == "Zweite Zeile folgt\nHier ist sie."
    assert record.attributes["X-KUNDENNUMMER"] == "K-1001"

    assert utility.record == ContactRecord(  # KIND:org: the formatted name is the company's
        company="Stadtwerke Köln", phones=[PhoneRecord("+49-221-178-0", "work")],
        emails=["info@stadtwerke-koeln.example"])
    assert schaefer.record is not None
    assert (schaefer.record.first_name, schaefer.record.last_name) == ("Björn", "Schäfer")
    assert schaefer.record.attributes == {"GENDER": "M", "BDAY": "--0415"}


# --- properties and parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tel_line", "kind"),
    [
        ("TEL;TYPE=cell:0171 1", "mobile"), ("TEL;TYPE=CELL:0171 1", "mobile"),
        ("TEL;TYPE=fax:0171 1", "fax"), ("TEL;TYPE=home,fax:0171 1", "fax"), ("TEL;TYPE=HOME:0171 1", "home"),
        ("TEL;TYPE=work:0171 1", "work"), ("TEL;TYPE=voice:0171 1", "work"), ("TEL;TYPE=other:0171 1", "work"),
        ("TEL:0171 1", "work"), ('TEL;TYPE="voice,cell":0171 1', "mobile"), ("TEL;type=WORK;type=FAX:0171 1", "fax"),
        ("TEL;CELL;VOICE:0171 1", "mobile"), ("item1.TEL;type=pref;type=iPhone:0171 1", "mobile"),
    ],
)
def test_phone_types(tel_line: str, kind: str) -> None:
    assert phones(only_record(card("FN:X", tel_line))) == [("0171 1", kind)]


def test_tel_uri_keeps_its_number_text() -> None:
    record = only_record(card("FN:X", 'TEL;VALUE=uri;TYPE="voice,work":tel:+1-555-555-5555;ext=102'))

    assert phones(record) == [("+1-555-555-5555;ext=102", "work")]


def test_backslash_escapes_and_structured_values() -> None:
    record = only_record(card(
        "N:M\\;ller;J\\,rgen;;;", "FN:x", "ORG:ACME\\; Co\\, KG;Vertrieb;Innendienst",
        "NOTE:eins\\ntwo\\Nthree \\\\ vier", "CATEGORIES:a\\,b,c",
    ))

    assert (record.last_name, record.first_name, record.company) == ("M;ller", "J,rgen", "ACME; Co, KG")
    assert record.attributes == {
        "Department": "Vertrieb, Innendienst", "NOTE": "eins\ntwo\nthree \\ vier", "CATEGORIES": "a,b, c"}


def test_quoted_parameters_may_hold_colons_semicolons_and_rfc6868_escapes() -> None:
    line = 'ADR;LABEL="Hauptstraße 5;^nKöln: Zentrum ^\'A^\'";TYPE=work:;;Hauptstraße 5;Köln;;50667;DE'

    record = only_record(card("FN:Jürgen Müller", line))

    assert (record.street, record.city, record.postal_code, record.country) == ("Hauptstraße 5", "Köln", "50667", "DE")
    assert (record.first_name, record.last_name) == ("Jürgen", "Müller")


@pytest.mark.parametrize("line_end", ["\r\n", "\n", "\r"])
def test_line_ends_and_folding(line_end: str) -> None:
    # Unfolding removes the line break and exactly one space or tab (RFC 6350 §3.2).
    text = line_end.join(["BEGIN:VCARD", "VERSION:3.0", "FN:Björn", "  Schäfer", "EMAIL:b@", "\tx.de", "END:VCARD"])

    record = only_record(text.encode("utf-8"))

    assert (record.first_name, record.last_name, record.emails) == ("Björn", "Schäfer", ["b@x.de"])


def test_quoted_printable_cards_of_vcard_2_1() -> None:
    data = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\n"
        "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;\r\n"
        "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:K=F6ln, Stra=DFe 1, sehr lange Notiz die um=\r\n"
        "gebrochen wurde\r\n"
        "TEL;WORK;VOICE:0221 1\r\nTEL;CELL:0171 1\r\nEND:VCARD\r\n"
    ).encode("ascii")

    record = only_record(data)

    assert (record.first_name, record.last_name) == ("Jürgen", "Müller")
    assert record.attributes == {"NOTE": "Köln, Straße 1, sehr lange Notiz die umgebrochen wurde"}
    assert phones(record) == [("0221 1", "work"), ("0171 1", "mobile")]


def test_windows_1252_vcards_are_decoded() -> None:
    record = only_record(card("FN:Jürgen Müller", "ADR;TYPE=work:;;Straße 1;Köln;;50667;").replace(
        "ü".encode(), b"\xfc").replace("ö".encode(), b"\xf6").replace("ß".encode(), b"\xdf"))

    assert (record.last_name, record.street, record.city) == ("Müller", "Straße 1", "Köln")


def test_company_cards_written_as_person_cards() -> None:
    record = only_record(card("N:;;;;", "FN:Bäckerei Groß KG", "ORG:Bäckerei Groß KG", "TEL:0221 1", version="3.0"))

    assert record.is_company_only() and record.company == "Bäckerei Groß KG"


def test_formatted_name_is_split_when_n_is_missing() -> None:
    record = only_record(card("FN:Herr Dr. Jürgen Müller", version="3.0"))

    assert (record.salutation, record.title, record.first_name, record.last_name) == ("Herr", "Dr.", "Jürgen", "Müller")


def test_customer_class_from_x_properties() -> None:
    assert only_record(card("FN:A B", "X-KUNDENKLASSE:b-Kunde")).customer_class == "B"
    unknown = only_record(card("FN:A B", "X-KUNDENKLASSE:Premium"))
    assert unknown.customer_class == "" and unknown.attributes == {"X-KUNDENKLASSE": "Premium"}


def test_binary_properties_are_not_kept() -> None:
    record = only_record(card("FN:A B", "PHOTO:data:image/png;base64,iVBORw0KGgo=", "X-LOGO;ENCODING=b:AAAA"))

    assert record.attributes == {}


def test_text_around_cards_is_ignored_and_a_file_without_cards_is_an_error() -> None:
    rows = list(read_vcard(b"garbage\r\n" + card("FN:A B") + b"more garbage\r\n"))
    assert [row.line for row in rows] == [2] and rows[0].record is not None

    assert list(read_vcard(b"Firma;Telefon\r\n")) == [
        ImportRow(1, error="no vCard found: the file has no BEGIN:VCARD line")]
    assert list(read_vcard(b"")) == []


def test_malicious_parameter_lists_and_long_folded_photos_stay_fast() -> None:
    # vobject 0.9.9 needs minutes for the first card: its content-line regex backtracks.
    nasty = card("FN:A B", "TEL;TYPE=" + "a," * 5000 + '"')
    photo = card("FN:A B", "PHOTO;ENCODING=b;TYPE=JPEG:" + "\r\n ".join(["QUFB" * 18] * 20000))

    started = time.process_time()
    broken = list(read_vcard(nasty))
    with_photo = list(read_vcard(photo))

    assert time.process_time() - started < 2.0
    assert broken[0].error is not None and "expected NAME:value" in broken[0].error
    assert with_photo[0].record is not None and with_photo[0].record.attributes == {}


# --- dispatcher ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "is_vcard"),
    [
        ("kontakte.vcf", b"", True), ("Kontakte.VCARD", b"Firma\n", True),
        ("upload.txt", b"\xef\xbb\xbf\r\n  begin:vcard\r\nFN:x\r\nEND:VCARD", True),
        ("upload", "BEGIN:VCARD\r\n".encode("utf-16"), True),
        ("kunden.csv", b"Firma;Telefon\r\n", False), ("", b"", False),
    ],
)
def test_dispatcher_picks_the_reader(name: str, data: bytes, is_vcard: bool) -> None:
    assert looks_like_vcard(name, data) is is_vcard


def test_dispatcher_reads_both_formats() -> None:
    vcard_rows = list(read_import_file("export.txt", card("FN:Jürgen Müller", "TEL;TYPE=cell:0171 1")))
    csv_rows = list(read_import_file("kunden.csv", "Vorname;Nachname;Handy\r\nJürgen;Müller;0171 1\r\n".encode()))

    assert [row.record for row in vcard_rows] == [row.record for row in csv_rows]
    assert vcard_rows[0].record == ContactRecord(
        first_name="Jürgen", last_name="Müller", phones=[PhoneRecord("0171 1", "mobile")])


# --- properties ------------------------------------------------------------------------------



@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_read_without_raising(data: bytes) -> None:
    check_rows(list(read_vcard(data)))
    check_rows(list(read_import_file("x.vcf", data)))


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=600), encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_any_text_inside_a_card_reads_without_raising(body: str, encoding: str) -> None:
    data = ("BEGIN:VCARD\r\nVERSION:3.0\r\n" + body + "\r\nEND:VCARD\r\n").encode(encoding, errors="replace")

    rows = list(read_vcard(data))

    check_rows(rows)
    assert rows and rows[0].line == 1


PROPERTY_NAMES = st.sampled_from(["N", "FN", "ORG", "TEL", "EMAIL", "ADR", "URL", "NOTE", "CATEGORIES", "TITLE",
                                  "KIND", "X-KUNDENKLASSE", "X-FOO", "PHOTO", "item1.TEL", "BDAY"])
PARAMS = st.lists(st.sampled_from([
    ";TYPE=cell", ";TYPE=WORK", ';TYPE="voice,work"', ";VALUE=uri", ";ENCODING=QUOTED-PRINTABLE",
    ";CHARSET=ISO-8859-1", ";ENCODING=b", ";CHARSET=no-such-charset", ";PREF=1", ";CELL", ';LABEL="a:b;c"',
    ";CHARSET=idna", ";CHARSET=utf-16",
]), max_size=3).map("".join)
VALUES = st.text(alphabet=st.sampled_from("abcÄöü@.:;,\\=\"^ nN0123456789+-AF"), max_size=30)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(PROPERTY_NAMES, PARAMS, VALUES), max_size=8))
def test_cards_of_random_properties_read_without_raising(properties: list[tuple[str, str, str]]) -> None:
    lines = [f"{name}{params}:{value}" for name, params, value in properties]

    rows = list(read_vcard(card(*lines)))

    check_rows(rows)
    assert [row.line for row in rows] == [1]
