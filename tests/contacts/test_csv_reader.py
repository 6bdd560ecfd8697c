"""CSV reader: real exports from Outlook (German and English), Google Contacts and Excel."""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.import_checks import check_rows

from commhub.contacts.csv_columns import header_key, phone_kind_from_label, plan_columns
from commhub.contacts.csv_reader import (
    NO_IDENTITY,
    decode_import_bytes,
    parse_customer_class,
    read_csv,
    sniff_delimiter,
    split_full_name,
    split_honorific,
)
from commhub.contacts.records import ContactRecord, ImportRow, PhoneRecord

FIXTURES = Path(__file__).parent / "fixtures"


def read_fixture(name: str) -> list[ImportRow]:
    return list(read_csv((FIXTURES / name).read_bytes()))


def records_by_line(rows: list[ImportRow]) -> dict[int, ContactRecord]:
    assert all(row.error is None for row in rows), [row.error for row in rows if row.error]
    return {row.line: row.record for row in rows if row.record is not None}


def read_text(text: str, encoding: str = "utf-8") -> list[ImportRow]:
    return list(read_csv(text.encode(encoding)))


def only_record(text: str, encoding: str = "utf-8") -> ContactRecord:
    rows = read_text(text, encoding)
    assert len(rows) == 1 and rows[0].record is not None, rows
    return rows[0].record


def phones(record: ContactRecord) -> list[tuple[str, str]]:
    return [(phone.raw, phone.kind) for phone in record.phones]


# --- real exports ----------------------------------------------------------------------------


def test_outlook_german_export_in_windows_1252() -> None:
    data = (FIXTURES / "outlook_de_cp1252.csv").read_bytes()
    assert b"M\xfcller" in data and b";" in data  # really cp1252 with semicolons, as Excel saves it
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    records = records_by_line(list(read_csv(data)))

    assert sorted(records) == [2, 4, 5, 6]  # the note of line 2 spans two lines
    mueller = records[2]
    assert (mueller.salutation, mueller.title, mueller.first_name, mueller.last_name) == (
        "Herr", "Dr.", "Jürgen", "Müller")
    assert (mueller.company, mueller.position) == ("Müller & Söhne GmbH", "Geschäftsführer")
    assert (mueller.street, mueller.postal_code, mueller.city, mueller.country) == (
        "Hauptstraße 5", "50667", "Köln", "Deutschland")
    assert phones(mueller) == [  # "Haupttelefon" repeats the business number: kept once
        ("+49 (221) 123459", "fax"),
        ("+49 (221) 123456", "work"),
        ("+49 (221) 12340", "switchboard"),
        ("+49 (171) 2345678", "mobile"),
    ]
    assert mueller.emails == ["j.mueller@mueller-soehne.de"]
    assert mueller.company_domain == "www.mueller-soehne.de"
    # Outlook's placeholders (Privat=Aus, Priorität=Normal, 0.0.00, ...) and derived columns are no data.
    assert mueller.attributes == {
        "Abteilung": "Geschäftsleitung",
        "Kategorien": "A-Kunde",
        "Notizen": "Rückruf erbeten.\nBevorzugt vormittags.",
    }


def test_outlook_german_home_address_and_company_only_rows() -> None:
    records = records_by_line(read_fixture("outlook_de_cp1252.csv"))

    schaefer = records[4]
    assert (schaefer.first_name, schaefer.last_name) == ("Björn", "Schäfer")
    assert (schaefer.street, schaefer.postal_code, schaefer.city) == ("Kölner Straße 12a", "40211", "Düsseldorf")
    assert phones(schaefer) == [("0211 987654", "home"), ("0152 11122233", "mobile")]
    assert schaefer.emails == ["bjoern.schaefer@example.de"]  # the upper-case second address is the same
    assert schaefer.attributes == {"Geschlecht": "Männlich"}

    bakery = records[5]
    assert bakery.is_company_only()
    assert bakery.company == "Bäckerei Groß KG"
    assert phones(bakery) == [("0221 555001", "fax"), ("0221 555000", "switchboard")]

    weiss = records[6]
    assert (weiss.salutation, weiss.first_name, weiss.last_name) == ("Frau", "Anna Maria", "Weiß-Jürgens")
    assert weiss.attributes == {"Stichwörter": "Messe 2024"}


