"""Which CSV header means which ContactRecord field, and the per-file column plan.

The table covers what Outlook (English and German), Google Contacts (old and 2024+ layout) and
hand-made Excel sheets write. Headers are compared by `header_key`, so "E-Mail-Adresse",
"e-mail adresse" and "E-MAIL ADRESSE" are the same column and "Straße" matches "Strasse".
Everything here runs once per file (for the header line), never per row.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, auto


class Role(Enum):
    FIELD = auto()  # a plain text field of ContactRecord, named by `field`
    ADDRESS = auto()  # street/postal_code/city/country of the address `group`
    STREET_EXTRA = auto()  # "Business Street 2": appended to the group's street
    HOUSE_NUMBER = auto()  # a separate "Hausnummer" column, appended to the street
    POSTAL_CITY = auto()  # one "PLZ/Ort" cell such as "10115 Berlin"
    PHONE = auto()
    PHONE_LABEL = auto()  # Google's "Phone 1 - Label": read by its PHONE column only
    EMAIL = auto()
    CUSTOMER_CLASS = auto()
    SALUTATION = auto()  # may also hold a title ("Herr Dr.")
    TITLE = auto()  # may also hold a salutation (Outlook's "Title" is "Mr.")
    MIDDLE_NAME = auto()
    FULL_NAME = auto()  # "Jürgen Müller" or "Müller, Jürgen" in one cell
    NAME = auto()  # "Name": last name next to a first-name column, else a full name
    IGNORED = auto()  # derived or technical columns (Outlook's "E-mail Type" = "SMTP")
    ATTRIBUTE = auto()  # unknown column: kept verbatim under its header


@dataclass(frozen=True, slots=True)
class ColumnMeaning:
    role: Role
    field: str = ""  # for FIELD and ADDRESS
    phone_kind: str = ""  # for PHONE; "" means "read it from the label column"
    group: str = ""  # address group for ADDRESS, STREET_EXTRA, HOUSE_NUMBER, POSTAL_CITY
    rank: int = 0  # lower rank wins when a row fills several address groups
    label_keys: tuple[str, ...] = ()  # header keys of the column naming this phone's kind


_NOT_WORD = re.compile(r"[\W_]+")


def header_key(header: str) -> str:
    """Case- and punctuation-blind form of a header: "E-Mail 2: Adresse" -> "email2adresse"."""
    return _NOT_WORD.sub("", header.casefold())


def _field(name: str) -> ColumnMeaning:
    return ColumnMeaning(Role.FIELD, field=name)


def _phone(kind: str) -> ColumnMeaning:
    return ColumnMeaning(Role.PHONE, phone_kind=kind)


_FIELD_HEADERS: dict[str, tuple[str, ...]] = {
    "first_name": ("First Name", "Vorname", "Given Name", "Firstname", "Rufname", "Vornamen"),
    "last_name": ("Last Name", "Nachname", "Family Name", "Surname", "Familienname", "Lastname"),
    "company": (
        "Company", "Firma", "Unternehmen", "Firmenname", "Company Name", "Organization Name",
        "Organisation", "Organization", "Organization 1 - Name", "Betrieb", "Firmierung",
    ),
    "position": (
        "Job Title", "Position", "Funktion", "Organization Title", "Organization 1 - Title",
        "Jobtitel", "Stellung", "Berufsbezeichnung",
    ),
    "company_domain": (
        "Web Page", "Webseite", "Website", "Homepage", "Domain", "Internet", "URL", "Web",
        "Internetseite", "Internetadresse", "Webseite geschäftlich", "Business Web Page",
    ),
}

_SALUTATION_HEADERS = ("Anrede", "Salutation", "Name Prefix", "Briefanrede")
_TITLE_HEADERS = ("Title", "Titel", "Akademischer Titel", "Prefix")
_MIDDLE_NAME_HEADERS = ("Middle Name", "Weitere Vornamen", "Additional Name", "Zweiter Vorname")
_FULL_NAME_HEADERS = (
    "Full Name", "Display Name", "Vollständiger Name", "Ansprechpartner", "Ansprechperson",
    "Kontaktperson", "Kontakt", "Contact", "Contact Name", "Anzeigename",
)
_CLASS_HEADERS = (
    "Klasse", "Kundenklasse", "ABC", "Class", "Customer Class", "ABC-Klasse", "ABC Kategorie",
    "Kundenkategorie", "Kategorie", "Category", "Kundentyp",
)

_PHONE_HEADERS: dict[str, tuple[str, ...]] = {
    "work": (
        "Business Phone", "Business Phone 2", "Primary Phone", "Other Phone", "Telefon geschäftlich",
        "Telefon geschäftlich 2", "Haupttelefon", "Weiteres Telefon", "Telefon", "Tel", "Tel.",
        "Telefonnummer", "Phone", "Phone Number", "Telephone", "Festnetz", "Durchwahl",
        "Telefon 1", "Work Phone",
    ),
    "mobile": (
        "Mobile Phone", "Mobile Phone 2", "Mobiltelefon", "Mobiltelefon 2", "Car Phone",
        "Autotelefon", "Mobil", "Handy", "Mobile", "Mobilnummer", "Handynummer", "Cell",
        "Cell Phone", "Mobilfunk",
    ),
    "home": ("Home Phone", "Home Phone 2", "Telefon privat", "Telefon privat 2", "Privat Telefon"),
    "fax": (
        "Business Fax", "Home Fax", "Other Fax", "Fax geschäftlich", "Fax privat", "Weiteres Fax",
        "Fax", "Telefax", "Faxnummer", "Fax Number",
    ),
    "switchboard": (
        "Company Main Phone", "Telefon Firma", "Zentrale", "Switchboard", "Telefon Zentrale",
        "Main Phone", "Hauptnummer",
    ),
}

_EMAIL_HEADERS = (
    "E-mail Address", "E-mail 2 Address", "E-mail 3 Address", "E-Mail-Adresse",
    "E-Mail 2: Adresse", "E-Mail 3: Adresse", "E-Mail", "Email", "Mail", "E-Mail Adresse",
    "Email Address", "Mailadresse",
)

# Address groups: (group, rank, {part: headers}); "main" is the plain Excel sheet.
_ADDRESS_HEADERS: tuple[tuple[str, int, dict[str, tuple[str, ...]]], ...] = (
    ("business", 0, {
        "street": ("Business Street", "Straße geschäftlich"),
        "street_extra": (
            "Business Street 2", "Business Street 3", "Straße geschäftlich 2",
            "Straße geschäftlich 3",
        ),
        "city": ("Business City", "Ort geschäftlich"),
        "postal_code": ("Business Postal Code", "Postleitzahl geschäftlich", "PLZ geschäftlich"),
        "country": (
            "Business Country/Region", "Business Country", "Land/Region geschäftlich",
            "Land geschäftlich",
        ),
    }),
    ("main", 0, {
        "street": (
            "Straße", "Street", "Adresse", "Address", "Anschrift", "Straße und Hausnummer",
            "Straße/Nr.", "Straße Nr.", "Str.",
        ),
        "house_number": ("Hausnummer", "Hausnr.", "House Number"),
        "city": ("Ort", "Stadt", "City", "Wohnort", "Town"),
        "postal_code": ("PLZ", "Postleitzahl", "Postal Code", "ZIP", "ZIP Code", "Postcode"),
        "country": ("Land", "Country", "Staat", "Country/Region", "Land/Region"),
        "postal_city": ("PLZ/Ort", "PLZ Ort", "PLZ und Ort", "Postleitzahl/Ort"),
    }),
    ("home", 1, {
        "street": ("Home Street", "Straße privat"),
        "street_extra": ("Home Street 2", "Home Street 3", "Straße privat 2", "Straße privat 3"),
        "city": ("Home City", "Ort privat"),
        "postal_code": ("Home Postal Code", "Postleitzahl privat"),
        "country": ("Home Country/Region", "Land/Region privat", "Land privat"),
    }),
    ("other", 2, {
        "street": ("Other Street", "Weitere Straße"),
        "street_extra": ("Other Street 2", "Other Street 3", "Weitere Straße 2", "Weitere Straße 3"),
        "city": ("Other City", "Weiterer Ort"),
        "postal_code": ("Other Postal Code", "Weitere Postleitzahl"),
        "country": ("Other Country/Region", "Weiteres/e Land/Region", "Weiteres/r Land/Region"),
    }),
)

# Columns Outlook/Google derive from others; as attributes they would only add noise.
_IGNORED_HEADERS = (
    "E-mail Type", "E-mail Display Name", "E-mail 2 Type", "E-mail 2 Display Name",
    "E-mail 3 Type", "E-mail 3 Display Name", "E-Mail-Typ", "E-Mail: Angezeigter Name",
    "E-Mail 2: Typ", "E-Mail 2: Angezeigter Name", "E-Mail 3: Typ", "E-Mail 3: Angezeigter Name",
    "Initials", "Initialen", "File As", "Photo", "Organization 1 - Type",
)

# Values Outlook writes into every contact when the field was never filled in.
OUTLOOK_PLACEHOLDERS: dict[str, frozenset[str]] = {
    header_key(header): frozenset(values)
    for header, values in (
        ("Private", ("False",)), ("Privat", ("Aus", "False")),
        ("Sensitivity", ("Normal",)), ("Vertraulichkeit", ("Normal",)),
        ("Priority", ("Normal",)), ("Priorität", ("Normal",)),
        ("Gender", ("Unspecified",)), ("Geschlecht", ("Unbekannt", "Nicht angegeben")),
        ("Birthday", ("0/0/00",)), ("Geburtstag", ("0.0.00", "00.00.00")),
        ("Anniversary", ("0/0/00",)), ("Jahrestag", ("0.0.00", "00.00.00")),
    )
}


_ROLE_HEADERS: dict[Role, tuple[str, ...]] = {
    Role.EMAIL: _EMAIL_HEADERS,
    Role.SALUTATION: _SALUTATION_HEADERS,
    Role.TITLE: _TITLE_HEADERS,
    Role.MIDDLE_NAME: _MIDDLE_NAME_HEADERS,
    Role.FULL_NAME: _FULL_NAME_HEADERS,
    Role.CUSTOMER_CLASS: _CLASS_HEADERS,
    Role.IGNORED: _IGNORED_HEADERS,
    Role.NAME: ("Name",),
}


def _header_meanings() -> Iterator[tuple[tuple[str, ...], ColumnMeaning]]:
    for field_name, headers in _FIELD_HEADERS.items():
        yield headers, _field(field_name)
    for kind, headers in _PHONE_HEADERS.items():
        yield headers, _phone(kind)
    for role, headers in _ROLE_HEADERS.items():
        yield headers, ColumnMeaning(role)
    for group, rank, parts in _ADDRESS_HEADERS:
        for part, headers in parts.items():
            yield headers, _address_meaning(part, group, rank)


def _build_table() -> dict[str, ColumnMeaning]:
    table: dict[str, ColumnMeaning] = {}
    for headers, meaning in _header_meanings():
        for header in headers:
            table.setdefault(header_key(header), meaning)
    return table


_ADDRESS_PART_ROLES = {
    "street_extra": Role.STREET_EXTRA,
    "house_number": Role.HOUSE_NUMBER,
    "postal_city": Role.POSTAL_CITY,
}


def _address_meaning(part: str, group: str, rank: int) -> ColumnMeaning:
    role = _ADDRESS_PART_ROLES.get(part, Role.ADDRESS)
    field_name = part if role is Role.ADDRESS else ""
    return ColumnMeaning(role, field=field_name, group=group, rank=rank)


KNOWN_HEADERS: dict[str, ColumnMeaning] = _build_table()

# Google numbers repeated fields: "Phone 2 - Value", "Address 1 - Postal Code".
_NUMBERED = re.compile(r"(email|phone|address|organization|website)(\d+)(\w+)")
_NUMBERED_SUFFIX = re.compile(r"(\D+?)\d+")  # "telefon2" -> "telefon" (plain sheets)

_GOOGLE_ADDRESS_PARTS = {
    "street": "street", "city": "city", "postalcode": "postal_code", "country": "country",
    "extendedaddress": "street_extra",
}


_ATTRIBUTE = ColumnMeaning(Role.ATTRIBUTE)


def meaning_of(key: str) -> ColumnMeaning:
    """The meaning of a header key; unknown headers become ATTRIBUTE columns."""
    known = KNOWN_HEADERS.get(key)
    if known is not None:
        return known
    numbered = _NUMBERED.fullmatch(key)
    if numbered is not None:
        meaning = _google_meaning(numbered.group(1), numbered.group(2), numbered.group(3))
    else:
        meaning = _numbered_contact_meaning(key)
    return meaning or _ATTRIBUTE


def _numbered_contact_meaning(key: str) -> ColumnMeaning | None:
    # "Telefon 3" or "E-Mail 2" in a hand-made sheet means another phone/email.
    plain = _NUMBERED_SUFFIX.fullmatch(key)
    if plain is None:
        return None
    meaning = KNOWN_HEADERS.get(plain.group(1))
    if meaning is not None and meaning.role in (Role.PHONE, Role.EMAIL):
        return meaning
    return None


def _google_meaning(kind: str, number: str, part: str) -> ColumnMeaning | None:
    if part in ("type", "label", "formatted"):
        return ColumnMeaning(Role.PHONE_LABEL if kind == "phone" else Role.IGNORED)
    if kind == "email" and part == "value":
        return ColumnMeaning(Role.EMAIL)
    if kind == "phone" and part == "value":
        label_keys = (f"phone{number}label", f"phone{number}type")
        return ColumnMeaning(Role.PHONE, label_keys=label_keys)
    if kind == "website" and part == "value":
        return _field("company_domain")
    if kind == "organization":
        return {"name": _field("company"), "title": _field("position")}.get(part)
    if kind == "address" and part in _GOOGLE_ADDRESS_PARTS:
        return _address_meaning(_GOOGLE_ADDRESS_PARTS[part], f"address{number}", int(number))
    return None


_LABEL_KINDS = (
    ("fax", "fax"),
    ("mobil", "mobile"), ("cell", "mobile"), ("handy", "mobile"), ("iphone", "mobile"),
    ("home", "home"), ("privat", "home"),
    ("main", "switchboard"), ("zentrale", "switchboard"), ("haupt", "switchboard"),
)


def phone_kind_from_label(label: str) -> str:
    """Kind of a phone from a free label such as Google's "* Mobile" or "Work Fax"."""
    folded = label.casefold()
    for needle, kind in _LABEL_KINDS:
        if needle in folded:
            return kind
    return "work"


