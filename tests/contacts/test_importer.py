"""The importer: records become files, re-imports update instead of duplicating, bad rows are reported."""

from __future__ import annotations

from sqlalchemy import func, select

from commhub.commands.common import Database
from commhub.contacts.importer import Importer
from commhub.contacts.records import ContactRecord, ImportRow, PhoneRecord
from commhub.store.models import Contact, EmailAddressRow, Organization, PhoneNumberRow


def row(line: int, **fields: object) -> ImportRow:
    phones = [p if isinstance(p, PhoneRecord) else PhoneRecord(str(p)) for p in fields.pop("phones", [])]  # type: ignore[attr-defined]
    return ImportRow(line, ContactRecord(phones=phones, **fields))  # type: ignore[arg-type]


async def count(db: Database, table: type) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


SHEET = [
    row(2, first_name="Jürgen", last_name="Müller", company="Müller Haustechnik GmbH", customer_class="A",
        phones=["030 1234567-10", PhoneRecord("+49 30 1234567-0", "switchboard")], emails=["J.Mueller@MH.example"],
        attributes={"Kundennummer": "K-1"}),
    row(3, first_name="Sabine", last_name="Weiß", company="Müller Haustechnik GmbH",
        phones=[PhoneRecord("030 1234567-0", "switchboard")], emails=["info@mh.example"]),
    row(4, first_name="Tom", last_name="Weiß", company="Müller Haustechnik GmbH", emails=["info@mh.example"]),
    row(5, company="Bäckerei Schön OHG", phones=[PhoneRecord("089 2345678", "switchboard")]),
    ImportRow(6, error="7 fields, the header has 6"),
    row(7),
    row(8, first_name="Jürgen", last_name="Müller", company="Müller Haustechnik GmbH", phones=["0171 2345678"]),
]


async def test_first_import_creates_and_reports(db: Database) -> None:
    report = await Importer(db.sessions).run(SHEET)
    assert (report.created, report.updated, report.duplicates) == (4, 0, 1)
    assert report.rejected == [(6, "7 fields, the header has 6"),
                               (7, "nothing to identify the contact: no name, company, phone or email")]
    assert await count(db, Contact) == 3 and await count(db, Organization) == 2
    async with db.sessions() as session:
        jurgen = await session.scalar(select(Contact).where(Contact.first_name == "Jürgen"))
        numbers = set(await session.scalars(select(PhoneNumberRow.e164).where(PhoneNumberRow.contact_id == jurgen.id)))
        company_numbers = list(await session.scalars(
            select(PhoneNumberRow.e164).where(PhoneNumberRow.organization_id == jurgen.organization_id)))
    assert numbers == {"+4930123456710", "+491712345678"}  # line 8 merged into line 2's file
    assert company_numbers == ["+493012345670"]  # the switchboard went to the company, once
    assert jurgen.attributes == {"Kundennummer": "K-1"} and jurgen.customer_class == "A"


async def test_reimport_is_idempotent(db: Database) -> None:
    await Importer(db.sessions).run(SHEET)
    before = [await count(db, table) for table in (Contact, Organization, PhoneNumberRow, EmailAddressRow)]
    report = await Importer(db.sessions).run(SHEET)
    assert (report.created, report.updated) == (0, 0)
    assert [await count(db, table) for table in (Contact, Organization, PhoneNumberRow, EmailAddressRow)] == before


async def test_reimport_with_changes_updates_the_same_file(db: Database) -> None:
    await Importer(db.sessions).run(SHEET)
    changed = [row(2, first_name="Jürgen", last_name="Müller", company="Müller Haustechnik GmbH",
                   position="Geschäftsführer", emails=["j.mueller@mh.example"], attributes={"Kundennummer": "K-1",
                                                                                             "Geburtstag": "1968"})]
    report = await Importer(db.sessions).run(changed)
    assert (report.created, report.updated) == (0, 1)
    async with db.sessions() as session:
        jurgen = await session.scalar(select(Contact).where(Contact.first_name == "Jürgen"))
    assert jurgen.position == "Geschäftsführer"
    assert jurgen.attributes == {"Kundennummer": "K-1", "Geburtstag": "1968"}


async def test_colleagues_sharing_a_line_stay_two_people(db: Database) -> None:
    report = await Importer(db.sessions).run([
        row(2, first_name="Petra", last_name="Schön", company="Schön OHG", phones=["089 2345678"]),
        row(3, first_name="Lukas", last_name="Schön", company="Schön OHG", phones=["089 2345678"])])
    assert report.created == 2 and await count(db, Contact) == 2


async def test_unusable_numbers_are_kept_as_text_with_a_warning(db: Database) -> None:
    report = await Importer(db.sessions).run([row(2, first_name="A", last_name="B", phones=["bitte mailen"],
                                                  emails=["kaputt@"])])
    assert report.created == 1
    assert [line for line, _ in report.warnings] == [2, 2]
    async with db.sessions() as session:
        stored = list(await session.execute(select(PhoneNumberRow.raw, PhoneNumberRow.e164)))
    assert stored == [("bitte mailen", None)]


async def test_large_import_spans_chunks(db: Database) -> None:
    rows = [row(n + 2, first_name=f"Vorname{n}", last_name=f"Nachname{n}", company=f"Firma {n % 7}",
                phones=[f"030 {5000000 + n}"], emails=[f"p{n}@example.com"]) for n in range(4500)]
    progress: list[int] = []
    report = await Importer(db.sessions, chunk_rows=2000, progress=lambda r: progress.append(r.rows)).run(rows)
    assert report.created == 4500 and report.rejected == []  # companies made on the way are not rows
    assert progress == [2000, 4000, 4500]
    again = await Importer(db.sessions).run(rows)
    assert (again.created, again.updated, again.duplicates) == (0, 0, 4500)


async def test_a_large_file_is_prepared_in_a_second_process_with_the_same_result(db: Database) -> None:
    lines = ["Vorname;Nachname;Firma;Telefon;Mobil;E-Mail;Kundennummer"]
    lines += [f"Vorname{n};Müller{n};Firma {n % 50};030 {6000000 + n};0171 {4000000 + n};m{n}@example.com;K-{n}"
              for n in range(5000)]
    lines += ["a;b;c;d;e;f;g;h;i", ";;;;;;K-x"]
    data = "\r\n".join(lines).encode("cp1252")
    progress: list[int] = []
    parallel = Importer(db.sessions, parallel_from_bytes=0, chunk_rows=2000, progress=lambda r: progress.append(r.rows))
    report = await parallel.run_file("kunden.csv", data)
    assert (report.rows, report.created, report.duplicates) == (5002, 5000, 0)
    assert [line for line, _ in report.rejected] == [5002, 5003]
    assert progress[-1] == 5002 and progress == sorted(progress)
    assert await count(db, Contact) == 5000 and await count(db, PhoneNumberRow) == 10000
    again = await parallel.run_file("kunden.csv", data)
    assert (again.created, again.updated, again.duplicates) == (0, 0, 5000)
