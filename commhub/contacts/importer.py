"""`commhub contacts import`: records from a CSV or vCard file into customer files, in bulk.

A row updates the file it belongs to instead of duplicating it: it matches a stored contact by a
normalised email address or phone number *and* a compatible name (two colleagues sharing the office
line or info@ stay two people), or, without either, by the same name in the same company. Rows are
written in chunks with Core bulk statements, each chunk one transaction: an import of a million
rows does not hold one giant transaction, and one bad row never aborts the rest.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from queue import Empty
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from commhub.contacts.import_rows import (
    CHUNK_ROWS,
    PreparedChunk,
    PreparedRow,
    prepare,
    prepare_file_into,
)
from commhub.contacts.names import contact_key
from commhub.contacts.readers import read_import_file
from commhub.contacts.records import ImportRow
from commhub.gdpr.digests import KEY_NAME as ERASURE_KEY
from commhub.gdpr.digests import digest
from commhub.mail.filing import OwnAddresses
from commhub.mail.refiling import refile
from commhub.store.files import organization_values
from commhub.store.models import (
    Contact,
    EmailAddressRow,
    ErasureTombstone,
    Organization,
    PhoneNumberRow,
    PrivacyKey,
    utcnow,
)

YIELD_EVERY_ROWS = 100
# Below this a second process costs more to start than it saves.
PARALLEL_FROM_BYTES = 2 * 1024 * 1024
QUEUED_CHUNKS = 4
IMPORT_CACHE_KIB = 64 * 1024
WORKER_JOIN_S = 10
_UPDATABLE = ("salutation", "title", "first_name", "last_name", "position", "customer_class",
              "street", "postal_code", "city", "country")


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = f", {self.rows / self.seconds:,.0f} rows/s" if self.seconds > 0 else ""
        return (f"{self.rows} rows: {self.created} created, {self.updated} updated, "
                f"{self.duplicates} duplicate, {len(self.rejected)} rejected ({self.seconds:.1f} s{rate})")


async def _finish(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        await task


class Importer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, region: str = "DE",
                 progress: Callable[[ImportReport], None] | None = None,
                 parallel_from_bytes: int = PARALLEL_FROM_BYTES, chunk_rows: int = CHUNK_ROWS,
                 own: OwnAddresses | None = None) -> None:
        self.sessions = sessions
        self.own = own or OwnAddresses()
        self.region = region
        self.progress = progress
        self.parallel_from_bytes = parallel_from_bytes
        self.chunk_rows = chunk_rows
        # Companies found or made by earlier chunks of this import: most rows name one seen before.
        self.known_companies: dict[str, int] = {}

    async def run(self, rows: Iterable[ImportRow]) -> ImportReport:
        """Import rows read in this process (tests, small files)."""
        return await self._write_all(_chunks(rows, self.region, self.chunk_rows))

    async def run_file(self, name: str, data: bytes) -> ImportReport:
        """Import a file; a large one is read and prepared in a second process while this one writes."""
        if len(data) < self.parallel_from_bytes:
            return await self.run(read_import_file(name, data))
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        queue: multiprocessing.Queue[Any] = context.Queue(maxsize=QUEUED_CHUNKS)
        worker = context.Process(target=prepare_file_into, args=(name, data, self.region, self.chunk_rows, queue), daemon=True)
        worker.start()
        try:
            return await self._write_all(_from_worker(queue, worker))
        finally:
            worker.kill()
            worker.join(timeout=WORKER_JOIN_S)
            queue.close()

    async def _write_all(self, chunks: AsyncIterator[PreparedChunk]) -> ImportReport:
        """Write chunk n while chunk n+1 is prepared; chunks are written in order, so each sees the last."""
        report = ImportReport()
        started = time.perf_counter()
        writing: asyncio.Task[None] | None = None
        async for chunk in chunks:
            await _finish(writing)
            report.rows += chunk.rows
            report.rejected += chunk.rejected
            report.warnings += chunk.warnings
            writing = asyncio.create_task(self._write_chunk(chunk.prepared, report)) if chunk.prepared else None
            report.seconds = time.perf_counter() - started
            if self.progress:
                self.progress(report)
        await _finish(writing)
        report.seconds = time.perf_counter() - started
        return report

    async def _write_chunk(self, chunk: list[PreparedRow], report: ImportReport) -> None:
        async with self.sessions() as session, session.begin():
            connection = await session.connection()
            if connection.dialect.name == "sqlite":
                # Inserting into several growing indexes at random places wants more than SQLite's
                # default 2 MB page cache; this is the importer's own connection setting, not the server's.
                await connection.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")
            await _ChunkWriter(session, report, self.known_companies).write(chunk)
            # Mail that waited for these addresses (or companies' domains) is filed with them.
            await refile(session, self.own, addresses=[e["address"] for row in chunk for e in row.emails],
                         domains={row.company_domain for row in chunk if row.company_domain})


async def _chunks(rows: Iterable[ImportRow], region: str, chunk_rows: int) -> AsyncIterator[PreparedChunk]:
    chunk = PreparedChunk()
    for row in rows:
        prepare(row, region, chunk)
        if chunk.rows % YIELD_EVERY_ROWS == 0:
            await asyncio.sleep(0)  # let the writing task hand its next statement to the database
        if len(chunk.prepared) >= chunk_rows:
            yield chunk
            chunk = PreparedChunk()
    yield chunk


async def _from_worker(queue: multiprocessing.Queue[Any], worker: Any) -> AsyncIterator[PreparedChunk]:
    while True:
        item = await asyncio.to_thread(_get, queue, worker)
        if item is None:
            return
        if isinstance(item, str):
            raise RuntimeError(f"reading the import file failed:\n{item}")
        yield item


def _get(queue: multiprocessing.Queue[Any], worker: Any) -> Any:
    while True:
        try:
            return queue.get(timeout=1.0)
        except Empty:
            if not worker.is_alive():
                raise RuntimeError(f"the import worker died (exit code {worker.exitcode})") from None


ERASED_REASON = ("a person with this number or address was erased on request (GDPR Art. 17); "
                 "add them by hand if they are a customer again")


class _ChunkWriter:
    """Writes one chunk in one transaction with a handful of set-based statements."""

    def __init__(self, session: AsyncSession, report: ImportReport, known_companies: dict[str, int]) -> None:
        self.session = session
        self.report = report
        self.known_companies = known_companies
        self.now = utcnow()
        self.created_companies: set[str] = set()

    async def write(self, chunk: list[PreparedRow]) -> None:
        chunk = await self._without_erased(chunk)
        organizations = await self._organizations(chunk)
        people = [row for row in chunk if row.name_key or not row.company_key]
        companies = [row for row in chunk if not row.name_key and row.company_key]
        for row in people:
            row.values["organization_id"] = organizations.get(row.company_key)
        created, existing = self._company_files(companies, organizations)
        await self._add_numbers("organization_id", created)
        await self._update_files(Organization, "organization_id", existing)
        await self._people(people)
        await self._company_numbers(people)

    async def _without_erased(self, chunk: list[PreparedRow]) -> list[PreparedRow]:
        """Rows naming a number or address of a person erased on request are rejected: re-importing an
        old export must not bring them back unnoticed (commhub/gdpr/erase.py keeps keyed digests)."""
        key = await self.session.get(PrivacyKey, ERASURE_KEY)
        if key is None:  # nobody was ever erased here
            return chunk
        secret = bytes.fromhex(key.secret)
        wanted = {row.line: {("phone", digest(secret, "phone", p["e164"])) for p in row.phones if p["e164"]}
                  | {("email", digest(secret, "email", e["address"])) for e in row.emails} for row in chunk}
        every = sorted({d for digests in wanted.values() for _, d in digests})
        erased: set[tuple[str, str]] = set()
        for batch in _batches(every):
            found = await self.session.execute(select(ErasureTombstone.kind, ErasureTombstone.digest)
                                               .where(ErasureTombstone.digest.in_(batch)))
            erased |= {(kind, value) for kind, value in found.all()}
        kept = []
        for row in chunk:
            if wanted[row.line] & erased:
                self.report.rejected.append((row.line, ERASED_REASON))
            else:
                kept.append(row)
        return kept

    # --- organizations -------------------------------------------------------------------------

    async def _organizations(self, chunk: list[PreparedRow]) -> dict[str, int]:
        """Every company named in the chunk, found by its folded name or created."""
        found = self.known_companies
        keys = {row.company_key for row in chunk if row.company_key and row.company_key not in found}
        for batch in _batches(sorted(keys)):
            rows = await self.session.execute(select(Organization.name_key, Organization.id)
                                              .where(Organization.name_key.in_(batch)))
            for key, org_id in rows:
                found[key] = min(org_id, found.get(key, org_id))  # of two same-named companies, the older
        missing: dict[str, dict[str, Any]] = {}
        for row in chunk:
            if row.company_key and row.company_key not in found:
                if not row.name_key and row.company_key not in missing:
                    missing[row.company_key] = row.values  # a company row: create it with all it says
                missing.setdefault(row.company_key, organization_values(row.company_record()))
        if missing:
            ids = await self._insert_returning(Organization, list(missing.values()))
            found.update(zip(missing, ids, strict=True))
            self.created_companies = set(missing)
        return found

    def _company_files(self, companies: list[PreparedRow], organizations: dict[str, int]
                       ) -> tuple[dict[int, PreparedRow], dict[int, PreparedRow]]:
        """Company rows by organization: (made by this chunk, stored before). A made one has its values already."""
        created: dict[int, PreparedRow] = {}
        existing: dict[int, PreparedRow] = {}
        for row in companies:
            org_id = organizations[row.company_key]
            files = created if row.company_key in self.created_companies else existing
            if org_id in files:
                self.report.duplicates += 1
                _merge(files[org_id], row)
            else:
                files[org_id] = row
        self.report.created += len(created)
        return created, existing

    # --- people ----------------------------------------------------------------------------------

    async def _people(self, people: list[PreparedRow]) -> None:
        existing = await self._existing_people(people)
        new_rows: list[PreparedRow] = []
        matched: dict[int, PreparedRow] = {}
        for row in people:
            contact_id = existing.match(row)
            if contact_id is None:
                new_rows.append(row)
                existing.remember_pending(row)
            elif contact_id < 0 or contact_id in matched:
                self.report.duplicates += 1
                _merge(existing.pending[contact_id] if contact_id < 0 else matched[contact_id], row)
            else:
                matched[contact_id] = row
        await self._create_people(new_rows)
        await self._update_files(Contact, "contact_id", matched)

    async def _existing_people(self, people: list[PreparedRow]) -> _Existing:
        emails = sorted({e["address"] for row in people for e in row.emails})
        numbers = sorted({p["e164"] for row in people for p in row.phones if p["e164"]})
        names = sorted({row.name_key for row in people if row.name_key})
        existing = _Existing()
        for batch in _batches(emails):
            existing.add_emails(await self.session.execute(
                select(EmailAddressRow.address, Contact.id, Contact.name_key).join(
                    Contact, Contact.id == EmailAddressRow.contact_id).where(EmailAddressRow.address.in_(batch))))
        for batch in _batches(numbers):
            existing.add_phones(await self.session.execute(
                select(PhoneNumberRow.e164, Contact.id, Contact.name_key).join(
                    Contact, Contact.id == PhoneNumberRow.contact_id).where(PhoneNumberRow.e164.in_(batch))))
        # SQLite cannot probe an index with a list of (name, company) pairs (it scans), so the
        # names are looked up and the company compared in `_Existing.match`.
        for batch in _batches(names):
            existing.add_names(await self.session.execute(
                select(Contact.name_key, Contact.organization_id, Contact.id).where(Contact.name_key.in_(batch))))
        return existing

    async def _create_people(self, rows: list[PreparedRow]) -> None:
        if not rows:
            return
        ids = await self._insert_returning(Contact, [row.values for row in rows])
        owners = [{"contact_id": contact_id} for contact_id in ids]
        await self._insert_children(PhoneNumberRow, [(o, p) for o, row in zip(owners, rows, strict=True)
                                                     for p in row.phones])
        await self._insert_children(EmailAddressRow, [(o, e) for o, row in zip(owners, rows, strict=True)
                                                      for e in row.emails])
        self.report.created += len(rows)

    async def _company_numbers(self, people: list[PreparedRow]) -> None:
        """Switchboard numbers found on people's rows are added to their company's file."""
        by_company: dict[int, PreparedRow] = {}
        for row in people:
            org_id = row.values.get("organization_id")
            if row.company_phones and org_id:
                holder = by_company.setdefault(org_id, PreparedRow(row.line, {}, [], [], [], "", "", "", ""))
                _extend_numbers(holder.phones, row.company_phones)
        if by_company:
            await self._add_numbers("organization_id", by_company)

    # --- updating stored files -------------------------------------------------------------------

    async def _update_files(self, table: type[Any], column: str, files: dict[int, PreparedRow]) -> None:
        """Imported values overwrite stored ones (attributes merge); numbers are added, never removed."""
        if not files:
            return
        stored = {row.id: row for row in await self.session.scalars(select(table).where(table.id.in_(list(files))))}
        added = await self._add_numbers(column, files)
        for file_id, row in files.items():
            changed = await self._update_values(table, stored[file_id], row.values)
            if changed or file_id in added:
                self.report.updated += 1
            else:
                self.report.duplicates += 1

    async def _update_values(self, table: type[Any], stored: Any, values: dict[str, Any]) -> bool:
        changes = {name: value for name, value in values.items()
                   if name in _UPDATABLE + ("name", "domain", "organization_id") and value not in (None, "")
                   and getattr(stored, name) != value}
        merged = {**(stored.attributes or {}), **values.get("attributes", {})}
        if merged != (stored.attributes or {}):
            changes["attributes"] = merged
        if table is Contact and ("first_name" in changes or "last_name" in changes):
            changes["name_key"] = contact_key(changes.get("first_name", stored.first_name),
                                              changes.get("last_name", stored.last_name))
        if changes:
            await self.session.execute(update(table).where(table.id == stored.id)
                                       .values(updated_at=self.now, **changes))
        return bool(changes)

    async def _add_numbers(self, column: str, files: dict[int, PreparedRow]) -> set[int]:
        """Insert the numbers and addresses each file does not have yet; return the files that gained some."""
        owner_ids = list(files)
        have_phones: set[tuple[int, str]] = set()
        have_emails: set[tuple[int, str]] = set()
        for batch in _batches(owner_ids):
            owner = getattr(PhoneNumberRow, column)
            rows = await self.session.execute(select(owner, PhoneNumberRow.e164, PhoneNumberRow.raw)
                                              .where(owner.in_(batch)))
            for owner_id, e164, raw in rows:
                have_phones.update({(owner_id, e164 or raw), (owner_id, raw)})
            email_owner = getattr(EmailAddressRow, column)
            rows = await self.session.execute(select(email_owner, EmailAddressRow.address)
                                              .where(email_owner.in_(batch)))
            have_emails.update((owner_id, address) for owner_id, address in rows)
        phones, emails, gained = [], [], set()
        for owner_id, row in files.items():
            for phone in row.phones:
                if (owner_id, phone["e164"] or phone["raw"]) not in have_phones:
                    phones.append(({column: owner_id}, phone))
                    gained.add(owner_id)
            for email in row.emails:
                if (owner_id, email["address"]) not in have_emails:
                    emails.append(({column: owner_id}, email))
                    gained.add(owner_id)
        await self._insert_children(PhoneNumberRow, phones)
        await self._insert_children(EmailAddressRow, emails)
        return gained

    async def _insert_returning(self, table: type[Any], rows: list[dict[str, Any]]) -> list[int]:
        """Insert many rows in one executemany and return their ids in row order."""
        stamped = [{"created_at": self.now, "updated_at": self.now, **row} for row in rows]
        connection = await self.session.connection()
        core = table.__table__
        if connection.dialect.name != "sqlite":
            result = await connection.execute(insert(core).returning(core.c.id, sort_by_parameter_order=True),
                                              stamped)
            return list(result.scalars())
        # SQLite gives rows without an explicit key max(rowid)+1, and from the first insert on this
        # transaction holds the database's write lock: the new ids are the contiguous block ending at max(id).
        await _sqlite_executemany(connection, core, stamped)
        last = int(await connection.scalar(select(func.max(core.c.id))) or 0)
        return list(range(last - len(rows) + 1, last + 1))

    async def _insert_children(self, table: type[Any], pairs: list[tuple[dict[str, int], dict[str, Any]]]) -> None:
        if not pairs:
            return
        connection = await self.session.connection()
        rows = [{**owner, **values} for owner, values in pairs]
        if connection.dialect.name == "sqlite":
            await _sqlite_executemany(connection, table.__table__, rows)
        else:
            await connection.execute(insert(table.__table__), rows)


async def _sqlite_executemany(connection: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """One driver-level executemany: SQLAlchemy's per-row parameter processing would cost more than SQLite's
    own work. Values are written exactly as the column types would write them."""
    columns = [column for column in table.c if column.name in rows[0]]
    names = [column.name for column in columns]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in columns)})"
    encoded = [(column.name, encoder) for column in columns
               if (encoder := _SQLITE_ENCODERS.get(type(column.type).__name__)) is not None]
    if encoded:
        rows = [{**row, **{name: encode(row[name]) for name, encode in encoded}} for row in rows]
    values = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    await connection.exec_driver_sql(sql, [values(row) for row in rows])


@lru_cache(maxsize=8)  # every row of a chunk carries the same created_at/updated_at
def _sqlite_datetime(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_SQLITE_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "UTCDateTime": _sqlite_datetime,
    "JSON": lambda value: None if value is None else json.dumps(value),
}


def _merge(first: PreparedRow, later: PreparedRow) -> None:
    """A later row for the same file: its numbers and addresses join the first row's."""
    _extend_numbers(first.phones, later.phones)
    _extend_numbers(first.company_phones, later.company_phones)
    known = {e["address"] for e in first.emails}
    first.emails.extend(e for e in later.emails if e["address"] not in known)


