"""Read contacts from vCard files (2.1, 3.0 and 4.0), one ImportRow per card.

This is a small parser of its own rather than `vobject`: vobject 0.9.9 reads ordinary 3.0 and
4.0 cards well, but its content-line regex backtracks exponentially on a malformed parameter
list (a 30-comma TYPE list takes minutes), it stops at the first broken card, it fails on
quoted-printable soft line breaks and it leaves TYPE="voice,work" unsplit. An upload must
never be able to hang the importer, so unfolding (RFC 6350 §3.2), parameters (quoted values,
RFC 6868 ^-escapes) and backslash escapes are handled here with linear-time code.
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from commhub.contacts.csv_reader import (
    NO_IDENTITY,
    add_email,
    add_phone,
    decode_import_bytes,
    parse_customer_class,
    split_full_name,
    split_honorific,
)
from commhub.contacts.records import ContactRecord, ImportRow, PhoneRecord


def read_vcard(data: bytes) -> Iterator[ImportRow]:
    """One ImportRow per BEGIN:VCARD; a broken card becomes an error row and reading goes on."""
    text = decode_import_bytes(data)
    found_card = False
    for card in _cards(text):
        found_card = True
        yield _card_row(card)
    if not found_card and text.strip():
        yield ImportRow(1, error="no vCard found: the file has no BEGIN:VCARD line")


# --- cards and logical lines -----------------------------------------------------------------


class _CardLines(NamedTuple):
    begin: int  # line number of BEGIN:VCARD
    lines: list[tuple[int, str]]  # physical lines between BEGIN and END, with their numbers
    complete: bool  # False when END:VCARD is missing


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _cards(text: str) -> Iterator[_CardLines]:
    lines: list[tuple[int, str]] | None = None
    begin = 0
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        marker = line.strip().upper()
        if marker == "BEGIN:VCARD":
            if lines is not None:
                yield _CardLines(begin, lines, complete=False)
            lines, begin = [], number
        elif lines is None:
            continue  # text between cards is not part of any contact
        elif marker == "END:VCARD":
            yield _CardLines(begin, lines, complete=True)
            lines = None
        else:
            lines.append((number, line))
    if lines is not None:
        yield _CardLines(begin, lines, complete=False)


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Unfold continuation lines; in 2.1 cards the fold keeps its whitespace, later it does not."""
    keep_fold_space = any(line.strip().upper() == "VERSION:2.1" for _, line in lines)
    logical: list[tuple[int, list[str]]] = []  # pieces are joined once: folded photos are long
    for number, line in lines:
        pieces = logical[-1][1] if logical else None
        if pieces and _continues_quoted_printable(pieces):
            pieces[-1] = pieces[-1][:-1]
            pieces.append(line)
        elif pieces and line[:1] in (" ", "\t"):
            pieces.append(line if keep_fold_space else line[1:])
        elif line.strip():
            logical.append((number, [line]))
    return [(number, "".join(pieces)) for number, pieces in logical]


def _continues_quoted_printable(pieces: list[str]) -> bool:
    # A quoted-printable value ending in "=" goes on in the next line (a "soft line break").
    if not pieces[-1].endswith("="):
        return False
    colon = _value_colon(pieces[0])
    return colon >= 0 and "QUOTED-PRINTABLE" in pieces[0][:colon].upper()


# --- content lines ---------------------------------------------------------------------------


class _BrokenCard(Exception):
    """A card that cannot be read; the message says which line and why."""


class _Property(NamedTuple):
    line: int
    group: str
    name: str  # upper case
    params: dict[str, list[str]]  # upper-case names, values unquoted
    value: str  # as written: still escaped and, if so declared, still encoded


_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _parse_property(number: int, line: str) -> _Property:
    colon = _value_colon(line)
    if colon < 0:
        raise _BrokenCard(f"line {number}: expected NAME:value, got {line[:60]!r}")
    name_part, *param_texts = _split_unquoted(line[:colon], ";")
    group, _, name = name_part.strip().rpartition(".")
    if not _PROPERTY_NAME.fullmatch(name):
        raise _BrokenCard(f"line {number}: {name_part[:40]!r} is not a property name")
    return _Property(number, group, name.upper(), _parse_params(param_texts), line[colon + 1:])