# --- the per-file plan -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedColumn:
    """A column that needs more than copying its text (see ColumnPlan.special)."""

    index: int
    header: str  # unique and non-empty: the attribute key for values without a field
    meaning: ColumnMeaning
    placeholders: frozenset[str] = frozenset()  # values that mean "never filled in"
    label_index: int = -1  # the column naming this phone's kind (Google), if any


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """What to do with each column of one file.

    Most columns are copied straight into a field, phone list, email list or the attributes;
    those are listed as plain (index, target) pairs so a row is read with a few tight loops.
    Columns that need judgement (several sources for one field, addresses from several groups,
    names, classes, Google phone labels, Outlook placeholders) are in `special`.
    """

    width: int
    headers: tuple[str, ...]
    text_fields: tuple[tuple[int, str], ...]  # (index, ContactRecord field)
    phones: tuple[tuple[int, str], ...]  # (index, phone kind)
    emails: tuple[tuple[int, str], ...]  # (index, header)
    attributes: tuple[tuple[int, str], ...]  # (index, header)
    classes: tuple[tuple[int, str], ...]  # (index, header) of the one customer-class column
    special: tuple[PlannedColumn, ...]

    def recognises_anything(self) -> bool:
        if self.text_fields or self.phones or self.emails or self.classes:
            return True
        return any(column.meaning.role is not Role.ATTRIBUTE for column in self.special)