def _extend_numbers(phones: list[dict[str, Any]], more: list[dict[str, Any]]) -> None:
    """The same number written twice (`030 1234567`, `030/1234567`) is one number."""
    known = {phone["e164"] or phone["raw"] for phone in phones}
    for phone in more:
        key = phone["e164"] or phone["raw"]
        if key not in known:
            known.add(key)
            phones.append(phone)


class _Existing:
    """Stored contacts that rows of one chunk may belong to, plus the chunk's not-yet-written people."""

    def __init__(self) -> None:
        self.by_email: dict[str, list[tuple[int, str]]] = {}
        self.by_phone: dict[str, list[tuple[int, str]]] = {}
        self.by_name: dict[tuple[str, int | None], int] = {}
        self.pending: dict[int, PreparedRow] = {}

    def add_emails(self, rows: Iterable[Any]) -> None:
        for address, contact_id, name_key in rows:
            self.by_email.setdefault(address, []).append((contact_id, name_key))

    def add_phones(self, rows: Iterable[Any]) -> None:
        for e164, contact_id, name_key in rows:
            self.by_phone.setdefault(e164, []).append((contact_id, name_key))

    def add_names(self, rows: Iterable[Any]) -> None:
        for name_key, organization_id, contact_id in rows:
            self.by_name.setdefault((name_key, organization_id), contact_id)

    def match(self, row: PreparedRow) -> int | None:
        """The contact this row belongs to: by email, then phone (with a compatible name), then name."""
        for email in row.emails:
            found = _compatible(self.by_email.get(email["address"], []), row.name_key)
            if found is not None:
                return found
        for phone in row.phones:
            found = _compatible(self.by_phone.get(phone["e164"], []), row.name_key) if phone["e164"] else None
            if found is not None:
                return found
        if row.name_key:
            return self.by_name.get((row.name_key, row.values.get("organization_id")))
        return None

    def remember_pending(self, row: PreparedRow) -> None:
        """Rows later in the same chunk must find this one; negative ids mark 'not written yet'."""
        pending_id = -(len(self.pending) + 1)
        self.pending[pending_id] = row
        entry = (pending_id, row.name_key)
        for email in row.emails:
            self.by_email.setdefault(email["address"], []).append(entry)
        for phone in row.phones:
            if phone["e164"]:
                self.by_phone.setdefault(phone["e164"], []).append(entry)
        if row.name_key:
            self.by_name.setdefault((row.name_key, row.values.get("organization_id")), pending_id)


def _compatible(owners: list[tuple[int, str]], name_key: str) -> int | None:
    for contact_id, stored_key in owners:
        if not name_key or not stored_key or stored_key == name_key:
            return contact_id
    return None


def _batches(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