def test_outlook_english_export_utf8_with_bom() -> None:
    data = (FIXTURES / "outlook_en_utf8_bom.csv").read_bytes()
    assert data.startswith(codecs.BOM_UTF8)

    records = records_by_line(list(read_csv(data)))

    smith = records[2]
    assert (smith.salutation, smith.first_name, smith.last_name) == ("Mr.", "John F.", "Smith")
    assert (smith.company, smith.position) == ("Acme Ltd", "Head of Sales")
    assert (smith.street, smith.postal_code, smith.city, smith.country) == (
        "1 High Street, Suite 4", "EC1A 1BB", "London", "United Kingdom")
    assert phones(smith) == [
        ("+44 20 7946 0018", "work"), ("+44 20 7946 0000", "switchboard"), ("+44 7700 900123", "mobile")]
    assert smith.emails == ["john.smith@acme.example"]
    assert smith.company_domain == "acme.example"
    assert smith.attributes == {"Categories": "B-Kunde"}

    gross = records[3]
    assert (gross.first_name, gross.last_name, gross.company) == ("Jürgen", "Groß", "Straßenbau Köln GmbH")
    assert (gross.street, gross.city) == ("Am Rhein 3", "Köln")  # only a home address: it is the address
    assert phones(gross) == [("0221 4455668", "fax"), ("0221 4455667", "home")]
    assert gross.attributes == {"Notes": 'Met at trade fair, "Bau 2024"'}


def test_google_contacts_export_with_multi_value_cells() -> None:
    records = records_by_line(read_fixture("google_contacts.csv"))

    assert sorted(records) == [2, 5, 6]  # the formatted address of line 2 spans three lines
    mueller = records[2]
    assert (mueller.title, mueller.first_name, mueller.last_name) == ("Dr.", "Jürgen", "Müller")
    assert (mueller.company, mueller.position) == ("Müller & Söhne GmbH", "Geschäftsführer")
    assert phones(mueller) == [
        ("+49 171 2345678", "mobile"), ("+49 160 9876543", "mobile"),
        ("+49 221 123456", "work"), ("+49 221 123459", "fax"),
    ]
    assert mueller.emails == ["j.mueller@mueller-soehne.de", "juergen@mueller.example"]
    assert (mueller.street, mueller.postal_code, mueller.city) == ("Hauptstraße 5", "50667", "Köln")
    assert mueller.company_domain == "https://www.mueller-soehne.de"
    assert mueller.attributes == {
        "Organization Department": "Geschäftsleitung", "Labels": "* myContacts ::: Kunden"}

    assert phones(records[5]) == [("+46 8 123 456", "switchboard"), ("+46 8 654 321", "home")]
    assert records[6].is_company_only() and records[6].company == "Stadtwerke Köln"


def test_excel_sheet_with_german_headers_and_customer_numbers() -> None:
    records = records_by_line(read_fixture("excel_kundenliste_cp1252.csv"))

    assert sorted(records) == [2, 3, 4, 5]  # the rows of empty cells Excel writes are skipped
    mueller = records[2]
    assert mueller.attributes == {"Kundennummer": "K-1001"}
    assert (mueller.salutation, mueller.first_name, mueller.last_name) == ("Herr", "Jürgen", "Müller")
    assert mueller.position == "Geschäftsführer"
    assert mueller.customer_class == "A"
    assert phones(mueller) == [("0221 123456", "work"), ("0171 2345678", "mobile"), ("0221 123459", "fax")]
    assert (mueller.street, mueller.postal_code, mueller.city, mueller.country) == (
        "Hauptstraße 5", "50667", "Köln", "Deutschland")
    assert mueller.company_domain == "www.mueller-soehne.de"

    assert records[3].customer_class == "B"
    assert records[4].customer_class == "C"
    assert records[4].emails == ["joerdis@schaefer-it.de", "joerdis.schaefer@gmail.com"]
    assert records[5].customer_class == ""  # "Stammkunde" is kept, not taken for a class
    assert records[5].attributes == {"Kundennummer": "K-1004", "Klasse": "Stammkunde"}


def test_broken_rows_are_reported_with_their_physical_line() -> None:
    rows = read_fixture("broken_rows.csv")

    assert [(row.line, row.error) for row in rows if row.error] == [
        (5, NO_IDENTITY),
        (7, "9 fields, the header has 7"),
    ]
    records = {row.line: row.record for row in rows if row.record}
    assert sorted(records) == [2, 3, 8, 12]
    assert records[3].attributes == {"Notiz": "Notiz über\nzwei Zeilen", "Kundennummer": "K-2"}
    assert records[8].company == 'Weiß "&" Partner'
    assert records[8].attributes["Notiz"] == "drei\n\nZeilen"
    assert records[12].attributes == {"Kundennummer": "K-6"}  # a trailing empty cell is no extra field


# --- headers, delimiters, encodings ----------------------------------------------------------