def _value_colon(line: str) -> int:
    """Index of the ':' that starts the value (-1 if none); a quoted parameter may hold ':'."""
    position = 0
    colon = line.find(":")
    while colon >= 0:
        quote = line.find('"', position, colon)
        if quote < 0:
            return colon
        closing = line.find('"', quote + 1)
        if closing < 0:
            return colon  # an unclosed quote is a typo, not a parameter value
        position = closing + 1
        if position > colon:
            colon = line.find(":", position)
    return -1


def _split_unquoted(text: str, separator: str) -> list[str]:
    if '"' not in text:
        return text.split(separator)
    parts: list[str] = []
    start, quoted = 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


# vCard 2.1 writes bare parameters: TEL;WORK;VOICE and N;QUOTED-PRINTABLE.
_BARE_ENCODINGS = frozenset({"QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT", "B"})


def _parse_params(param_texts: list[str]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for param_text in param_texts:
        key, has_value, raw_values = param_text.partition("=")
        key = key.strip().upper()
        if not has_value:
            key, raw_values = ("ENCODING" if key in _BARE_ENCODINGS else "TYPE"), key
        values = [_param_value(value) for value in _split_unquoted(raw_values, ",")]
        params.setdefault(key, []).extend(value for value in values if value)
    return params


_CARET_ESCAPES = {"^n": "\n", "^N": "\n", "^^": "^", "^'": '"'}
_CARET_ESCAPE = re.compile(r"\^[nN^']")


def _param_value(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if "^" in value:  # RFC 6868
        value = _CARET_ESCAPE.sub(lambda match: _CARET_ESCAPES[match.group()], value)
    return value


def _types(prop: _Property) -> frozenset[str]:
    # TYPE=work,voice and TYPE="voice,work" and TYPE=WORK;TYPE=VOICE all mean the same.
    return frozenset(
        part.strip().lower() for value in prop.params.get("TYPE", ()) for part in value.split(",")
    )


# --- values ----------------------------------------------------------------------------------


def _decoded(prop: _Property) -> str:
    """The value with any ENCODING (quoted-printable, base64) undone, still backslash-escaped."""
    encoding = {value.upper() for value in prop.params.get("ENCODING", ())}
    if "QUOTED-PRINTABLE" in encoding:
        return _from_charset(quopri.decodestring(prop.value.encode("utf-8")), prop)
    if encoding & {"B", "BASE64"}:
        try:
            raw = binascii.a2b_base64(prop.value.encode("ascii", errors="replace"))
        except binascii.Error as error:
            raise _BrokenCard(f"line {prop.line}: {prop.name} is not valid base64 ({error})") from None
        return _from_charset(raw, prop)
    return prop.value


def _from_charset(raw: bytes, prop: _Property) -> str:
    charset = (prop.params.get("CHARSET") or ["utf-8"])[0]
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeError, ValueError):
        return decode_import_bytes(raw)  # unknown or wrong charset: guess as for whole files


_ESCAPED_CHAR = re.compile(r"\\(.)", re.DOTALL)
_SEPARATOR_OR_ESCAPE = {";": re.compile(r"\\.|;", re.DOTALL), ",": re.compile(r"\\.|,", re.DOTALL)}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPED_CHAR.sub(lambda match: "\n" if match.group(1) in "nN" else match.group(1), text)


def _split_escaped(text: str, separator: str) -> list[str]:
    """Split at separators that are not backslash-escaped; the parts stay escaped."""
    if "\\" not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    for match in _SEPARATOR_OR_ESCAPE[separator].finditer(text):
        if match.group() == separator:
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def _text(prop: _Property) -> str:
    return _unescape(_decoded(prop)).strip()


def _components(prop: _Property, count: int, joiner: str) -> list[str]:
    """The `count` fields of a structured value (N, ADR); a field's list values are joined."""
    fields = _split_escaped(_decoded(prop), ";")
    fields += [""] * (count - len(fields))
    return [_joined_list(field, joiner) for field in fields[:count]]


def _joined_list(field: str, joiner: str) -> str:
    values = (_unescape(value).strip() for value in _split_escaped(field, ","))
    return joiner.join(value for value in values if value)


# --- building the record ---------------------------------------------------------------------


class _CardDraft:
    __slots__ = ("fields", "phones", "emails", "attributes", "full_name", "addresses", "is_company")

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.phones: list[PhoneRecord] = []
        self.emails: list[str] = []
        self.attributes: dict[str, str] = {}
        self.full_name = ""
        self.addresses: list[tuple[frozenset[str], list[str]]] = []
        self.is_company = False

    def add_attribute(self, key: str, value: str) -> None:
        if value:
            current = self.attributes.get(key)
            self.attributes[key] = f"{current}\n{value}" if current else value


def _card_row(card: _CardLines) -> ImportRow:
    line = card.begin
    try:
        if not card.complete:
            raise _BrokenCard("no END:VCARD before the next card or the end of the file")
        record = _record(card)
    except _BrokenCard as broken:
        return ImportRow(line, error=f"broken vCard: {broken}")
    if record.is_empty():
        return ImportRow(line, error=NO_IDENTITY)
    return ImportRow(line, record)


def _record(card: _CardLines) -> ContactRecord:
    draft = _CardDraft()
    for number, text in _logical_lines(card.lines):
        prop = _parse_property(number, text)
        handler = _HANDLERS.get(prop.name)
        if handler is not None:
            handler(draft, prop)
        elif prop.name not in _IGNORED_PROPERTIES and not _is_binary(prop):
            draft.add_attribute(prop.name, _text(prop))
    _settle_names(draft)
    _settle_address(draft)
    return ContactRecord(
        **draft.fields, phones=draft.phones, emails=draft.emails, attributes=draft.attributes
    )


def _is_binary(prop: _Property) -> bool:
    encodings = {value.upper() for value in prop.params.get("ENCODING", ())}
    values = {value.lower() for value in prop.params.get("VALUE", ())}
    return bool(encodings & {"B", "BASE64"}) or "binary" in values or prop.value[:5].lower() == "data:"


def _set_field(draft: _CardDraft, field_name: str, value: str, attribute_key: str) -> None:
    # The first property wins; a second, different one is kept as an attribute.
    if value and draft.fields.setdefault(field_name, value) != value:
        draft.add_attribute(attribute_key, value)


def _on_n(draft: _CardDraft, prop: _Property) -> None:
    family, given, additional, prefixes, suffixes = _components(prop, 5, " ")
    _set_field(draft, "last_name", family, "N")
    _set_field(draft, "first_name", " ".join(filter(None, (given, additional))), "N")
    if prefixes:
        salutation, title = split_honorific(prefixes, "title")
        _set_field(draft, "salutation", salutation, "N")
        _set_field(draft, "title", title, "N")
    draft.add_attribute("Name suffix", suffixes)


def _on_fn(draft: _CardDraft, prop: _Property) -> None:
    draft.full_name = draft.full_name or _text(prop)


def _on_org(draft: _CardDraft, prop: _Property) -> None:
    company, *units = (_unescape(part).strip() for part in _split_escaped(_decoded(prop), ";"))
    _set_field(draft, "company", company, "ORG")
    draft.add_attribute("Department", ", ".join(unit for unit in units if unit))


def _on_title(draft: _CardDraft, prop: _Property) -> None:
    _set_field(draft, "position", _text(prop), "TITLE")


def _on_tel(draft: _CardDraft, prop: _Property) -> None:
    value = prop.value if _is_uri(prop) else _text(prop)
    if value[:4].lower() == "tel:":
        value = value[4:]  # keep "+1-555-555-5555;ext=102": numbers are normalised elsewhere
    value = value.strip()
    if value:
        add_phone(draft.phones, value, _phone_kind(_types(prop)))


def _is_uri(prop: _Property) -> bool:
    return any(value.lower() == "uri" for value in prop.params.get("VALUE", ()))


def _phone_kind(types: frozenset[str]) -> str:
    if "fax" in types:
        return "fax"
    if types & {"cell", "mobile", "iphone"}:
        return "mobile"
    if "home" in types:
        return "home"
    if types & {"main", "x-main"}:
        return "switchboard"
    return "work"  # work, voice, other, pref or nothing at all


def _on_email(draft: _CardDraft, prop: _Property) -> None:
    address = _text(prop)
    if address[:7].lower() == "mailto:":
        address = address[7:].strip()
    if "@" in address:
        add_email(draft.emails, address)
    else:
        draft.add_attribute("EMAIL", address)


def _on_adr(draft: _CardDraft, prop: _Property) -> None:
    parts = _components(prop, 7, ", ")
    if any(parts):  # an empty work address must not push a filled home address aside
        draft.addresses.append((_types(prop), parts))


def _on_url(draft: _CardDraft, prop: _Property) -> None:
    _set_field(draft, "company_domain", _text(prop), "URL")


def _on_categories(draft: _CardDraft, prop: _Property) -> None:
    draft.add_attribute(prop.name, _joined_list(_decoded(prop), ", "))


def _on_customer_class(draft: _CardDraft, prop: _Property) -> None:
    value = _text(prop)
    customer_class = parse_customer_class(value)
    if customer_class:
        _set_field(draft, "customer_class", customer_class, prop.name)
    else:
        draft.add_attribute(prop.name, value)


def _on_kind(draft: _CardDraft, prop: _Property) -> None:
    # vCard 4.0 KIND:org and Apple's X-ABShowAs:COMPANY mark a card for a company, not a person.
    if _text(prop).lower() in ("org", "organization", "company"):
        draft.is_company = True


_HANDLERS: dict[str, Callable[[_CardDraft, _Property], None]] = {
    "N": _on_n,
    "FN": _on_fn,
    "ORG": _on_org,
    "TITLE": _on_title,
    "TEL": _on_tel,
    "EMAIL": _on_email,
    "ADR": _on_adr,
    "URL": _on_url,
    "CATEGORIES": _on_categories,
    "KIND": _on_kind,
    "X-ABSHOWAS": _on_kind,
    "X-KUNDENKLASSE": _on_customer_class,
    "X-KLASSE": _on_customer_class,
    "X-ABC": _on_customer_class,
    "X-CUSTOMER-CLASS": _on_customer_class,
    "X-CLASS": _on_customer_class,
}

# Technical or binary properties: as attributes they would only add noise (or megabytes).
_IGNORED_PROPERTIES = frozenset({
    "VERSION", "PRODID", "UID", "REV", "SOURCE", "NAME", "PROFILE", "MAILER", "PHOTO", "LOGO",
    "SOUND", "KEY", "CLIENTPIDMAP", "XML", "LABEL", "TZ", "GEO", "SORT-STRING", "X-ABLABEL",
    "X-ABUID", "X-ABADR", "X-PHONETIC-FIRST-NAME", "X-PHONETIC-LAST-NAME",
})


def _settle_names(draft: _CardDraft) -> None:
    fields = draft.fields
    if draft.is_company:
        if draft.full_name:
            fields.setdefault("company", draft.full_name)
        return
    has_name = "first_name" in fields or "last_name" in fields
    # Outlook and Google write company cards as FN:Müller GmbH, ORG:Müller GmbH, N:;;;;
    names_the_company = draft.full_name.casefold() == fields.get("company", "").casefold()
    if has_name or not draft.full_name or names_the_company:
        return
    parts = split_full_name(draft.full_name)
    for field_name, value in zip(("salutation", "title", "first_name", "last_name"), parts):
        if value:
            fields.setdefault(field_name, value)


def _settle_address(draft: _CardDraft) -> None:
    """The work address (else the first) fills the record; other addresses become attributes."""
    if not draft.addresses:
        return
    chosen = next((address for address in draft.addresses if "work" in address[0]), draft.addresses[0])
    for address in draft.addresses:
        if address is chosen:
            _take_address(draft, address[1])
        else:
            label = " ".join(sorted(address[0] - {"pref"}))
            draft.add_attribute(f"ADR {label}".strip(), _one_line_address(address[1]))


def _take_address(draft: _CardDraft, parts: list[str]) -> None:
    po_box, extended, street, city, region, postal_code, country = parts
    for field_name, value in (
        ("street", ", ".join(filter(None, (street, extended)))),
        ("city", city), ("postal_code", postal_code), ("country", country),
    ):
        if value:
            draft.fields.setdefault(field_name, value)
    draft.add_attribute("PO box", po_box)
    draft.add_attribute("Region", region)


def _one_line_address(parts: list[str]) -> str:
    po_box, extended, street, city, region, postal_code, country = parts
    town = " ".join(filter(None, (postal_code, city)))
    return ", ".join(filter(None, (po_box, street, extended, town, region, country)))