def plan_columns(header_cells: list[str]) -> ColumnPlan:
    """Decide once per file what each column means."""
    headers = _unique_headers(header_cells)
    keys = [header_key(header) for header in headers]
    meanings = _resolve_name_column([meaning_of(key) for key in keys])
    columns = [
        PlannedColumn(index, header, meaning, OUTLOOK_PLACEHOLDERS.get(key, frozenset()),
                      _label_index(meaning, keys))
        for index, (header, key, meaning) in enumerate(zip(headers, keys, meanings))
        if meaning.role not in (Role.IGNORED, Role.PHONE_LABEL)
    ]
    return _sort_columns(len(headers), tuple(headers), columns)


def _sort_columns(width: int, headers: tuple[str, ...], columns: list[PlannedColumn]) -> ColumnPlan:
    direct_fields = _single_source_fields(columns)
    buckets: dict[str, list[tuple[int, str]]] = {
        "text": [], "phone": [], "email": [], "attribute": [], "class": []
    }
    special: list[PlannedColumn] = []
    for column in columns:
        bucket, target = _direct_target(column, direct_fields)
        if bucket:
            buckets[bucket].append((column.index, target))
        else:
            special.append(column)
    return ColumnPlan(
        width, headers, tuple(buckets["text"]), tuple(buckets["phone"]), tuple(buckets["email"]),
        tuple(buckets["attribute"]), tuple(buckets["class"]), tuple(special),
    )