def test_a_file_without_a_recognisable_header_yields_one_error() -> None:
    rows = read_text("Müller;Jürgen;0221 123456\nSchäfer;Björn;0211 987654\n", "cp1252")

    assert len(rows) == 1
    assert rows[0].line == 1 and rows[0].record is None
    assert rows[0].error is not None
    assert "no recognisable header" in rows[0].error and "'Müller', 'Jürgen', '0221 123456'" in rows[0].error


@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_the_delimiter_is_found_in_the_header_line(delimiter: str) -> None:
    text = delimiter.join(["Firma", "Telefon", "E-Mail"]) + "\n" + delimiter.join(
        ['"Müller; Söhne, GmbH"', "0221 1", "a@b.de"]) + "\n"

    record = only_record(text)

    assert (record.company, phones(record), record.emails) == ("Müller; Söhne, GmbH", [("0221 1", "work")], ["a@b.de"])


def test_delimiters_inside_quoted_headers_do_not_count() -> None:
    assert sniff_delimiter('"Name, Vorname, Titel";Firma\n') == ";"
    assert sniff_delimiter("Firma\n") == ";"


def test_excel_separator_hint_line_is_honoured() -> None:
    rows = read_text("sep=,\r\nFirma,Telefon\r\nMüller; Söhne,0221 1\r\n")

    assert rows == [ImportRow(3, ContactRecord(company="Müller; Söhne", phones=[PhoneRecord("0221 1")]))]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_umlauts_survive_every_encoding_excel_writes(encoding: str) -> None:
    record = only_record("Vorname\tNachname\tOrt\r\nBjörn\tMüller\tKöln\r\n", encoding)

    assert (record.first_name, record.last_name, record.city) == ("Björn", "Müller", "Köln")


def test_decoding_never_fails() -> None:
    assert decode_import_bytes(b"\x81\x8d\xff") == "\ufffd\ufffd\xff"  # bytes cp1252 leaves undefined
    assert decode_import_bytes(codecs.BOM_UTF16_LE + b"\x00") == "\xff\xfe\x00"  # odd length: not UTF-16


def test_headers_are_matched_case_and_punctuation_blind() -> None:
    text = "  e-mail adresse ;VORNAME;nach-name;Telefon (privat);STRASSE;plz\nj@x.de;Jürgen;Müller;0221 1;Weg 1;50667\n"

    record = only_record(text)

    assert (record.first_name, record.last_name, record.street, record.postal_code) == (
        "Jürgen", "Müller", "Weg 1", "50667")
    assert record.emails == ["j@x.de"] and phones(record) == [("0221 1", "home")]
    assert header_key("E-Mail 2: Adresse") == "email2adresse"


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Telefon", "work"), ("Tel.", "work"), ("Phone", "work"), ("Business Phone", "work"),
        ("Telefon geschäftlich 2", "work"), ("Telefon 3", "work"), ("Mobil", "mobile"), ("Handy", "mobile"),
        ("Mobile Phone", "mobile"), ("Mobiltelefon", "mobile"), ("Home Phone", "home"), ("Telefon privat", "home"),
        ("Fax", "fax"), ("Business Fax", "fax"), ("Fax geschäftlich", "fax"), ("Company Main Phone", "switchboard"),
        ("Telefon Firma", "switchboard"), ("Zentrale", "switchboard"), ("Switchboard", "switchboard"),
    ],
)
def test_phone_kind_comes_from_the_header(header: str, kind: str) -> None:
    assert phones(only_record(f"Firma;{header}\nX;0221 1\n")) == [("0221 1", kind)]


@pytest.mark.parametrize(
    ("label", "kind"),
    [("Mobile", "mobile"), ("* Mobile", "mobile"), ("Work", "work"), ("Home", "home"), ("Main", "switchboard"),
     ("Work Fax", "fax"), ("Home Fax", "fax"), ("Other", "work"), ("", "work")],
)
def test_google_phone_labels(label: str, kind: str) -> None:
    assert phone_kind_from_label(label) == kind


def test_old_google_export() -> None:
    header = "Name,Given Name,Additional Name,Family Name,Name Prefix,E-mail 1 - Type,E-mail 1 - Value,"
    header += "Phone 1 - Type,Phone 1 - Value,Organization 1 - Type,Organization 1 - Name,Organization 1 - Title"
    row = "Jürgen Müller,Jürgen,,Müller,,* Work,j@m.de,Mobile,0171 1,,Müller GmbH,Chef"
    company_row = "Müller GmbH,,,,,,,Work,0221 1,,Müller GmbH,"

    rows = read_text(f"{header}\n{row}\n{company_row}\n")

    person, company = (row.record for row in rows)
    assert person is not None and company is not None
    assert (person.first_name, person.last_name, person.company, person.position) == (
        "Jürgen", "Müller", "Müller GmbH", "Chef")
    assert person.emails == ["j@m.de"] and phones(person) == [("0171 1", "mobile")]
    # The old export repeats a company's name in "Name": that is not a person called GmbH.
    assert company == ContactRecord(company="Müller GmbH", phones=[PhoneRecord("0221 1", "work")])


