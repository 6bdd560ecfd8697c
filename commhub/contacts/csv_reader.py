"""Read contacts from CSV files as Outlook, Google Contacts and Excel write them.

The header line becomes a ColumnPlan once (see csv_columns); each row then only walks that plan
with a few tight loops. The value helpers at the end (decoding, names, customer class, phone and
email lists) are shared with the vCard reader.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import NamedTuple, Protocol

from commhub.contacts.csv_columns import (
    ColumnPlan,
    PlannedColumn,
    Role,
    phone_kind_from_label,
    plan_columns,
)
from commhub.contacts.records import ContactRecord, ImportRow, PhoneRecord

NO_IDENTITY = "nothing to identify the contact: no name, company, phone or email"


def read_csv(data: bytes) -> Iterator[ImportRow]:
    """One ImportRow per non-blank data row of a CSV file; never raises on any input."""
    # Quoted multi-line cells keep the file's line ends; "\n" is what the rest of the system expects.
    # Both replacements pair CR and LF exactly as the line reader does, so line numbers stay.
    text = decode_import_bytes(data).replace("\r\n", "\n").replace("\r", "\n")
    delimiter = _choose_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = _find_header(reader, delimiter)
    if header is None:
        return
    if header.problem is not None:
        yield ImportRow(header.line, error=header.problem)
        return
    plan = plan_columns(header.cells)
    if not plan.recognises_anything():
        yield ImportRow(header.line, error=_unrecognised_header_message(plan))
        return
    yield from _import_rows(reader, plan)


# --- physical rows ---------------------------------------------------------------------------


class _LineCountingReader(Protocol):
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...


class _Header(NamedTuple):
    line: int
    cells: list[str]
    problem: str | None = None  # why the header line could not be read


def _find_header(reader: _LineCountingReader, delimiter: str) -> _Header | None:
    consumed = 0
    try:
        for cells in reader:
            line, consumed = consumed + 1, reader.line_num
            if _has_text(cells) and not _is_separator_hint(cells, delimiter):
                return _Header(line, cells)
    except csv.Error as error:
        return _Header(consumed + 1, [], f"unreadable CSV ({error})")
    return None


def _import_rows(reader: _LineCountingReader, plan: ColumnPlan) -> Iterator[ImportRow]:
    """Rows with the physical line they start on; a quoted newline makes a record taller."""
    while True:
        consumed = reader.line_num
        try:
            for cells in reader:
                line, consumed = consumed + 1, reader.line_num
                if cells:
                    row = _import_row(cells, line, plan)
                    if row is not None:
                        yield row
            return
        except csv.Error as error:
            yield ImportRow(consumed + 1, error=f"unreadable CSV ({error})")
            if reader.line_num == consumed:
                return


def _has_text(cells: list[str]) -> bool:
    return any(cell.strip() for cell in cells)


def _unrecognised_header_message(plan: ColumnPlan) -> str:
    found = ", ".join(repr(header) for header in plan.headers[:12])
    more = f" and {len(plan.headers) - 12} more" if len(plan.headers) > 12 else ""
    return (
        f"no recognisable header: found {found}{more}; expected columns such as "
        "Vorname, Nachname, Firma, E-Mail, Telefon (or First Name, Last Name, Company, ...)"
    )


# --- decoding and dialect --------------------------------------------------------------------


def decode_import_bytes(data: bytes) -> str:
    """Text of an import file: UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass  # not really UTF-16: the two bytes were text after all
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # German Excel saves "CSV (Trennzeichen-getrennt)" in Windows-1252.
        return data.decode("cp1252", errors="replace")


_DELIMITERS = (";", ",", "\t")
_HINTABLE_DELIMITERS = frozenset(";,\t|")


def _choose_delimiter(text: str) -> str:
    first_line = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    return _separator_hint(first_line) or sniff_delimiter(first_line)


def _separator_hint(line: str) -> str:
    # Excel understands a first line "sep=;" and some tools write one.
    stripped = line.strip("\r\n ")
    if len(stripped) == 5 and stripped[:4].lower() == "sep=" and stripped[4] in _HINTABLE_DELIMITERS:
        return stripped[4]
    return ""


