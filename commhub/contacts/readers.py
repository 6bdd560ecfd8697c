"""Pick the reader for an uploaded import file by its name or, failing that, its content."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from commhub.contacts.csv_reader import read_csv
from commhub.contacts.records import ImportRow
from commhub.contacts.vcard_reader import read_vcard

VCARD_SUFFIXES = (".vcf", ".vcard")


def read_import_file(name: str, data: bytes) -> Iterator[ImportRow]:
    """ImportRows from a vCard (by .vcf/.vcard name or BEGIN:VCARD content) or a CSV file."""
    if looks_like_vcard(name, data):
        return read_vcard(data)
    return read_csv(data)


def looks_like_vcard(name: str, data: bytes) -> bool:
    if name.strip().lower().endswith(VCARD_SUFFIXES):
        return True
    return _head_text(data).lstrip(" \t\r\n").upper().startswith("BEGIN:VCARD")


def _head_text(data: bytes) -> str:
    head = data[:1024]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="ignore").lstrip("\ufeff")
    # Only ASCII matters for the test, and latin-1 decodes any byte.
    return head.removeprefix(codecs.BOM_UTF8).decode("latin-1")