# --- names, classes, addresses ---------------------------------------------------------------


def test_name_next_to_vorname_is_the_last_name() -> None:
    record = only_record("Vorname;Name;Firma\nJürgen;Müller;Müller GmbH\n")

    assert (record.first_name, record.last_name) == ("Jürgen", "Müller")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Jürgen Müller", ("", "", "Jürgen", "Müller")),
        ("Müller, Jürgen", ("", "", "Jürgen", "Müller")),
        ("Herr Dr. Jürgen Müller", ("Herr", "Dr.", "Jürgen", "Müller")),
        ("Frau Prof. Dr. Anna Maria Weiß", ("Frau", "Prof. Dr.", "Anna Maria", "Weiß")),
        ("Drago Petrović", ("", "", "Drago", "Petrović")),
        ("Müller", ("", "", "", "Müller")),
    ],
)
def test_a_lone_name_column_holds_the_whole_name(cell: str, expected: tuple[str, str, str, str]) -> None:
    record = only_record(f"Name;Telefon\n{cell};0221 1\n")

    assert (record.salutation, record.title, record.first_name, record.last_name) == expected
    assert tuple(split_full_name(cell)) == expected


@pytest.mark.parametrize(
    ("cell", "default_field", "expected"),
    [
        ("Herr", "salutation", ("Herr", "")), ("Herr Dr.", "salutation", ("Herr", "Dr.")),
        ("Dr.", "salutation", ("", "Dr.")), ("Sehr geehrte Frau", "salutation", ("Sehr geehrte Frau", "")),
        ("Mr.", "title", ("Mr.", "")), ("Prof. Dr.-Ing.", "title", ("", "Prof. Dr.-Ing.")),
    ],
)
def test_salutation_and_title_cells(cell: str, default_field: str, expected: tuple[str, str]) -> None:
    assert split_honorific(cell, default_field) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("A", "A"), ("b", "B"), ("C ", "C"), ("A-Kunde", "A"), ("b-kunde", "B"), ("Klasse B", "B"),
     ("Kundenklasse: c", "C"), ("ABC", ""), ("Stammkunde", ""), ("D", ""), ("AA", "")],
)
def test_customer_class_texts(cell: str, expected: str) -> None:
    assert parse_customer_class(cell) == expected


def test_an_unknown_class_is_kept_as_an_attribute() -> None:
    record = only_record("Firma;Klasse\nMüller GmbH;Premium\n")

    assert record.customer_class == ""
    assert record.attributes == {"Klasse": "Premium"}


def test_street_house_number_and_postal_city_columns_are_combined() -> None:
    record = only_record("Firma;Strasse;Hausnr.;PLZ/Ort\nMüller GmbH;Hauptstraße;5a;D-50667 Köln\n")

    assert (record.street, record.postal_code, record.city) == ("Hauptstraße 5a", "50667", "Köln")


def test_the_business_address_wins_and_the_home_address_is_kept() -> None:
    header = "First Name,Business Street,Business City,Home Street,Home City"
    record = only_record(f"{header}\nJohn,1 High St,London,2 Low Rd,Leeds\n")

    assert (record.street, record.city) == ("1 High St", "London")
    assert record.attributes == {"Home Street": "2 Low Rd", "Home City": "Leeds"}


def test_second_source_for_a_field_does_not_overwrite_the_first() -> None:
    record = only_record("Firma;Unternehmen;Ort;Stadt\nMüller GmbH;Müller & Co;Köln;Köln\n")

    assert record.company == "Müller GmbH" and record.city == "Köln"
    assert record.attributes == {"Unternehmen": "Müller & Co"}


# --- rows ------------------------------------------------------------------------------------


def test_values_are_stripped_empty_cells_ignored_and_duplicates_dropped() -> None:
    text = "Firma;Telefon;Mobil;E-Mail;E-Mail 2;Notiz\n  Müller GmbH ; 0221 1 ;0221 1;A@x.de;a@X.de;   \n"

    record = only_record(text)

    assert record.company == "Müller GmbH"
    assert phones(record) == [("0221 1", "work")]
    assert record.emails == ["A@x.de"]
    assert record.attributes == {}