def _direct_target(column: PlannedColumn, direct_fields: set[str]) -> tuple[str, str]:
    """(bucket, target) of a column read without judgement, or ("", "") for a special one."""
    meaning = column.meaning
    if column.placeholders:
        return "", ""
    if meaning.role in (Role.FIELD, Role.ADDRESS) and meaning.field in direct_fields:
        return "text", meaning.field
    if meaning.role is Role.PHONE and meaning.phone_kind:
        return "phone", meaning.phone_kind
    if meaning.role is Role.EMAIL:
        return "email", column.header
    if meaning.role is Role.ATTRIBUTE:
        return "attribute", column.header
    if meaning.role is Role.CUSTOMER_CLASS and "customer_class" in direct_fields:
        return "class", column.header
    return "", ""


_ADDRESS_FIELDS = frozenset({"street", "postal_code", "city", "country"})


def _single_source_fields(columns: list[PlannedColumn]) -> set[str]:
    """Fields exactly one column fills, so no row can have two competing values for them."""
    sources = Counter(_filled_field(column.meaning) for column in columns)
    single = {field_name for field_name, count in sources.items() if count == 1}
    address_columns = [column for column in columns if column.meaning.group]
    groups = {column.meaning.group for column in address_columns}
    simple_address = len(groups) <= 1 and all(c.meaning.role is Role.ADDRESS for c in address_columns)
    return single if simple_address else single - _ADDRESS_FIELDS