def _is_separator_hint(cells: list[str], delimiter: str) -> bool:
    return _separator_hint(delimiter.join(cells)) == delimiter


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of ; , TAB outside quotes; ";" on a tie (German Excel's choice)."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    in_quotes = False
    for char in header_line:
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char in counts:
            counts[char] += 1
    return max(_DELIMITERS, key=counts.__getitem__)


# --- one row ---------------------------------------------------------------------------------


def _import_row(cells: list[str], line: int, plan: ColumnPlan) -> ImportRow | None:
    width = plan.width
    if len(cells) != width:
        if len(cells) > width and _has_text(cells[width:]):
            return ImportRow(line, error=f"{len(cells)} fields, the header has {width}")
        cells = (cells + [""] * width)[:width]
    record = _assemble(cells, plan)
    if record is not None:
        return ImportRow(line, record)
    if _has_text(cells):
        return ImportRow(line, error=NO_IDENTITY)
    return None  # a row of empty cells, as Excel writes below the data


def _assemble(cells: list[str], plan: ColumnPlan) -> ContactRecord | None:
    """The record of one row (exactly plan.width cells), or None if nothing identifies it."""
    fields = {name: value for index, name in plan.text_fields if (value := cells[index].strip())}
    attributes = _read_attributes(cells, plan.attributes) if plan.attributes else {}
    phones = _read_phones(cells, plan.phones) if plan.phones else []
    emails = _read_emails(cells, plan.emails, attributes) if plan.emails else []
    for index, header in plan.classes:
        if value := cells[index].strip():
            _add_customer_class(fields, attributes, header, value)
    if plan.special:
        draft = _Draft(fields, phones, emails, attributes)
        _apply_special(draft, cells, plan.special)
        _finish(draft)
    # Only non-empty values ever enter `fields`, so this is ContactRecord.is_empty() made cheap.
    if not (phones or emails or _IDENTIFYING_FIELDS.intersection(fields)):
        return None
    return ContactRecord(**fields, phones=phones, emails=emails, attributes=attributes)


_IDENTIFYING_FIELDS = frozenset({"first_name", "last_name", "company"})


def _read_attributes(cells: list[str], columns: tuple[tuple[int, str], ...]) -> dict[str, str]:
    return {header: value for index, header in columns if (value := cells[index].strip())}


def _read_phones(cells: list[str], columns: tuple[tuple[int, str], ...]) -> list[PhoneRecord]:
    phones: list[PhoneRecord] = []
    for index, kind in columns:
        value = cells[index].strip()
        if not value:
            continue
        if ":::" in value:
            for raw in split_multi_value(value):
                add_phone(phones, raw, kind)
        else:
            add_phone(phones, value, kind)
    return phones


def _read_emails(
    cells: list[str], columns: tuple[tuple[int, str], ...], attributes: dict[str, str]
) -> list[str]:
    emails: list[str] = []
    for index, header in columns:
        value = cells[index].strip()
        if "@" in value and _EMAIL_SEPARATOR_CHARS.isdisjoint(value):
            add_email(emails, value)  # the usual single plain address
        elif value:
            _add_email_cell(emails, attributes, header, value)
    return emails


def _add_email_cell(emails: list[str], attributes: dict[str, str], header: str, value: str) -> None:
    for address in split_email_cell(value):
        if "@" in address:
            add_email(emails, address)
        else:  # "keine" or "siehe Notiz": not an address, but not to be lost either
            attributes[header] = value


# --- columns that need judgement -------------------------------------------------------------


class _Draft:
    """The containers of the record being assembled, plus what is settled after all cells."""

    __slots__ = ("fields", "phones", "emails", "attributes", "addresses", "middle_name", "full_name")

    def __init__(
        self, fields: dict[str, str], phones: list[PhoneRecord], emails: list[str], attributes: dict[str, str]
    ) -> None:
        self.fields = fields
        self.phones = phones
        self.emails = emails
        self.attributes = attributes
        self.addresses: dict[str, _AddressDraft] | None = None
        self.middle_name = ""
        self.full_name = ""


Apply = Callable[[_Draft, PlannedColumn, str, list[str]], None]


def _apply_special(draft: _Draft, cells: list[str], columns: tuple[PlannedColumn, ...]) -> None:
    for column in columns:
        value = cells[column.index].strip()
        if value and value not in column.placeholders:
            _APPLY[column.meaning.role](draft, column, value, cells)


def _finish(draft: _Draft) -> None:
    if draft.addresses:
        _settle_address(draft, draft.addresses)
    if draft.full_name:
        _settle_full_name(draft)
    if draft.middle_name:
        first = draft.fields.get("first_name")
        draft.fields["first_name"] = f"{first} {draft.middle_name}" if first else draft.middle_name


def _set_field(draft: _Draft, field_name: str, header: str, value: str) -> None:
    # The first column wins; a differing second source is kept, not lost.
    current = draft.fields.setdefault(field_name, value)
    if current != value:
        draft.attributes[header] = value


def _apply_field(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _set_field(draft, column.meaning.field, column.header, value)


def _apply_attribute(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    draft.attributes[column.header] = value


def _apply_phone(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    kind = column.meaning.phone_kind
    if not kind:
        kind = phone_kind_from_label(cells[column.label_index] if column.label_index >= 0 else "")
    for raw in split_multi_value(value):
        add_phone(draft.phones, raw, kind)


def _apply_email(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _add_email_cell(draft.emails, draft.attributes, column.header, value)


def _apply_customer_class(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _add_customer_class(draft.fields, draft.attributes, column.header, value)


def _add_customer_class(fields: dict[str, str], attributes: dict[str, str], header: str, value: str) -> None:
    customer_class = parse_customer_class(value)
    if not customer_class:  # "Stammkunde" is information, just not a class
        attributes[header] = value
    elif fields.setdefault("customer_class", customer_class) != customer_class:
        attributes[header] = value


def _apply_honorific(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    default_field = "salutation" if column.meaning.role is Role.SALUTATION else "title"
    salutation, title = split_honorific(value, default_field)
    if salutation:
        _set_field(draft, "salutation", column.header, salutation)
    if title:
        _set_field(draft, "title", column.header, title)


def _apply_middle_name(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    draft.middle_name = value  # "Weitere Vornamen" are first names too; joined in _finish


def _apply_full_name(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    if not draft.full_name:
        draft.full_name = value
    elif draft.full_name != value:
        draft.attributes[column.header] = value


def _settle_full_name(draft: _Draft) -> None:
    # A full name only fills in when no column gave first or last name, and Google's old export
    # repeats a company's name there: that is no person called "GmbH".
    fields = draft.fields
    if "first_name" in fields or "last_name" in fields:
        return
    if draft.full_name.casefold() == fields.get("company", "").casefold():
        return
    parts = split_full_name(draft.full_name)
    for field_name, value in zip(("salutation", "title", "first_name", "last_name"), parts):
        if value:
            fields.setdefault(field_name, value)


# --- addresses: one row may fill business, home and other address columns -------------------


class _AddressDraft:
    __slots__ = ("rank", "entries")

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.entries: list[tuple[str, str, str]] = []  # (part, header, value)


def _address_entries(draft: _Draft, column: PlannedColumn) -> list[tuple[str, str, str]]:
    if draft.addresses is None:
        draft.addresses = {}
    group = column.meaning.group
    address = draft.addresses.get(group)
    if address is None:
        address = draft.addresses[group] = _AddressDraft(column.meaning.rank)
    return address.entries


def _apply_address(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _address_entries(draft, column).append((column.meaning.field, column.header, value))


def _apply_street_extra(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _address_entries(draft, column).append(("street_extra", column.header, value))


def _apply_house_number(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _address_entries(draft, column).append(("house_number", column.header, value))


def _apply_postal_city(draft: _Draft, column: PlannedColumn, value: str, cells: list[str]) -> None:
    _address_entries(draft, column).append(("postal_city", column.header, value))


def _settle_address(draft: _Draft, addresses: dict[str, _AddressDraft]) -> None:
    """Take the best-ranked address group that has any value; keep the others as attributes."""
    best = min(addresses, key=lambda group: addresses[group].rank)
    for group, address in addresses.items():
        if group == best:
            _take_address(draft, address.entries)
        else:
            draft.attributes.update((header, value) for _, header, value in address.entries)


def _take_address(draft: _Draft, entries: list[tuple[str, str, str]]) -> None:
    parts: dict[str, str] = {}
    extras: list[str] = []
    for part, header, value in entries:
        if part == "street_extra":
            extras.append(value)
            continue
        for part_name, part_value in _split_address_entry(part, value):
            if parts.setdefault(part_name, part_value) != part_value:
                draft.attributes[header] = value
    street = " ".join(filter(None, (parts.pop("street", ""), parts.pop("house_number", ""))))
    street = ", ".join(filter(None, [street, *extras]))
    if street:
        parts["street"] = street
    for part, value in parts.items():
        draft.fields.setdefault(part, value)


_POSTAL_CITY = re.compile(r"(?:[A-Za-z]{1,3}[- ])?(\d{4,5})\s+(.+)")


def _split_address_entry(part: str, value: str) -> tuple[tuple[str, str], ...]:
    """A "PLZ/Ort" cell such as "D-10115 Berlin" holds two parts; every other entry one."""
    if part != "postal_city":
        return ((part, value),)
    match = _POSTAL_CITY.fullmatch(value)
    if match is None:
        return (("city", value),)
    return (("postal_code", match.group(1)), ("city", match.group(2)))


_APPLY: dict[Role, Apply] = {
    Role.FIELD: _apply_field,
    Role.ATTRIBUTE: _apply_attribute,
    Role.PHONE: _apply_phone,
    Role.EMAIL: _apply_email,
    Role.CUSTOMER_CLASS: _apply_customer_class,
    Role.SALUTATION: _apply_honorific,
    Role.TITLE: _apply_honorific,
    Role.MIDDLE_NAME: _apply_middle_name,
    Role.FULL_NAME: _apply_full_name,
    Role.ADDRESS: _apply_address,
    Role.STREET_EXTRA: _apply_street_extra,
    Role.HOUSE_NUMBER: _apply_house_number,
    Role.POSTAL_CITY: _apply_postal_city,
}


# --- value helpers, shared with the vCard reader ---------------------------------------------


def split_multi_value(value: str) -> list[str]:
    """Google puts several values into one cell: "030 1234 ::: 0171 5678"."""
    if ":::" not in value:
        return [value]
    return [part.strip() for part in value.split(":::") if part.strip()]


_EMAIL_SEPARATORS = re.compile(r":::|[;,\s]+")
_EMAIL_SEPARATOR_CHARS = frozenset(";, :\t\r\n")


def split_email_cell(value: str) -> list[str]:
    """The addresses in one cell; people type "a@x.de; b@x.de" and Google writes " ::: "."""
    if _EMAIL_SEPARATOR_CHARS.isdisjoint(value):  # the usual single address; ":" of mailto: is in the set
        return [value]
    if value[:7].lower() == "mailto:":
        value = value[7:]
    return [part for part in _EMAIL_SEPARATORS.split(value) if part]


def add_email(emails: list[str], address: str) -> None:
    if not emails:
        emails.append(address)
        return
    folded = address.casefold()
    if not any(existing.casefold() == folded for existing in emails):
        emails.append(address)


def add_phone(phones: list[PhoneRecord], raw: str, kind: str) -> None:
    """Append unless the same number is already there (Outlook repeats it as "Primary Phone")."""
    for phone in phones:
        if phone.raw == raw:
            return
    phones.append(PhoneRecord(raw, kind))


_CUSTOMER_CLASS_TEXT = re.compile(
    r"(?:kunden?klasse|klasse|class|kategorie|category|kunde|customer|abc)?[\s:-]*([abc])"
    r"(?:[\s-]*(?:kunden?|customer|client))?",
    re.IGNORECASE,
)


@lru_cache(maxsize=256)
def parse_customer_class(text: str) -> str:
    """ "A", "b", "A-Kunde", "Klasse B" -> "A"/"B"; anything else -> ""."""
    match = _CUSTOMER_CLASS_TEXT.fullmatch(text.strip())
    return match.group(1).upper() if match else ""


_SALUTATION_WORDS = frozenset(
    {"herr", "herrn", "frau", "hr", "fr", "mr", "mrs", "ms", "miss", "mx", "familie", "fam"}
)
_TITLE_WORDS = frozenset({"dr", "prof", "mag", "ing", "phd", "mba"})
_TITLE_STEMS = ("dr", "prof", "dipl", "mag", "ing")


def _is_salutation_word(word: str) -> bool:
    return word.casefold().rstrip(".") in _SALUTATION_WORDS


def _is_title_word(word: str) -> bool:
    # "Dr.-Ing." and "Dipl.-Kfm." end with a dot; a first name such as "Drago" does not.
    folded = word.casefold()
    return folded.rstrip(".") in _TITLE_WORDS or (folded.endswith(".") and folded.startswith(_TITLE_STEMS))


def _count_leading(words: list[str], test: Callable[[str], bool]) -> int:
    count = 0
    while count < len(words) and test(words[count]):
        count += 1
    return count


@lru_cache(maxsize=256)
def split_honorific(text: str, default_field: str = "salutation") -> tuple[str, str]:
    """(salutation, title) of a cell such as "Herr Dr.", "Dr." or "Mr."."""
    words = text.split()
    salutations = _count_leading(words, _is_salutation_word)
    if salutations:
        return " ".join(words[:salutations]), " ".join(words[salutations:])
    if all(_is_title_word(word) for word in words):
        return "", " ".join(words)
    return (text, "") if default_field == "salutation" else ("", text)


class NameParts(NamedTuple):
    salutation: str
    title: str
    first_name: str
    last_name: str


def split_full_name(text: str) -> NameParts:
    """ "Herr Dr. Jürgen Müller" or "Müller, Jürgen" -> its parts; one word is a last name."""
    if "," in text:
        last_name, _, rest = text.partition(",")
        salutation, title, words = _strip_honorifics(rest.split())
        return NameParts(salutation, title, " ".join(words), last_name.strip())
    salutation, title, words = _strip_honorifics(text.split())
    return NameParts(salutation, title, " ".join(words[:-1]), words[-1] if words else "")


def _strip_honorifics(words: list[str]) -> tuple[str, str, list[str]]:
    salutations = _count_leading(words, _is_salutation_word)
    titles = _count_leading(words[salutations:], _is_title_word)
    rest = words[salutations + titles:]
    if not rest:  # "Herr Dr." alone is no name; keep it as the name rather than lose it
        return "", "", words
    return " ".join(words[:salutations]), " ".join(words[salutations:salutations + titles]), rest
