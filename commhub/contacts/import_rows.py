"""Preparing import rows for writing: normalised numbers, addresses and matching keys.

Pure and picklable, so that a large import can prepare rows in a second process while the first
writes (see `Importer.run_file`).
"""

from __future__ import annotations

import multiprocessing
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from commhub.contacts.names import contact_key, fold
from commhub.contacts.readers import read_import_file
from commhub.contacts.records import ContactRecord, ImportRow
from commhub.store.files import (
    Problems,
    contact_values,
    email_values,
    organization_values,
    phone_values,
)
from commhub.store.models import Contact, Organization

# Rows per transaction: larger chunks spread each statement's fixed cost over more rows (measured:
# 10,000 imports ≈ 15 % faster than 2,000) at ≈ 100 MB more memory for the import command.
CHUNK_ROWS = 10_000
NO_IDENTITY = "nothing to identify the contact: no name, company, phone or email"
HOLDS_NUL = "the row holds a NUL character (a binary file, or one in UTF-16 without its byte order mark?)"
# The longest value each column takes. PostgreSQL refuses a longer one, and with it the whole chunk
# (SQLite keeps anything): a longer cell is cut, with a warning for its line.
LIMITS = {name: Contact.__table__.c[name].type.length for name in
          ("salutation", "title", "first_name", "last_name", "position", "street", "postal_code", "city", "country")}
LIMITS |= {"company": Organization.__table__.c.name.type.length,
           "company_domain": Organization.__table__.c.domain.type.length}


@dataclass(slots=True)
class PreparedRow:
    line: int
    values: dict[str, Any]  # column values of the contact (or, for a company row, the organization)
    phones: list[dict[str, Any]]
    company_phones: list[dict[str, Any]]  # switchboard numbers belong to the company, not the person
    emails: list[dict[str, Any]]
    company: str
    company_domain: str
    company_key: str
    name_key: str  # "" for a company row

    def company_record(self) -> ContactRecord:
        return ContactRecord(company=self.company, company_domain=self.company_domain)


@dataclass(slots=True)
class PreparedChunk:
    """Rows read so far (`rows`), the usable ones prepared, and what was rejected or only warned about."""

    rows: int = 0
    prepared: list[PreparedRow] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)


def prepare(row: ImportRow, region: str, chunk: PreparedChunk) -> None:
    chunk.rows += 1
    if row.error is not None or row.record is None:
        chunk.rejected.append((row.line, row.error or "unreadable row"))
        return
    record = row.record
    if record.is_empty():
        chunk.rejected.append((row.line, NO_IDENTITY))
        return
    if _holds_nul(record):  # no PostgreSQL text takes it
        chunk.rejected.append((row.line, HOLDS_NUL))
        return
    problems = Problems()
    record = _fitted(record, problems)
    phones = phone_values(record.phones, region, problems)
    emails = email_values(record.emails, problems)
    chunk.warnings.extend((row.line, message) for message in problems.messages)
    company_only = record.is_company_only()
    own = phones if company_only else [p for p in phones if p["kind"] != "switchboard"]
    company = [] if company_only else [p for p in phones if p["kind"] == "switchboard"]
    values = organization_values(record) if company_only else contact_values(record, None)
    chunk.prepared.append(PreparedRow(
        row.line, values, own, company, emails, record.company, record.company_domain, fold(record.company),
        "" if company_only else contact_key(record.first_name, record.last_name)))


def _holds_nul(record: ContactRecord) -> bool:
    texts = [getattr(record, name) for name in LIMITS] + [record.customer_class]
    texts += [phone.raw for phone in record.phones] + list(record.emails)
    texts += [text for item in record.attributes.items() for text in item]
    return any("\x00" in text for text in texts)


def _fitted(record: ContactRecord, problems: Problems) -> ContactRecord:
    cut = {name: value[:limit] for name, limit in LIMITS.items() if len(value := getattr(record, name)) > limit}
    for name in cut:
        problems.add(f"{name} cut to {LIMITS[name]} characters")
    return replace(record, **cut) if cut else record


def prepare_file_into(name: str, data: bytes, region: str, chunk_rows: int,
                      out: multiprocessing.Queue[Any]) -> None:
    """Worker process: read and prepare a whole file, chunk by chunk; None ends, a str reports a failure."""
    try:
        chunk = PreparedChunk()
        for row in read_import_file(name, data):
            prepare(row, region, chunk)
            if len(chunk.prepared) >= chunk_rows:
                out.put(chunk)
                chunk = PreparedChunk()
        out.put(chunk)
        out.put(None)
    except BaseException:  # the parent must hear of any failure, or it would wait for rows forever
        out.put(traceback.format_exc())