def _filled_field(meaning: ColumnMeaning) -> str:
    if meaning.role is Role.CUSTOMER_CLASS:
        return "customer_class"
    return meaning.field if meaning.role in (Role.FIELD, Role.ADDRESS) else ""


def _unique_headers(header_cells: list[str]) -> list[str]:
    headers: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(header_cells):
        header = cell.strip().lstrip("\ufeff").strip() or f"column {index + 1}"
        unique, copy = header, 2
        while unique in seen:
            unique, copy = f"{header} ({copy})", copy + 1
        seen.add(unique)
        headers.append(unique)
    return headers


def _resolve_name_column(meanings: list[ColumnMeaning]) -> list[ColumnMeaning]:
    # "Name" next to "Vorname" is the last name; next to "Nachname" (Google's old export) or
    # alone it holds the whole name.
    fields = {meaning.field for meaning in meanings if meaning.role is Role.FIELD}
    if "first_name" in fields and "last_name" not in fields:
        name_meaning = _field("last_name")
    else:
        name_meaning = ColumnMeaning(Role.FULL_NAME)
    return [name_meaning if meaning.role is Role.NAME else meaning for meaning in meanings]


def _label_index(meaning: ColumnMeaning, keys: list[str]) -> int:
    for label_key in meaning.label_keys:
        if label_key in keys:
            return keys.index(label_key)
    return -1