def test_short_rows_are_padded_and_blank_lines_skipped() -> None:
    rows = read_text("\n\nFirma;Telefon;E-Mail\n\nMüller GmbH\n   \n;;\nSchäfer IT;0211 1\n")

    assert [(row.line, row.record and row.record.company) for row in rows] == [
        (5, "Müller GmbH"), (8, "Schäfer IT")]


def test_a_text_in_an_email_column_that_is_no_address_is_kept() -> None:
    record = only_record("Firma;E-Mail\nMüller GmbH;keine\n")

    assert record.emails == [] and record.attributes == {"E-Mail": "keine"}


def test_unknown_columns_with_empty_headers_get_a_name() -> None:
    record = only_record("Firma;;Notiz;Notiz\nMüller GmbH;x;eins;zwei\n")

    assert record.attributes == {"column 2": "x", "Notiz": "eins", "Notiz (2)": "zwei"}


def test_an_oversized_field_is_an_error_row_and_reading_goes_on() -> None:
    text = 'Firma;Notiz\nMüller GmbH;"' + "x" * 200_000 + '"\nSchäfer IT;kurz\n'

    rows = read_text(text)

    assert rows[0].line == 2 and rows[0].error is not None and "unreadable CSV" in rows[0].error
    assert rows[-1] == ImportRow(3, ContactRecord(company="Schäfer IT", attributes={"Notiz": "kurz"}))


def test_the_plan_is_made_once_from_the_header() -> None:
    plan = plan_columns(["Firma", "Vorname", "Nachname", "Telefon", "Mobil", "E-Mail", "Ort", "Kundennummer"])

    assert plan.text_fields == ((0, "company"), (1, "first_name"), (2, "last_name"), (6, "city"))
    assert plan.phones == ((3, "work"), (4, "mobile"))
    assert plan.attributes == ((7, "Kundennummer"),)
    assert plan.special == ()


# --- properties ------------------------------------------------------------------------------

RECOGNISED_HEADERS = ["Firma", "Vorname", "Nachname", "Telefon", "Mobil", "E-Mail", "Straße", "PLZ", "Ort",
                      "Klasse", "Anrede", "Name", "Phone 1 - Value", "Business Street", "Home City", "PLZ/Ort",
                      "Weitere Vornamen"]
KNOWN_HEADERS = [*RECOGNISED_HEADERS, "Phone 1 - Label", "Kundennummer", "Privat", "E-Mail-Typ"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_read_without_raising(data: bytes) -> None:
    check_rows(list(read_csv(data)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(st.sampled_from(KNOWN_HEADERS), max_size=7).flatmap(
        lambda others: st.sampled_from(RECOGNISED_HEADERS).map(lambda known: [*others, known])),
    delimiter=st.sampled_from([";", ",", "\t"]),
    body=st.text(alphabet=st.characters(codec="cp1252"), max_size=600),
    encoding=st.sampled_from(["cp1252", "utf-8", "utf-8-sig"]),
)
def test_any_text_below_a_valid_header_reads_without_raising(
    headers: list[str], delimiter: str, body: str, encoding: str
) -> None:
    rows = list(read_csv((delimiter.join(headers) + "\r\n" + body).encode(encoding)))

    check_rows(rows)
    assert all(row.error is None or "no recognisable header" not in row.error for row in rows)


def as_lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


GERMAN_TEXT = st.text(alphabet=st.sampled_from("abcxyzABC ÄÖÜäöüß-&.'\"\r\n;,\t"), max_size=20)
NAMES = st.text(alphabet=st.sampled_from("abcxyzABC ÄÖÜäöüß-"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(GERMAN_TEXT.filter(lambda text: text.strip() != ""), NAMES, NAMES, GERMAN_TEXT),
                  min_size=1, max_size=8),
    encoding=st.sampled_from(["cp1252", "utf-8", "utf-8-sig"]),
)
def test_what_csv_writers_write_is_read_back_with_the_right_lines(
    rows: list[tuple[str, str, str, str]], encoding: str
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Firma", "Vorname", "Nachname", "Notiz"])
    starts = []
    for row in rows:
        starts.append(len(re.findall(r"\r\n|\r|\n", buffer.getvalue())) + 1)
        writer.writerow(row)

    read = list(read_csv(buffer.getvalue().encode(encoding)))

    assert [row.line for row in read] == starts
    for (company, first, last, note), row in zip(rows, read):
        assert row.record is not None
        assert (row.record.company, row.record.first_name, row.record.last_name) == (
            as_lf(company).strip(), first.strip(), last.strip())
        expected_note = as_lf(note).strip()
        assert row.record.attributes == ({"Notiz": expected_note} if expected_note else {})
