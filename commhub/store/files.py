"""Customer files (contacts and organizations): the values written for a record, and CRUD.

The same value builders serve the API (one file at a time) and the bulk importer, so a number or an
address entered in either place is normalised the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.contacts.names import contact_key, display_name, fold, normalise_email
from commhub.contacts.phone import normalise, switchboard_prefix
from commhub.contacts.records import ContactRecord, PhoneRecord
from commhub.errors import NotFound, ValidationFailed
from commhub.store.models import (
    Contact,
    EmailAddressRow,
    Organization,
    PhoneNumberRow,
    utcnow,
)

_ADDRESS = ("street", "postal_code", "city", "country")
_PERSON = ("salutation", "title", "first_name", "last_name", "position")


@dataclass(slots=True)
class Problems:
    """Parts of a record that were not stored as given (a number that is not a number, …)."""

    messages: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.messages.append(message)


def _clean(value: str | None) -> str | None:
    return value.strip() or None if value else None


def contact_values(record: ContactRecord, organization_id: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {name: _clean(getattr(record, name)) for name in _PERSON + _ADDRESS}
    values.update(organization_id=organization_id, customer_class=record.customer_class or None,
                  name_key=contact_key(record.first_name, record.last_name), attributes=dict(record.attributes))
    return values


def organization_values(record: ContactRecord) -> dict[str, Any]:
    values: dict[str, Any] = {name: _clean(getattr(record, name)) for name in _ADDRESS}
    values.update(name=record.company.strip(), name_key=fold(record.company),
                  customer_class=record.customer_class or None, domain=_domain(record.company_domain),
                  attributes=dict(record.attributes))
    return values


def _domain(text: str) -> str | None:
    text = text.strip().lower().removeprefix("https://").removeprefix("http://").removeprefix("www.")
    return text.split("/", 1)[0] or None


def phone_values(phones: list[PhoneRecord], region: str, problems: Problems) -> list[dict[str, Any]]:
    rows, seen = [], set()
    for phone in phones:
        number = normalise(phone.raw, region)
        if number.e164 is None:
            problems.add(f"phone {phone.raw!r} kept as text only: "
                         f"{'withheld marker' if number.withheld else number.problem}")
        key = (number.e164 or phone.raw, phone.kind)
        if key in seen:
            continue
        seen.add(key)
        prefix = switchboard_prefix(phone.raw, number.e164) if phone.kind == "switchboard" and number.e164 else None
        rows.append({"kind": phone.kind, "raw": phone.raw[:100], "e164": number.e164,
                     "extension": number.extension, "switchboard_prefix": prefix})
    return rows


def email_values(emails: list[str], problems: Problems) -> list[dict[str, Any]]:
    rows, seen = [], set()
    for raw in emails:
        address = normalise_email(raw)
        if address is None:
            problems.add(f"email {raw!r} ignored: not an email address")
            continue
        if address not in seen:
            seen.add(address)
            rows.append({"address": address, "raw": raw.strip()[:320]})
    return rows


async def find_or_create_organization(session: AsyncSession, record: ContactRecord) -> int | None:
    if not record.company.strip():
        return None
    found = await session.scalar(select(Organization.id).where(Organization.name_key == fold(record.company))
                                 .order_by(Organization.id).limit(1))
    if found is not None:
        return found
    company_only = ContactRecord(company=record.company, company_domain=record.company_domain)
    return await _insert(session, Organization, organization_values(company_only))


async def _insert(session: AsyncSession, table: type[Any], values: dict[str, Any]) -> int:
    now = utcnow()
    result = await session.execute(insert(table).values(created_at=now, updated_at=now, **values)
                                   .returning(table.id))
    return int(result.scalar_one())


async def create_file(session: AsyncSession, record: ContactRecord, region: str,
                      organization_id: int | None = None) -> tuple[str, int, Problems]:
    """Store a new contact (or, for a company-only record, an organization). Returns (kind, id, problems).

    A contact joins `organization_id` when given, else the company its record names (found or created).
    """
    if record.is_empty():
        raise ValidationFailed("a customer file needs a name, a company, a phone number or an email address")
    problems = Problems()
    phones = phone_values(record.phones, region, problems)
    emails = email_values(record.emails, problems)
    if record.is_company_only():
        owner = {"organization_id": await _insert(session, Organization, organization_values(record))}
        kind = "organization"
    else:
        if organization_id is None:
            organization_id = await find_or_create_organization(session, record)
        owner = {"contact_id": await _insert(session, Contact, contact_values(record, organization_id))}
        kind = "contact"
    await _insert_numbers(session, owner, phones, emails)
    return kind, next(iter(owner.values())), problems


async def _insert_numbers(session: AsyncSession, owner: dict[str, int], phones: list[dict[str, Any]],
                          emails: list[dict[str, Any]]) -> None:
    if phones:
        await session.execute(insert(PhoneNumberRow), [{**owner, **row} for row in phones])
    if emails:
        await session.execute(insert(EmailAddressRow), [{**owner, **row} for row in emails])


async def replace_numbers(session: AsyncSession, owner: dict[str, int], phones: list[dict[str, Any]] | None,
                          emails: list[dict[str, Any]] | None) -> None:
    (column, owner_id), = owner.items()
    if phones is not None:
        await session.execute(delete(PhoneNumberRow).where(getattr(PhoneNumberRow, column) == owner_id))
    if emails is not None:
        await session.execute(delete(EmailAddressRow).where(getattr(EmailAddressRow, column) == owner_id))
    await _insert_numbers(session, owner, phones or [], emails or [])


async def get_contact(session: AsyncSession, contact_id: int) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}")
    return contact


async def get_organization(session: AsyncSession, organization_id: int) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise NotFound(f"no organization with id {organization_id}")
    return organization


async def _numbers_by_owner(session: AsyncSession, column: str, owner_ids: list[int]
                           ) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[str]]]:
    """Phones and emails of many files in two queries (a page of 200 files must not cost 400)."""
    phones: dict[int, list[dict[str, Any]]] = {owner_id: [] for owner_id in owner_ids}
    emails: dict[int, list[str]] = {owner_id: [] for owner_id in owner_ids}
    phone_owner, email_owner = getattr(PhoneNumberRow, column), getattr(EmailAddressRow, column)
    for phone in await session.scalars(select(PhoneNumberRow).where(phone_owner.in_(owner_ids))
                                       .order_by(PhoneNumberRow.id)):
        phones[getattr(phone, column)].append({"kind": phone.kind, "raw": phone.raw, "e164": phone.e164,
                                               "extension": phone.extension})
    for owner_id, address in await session.execute(select(email_owner, EmailAddressRow.address)
                                                   .where(email_owner.in_(owner_ids)).order_by(EmailAddressRow.id)):
        emails[owner_id].append(address)
    return phones, emails


def _common_json(row: Contact | Organization) -> dict[str, Any]:
    return {
        "id": row.id, "class": row.customer_class,
        "address": {name: getattr(row, name) for name in _ADDRESS},
        "attributes": row.attributes or {}, "owner_agent_id": row.owner_agent_id,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
    }


async def contacts_json(session: AsyncSession, contacts: list[Contact]) -> list[dict[str, Any]]:
    ids = [contact.id for contact in contacts]
    phones, emails = await _numbers_by_owner(session, "contact_id", ids)
    organization_ids = {contact.organization_id for contact in contacts if contact.organization_id is not None}
    organizations = {org.id: {"id": org.id, "name": org.name, "class": org.customer_class} for org in (
        await session.scalars(select(Organization).where(Organization.id.in_(organization_ids))))}
    items = []
    for contact in contacts:
        organization = organizations.get(contact.organization_id) if contact.organization_id else None
        name = display_name(contact.first_name, contact.last_name, contact.title)
        items.append({"kind": "contact", **_common_json(contact), "name": name or (organization or {}).get("name", ""),
                      **{field_: getattr(contact, field_) for field_ in _PERSON},
                      "organization": organization, "phones": phones[contact.id], "emails": emails[contact.id]})
    return items


async def contact_json(session: AsyncSession, contact: Contact) -> dict[str, Any]:
    return (await contacts_json(session, [contact]))[0]


async def organizations_json(session: AsyncSession, organizations: list[Organization]) -> list[dict[str, Any]]:
    phones, emails = await _numbers_by_owner(session, "organization_id", [org.id for org in organizations])
    return [{"kind": "organization", **_common_json(org), "name": org.name, "domain": org.domain,
             "phones": phones[org.id], "emails": emails[org.id]} for org in organizations]


async def organization_json(session: AsyncSession, organization: Organization) -> dict[str, Any]:
    return (await organizations_json(session, [organization]))[0]


async def search_contacts(session: AsyncSession, query: str, limit: int = 50) -> list[Contact]:
    """Contacts whose name, company or email contains the text (umlaut- and case-insensitive)."""
    key = fold(query)
    if not key:
        return []
    pattern = f"%{_escape_like(key)}%"
    org_ids = select(Organization.id).where(Organization.name_key.like(pattern, escape="\\"))
    email_owner = select(EmailAddressRow.contact_id).where(
        EmailAddressRow.address.like(f"%{_escape_like(query.strip().lower())}%", escape="\\"))
    statement = (select(Contact).where(or_(Contact.name_key.like(pattern, escape="\\"),
                                           Contact.organization_id.in_(org_ids), Contact.id.in_(email_owner)))
                 .order_by(Contact.name_key, Contact.id).limit(limit))
    return list(await session.scalars(statement))


async def contacts_by_email(session: AsyncSession, address: str) -> list[Contact]:
    normalised = normalise_email(address)
    if normalised is None:
        raise ValidationFailed(f"{address!r} is not an email address")
    owners = select(EmailAddressRow.contact_id).where(EmailAddressRow.address == normalised)
    return list(await session.scalars(select(Contact).where(Contact.id.in_(owners)).order_by(Contact.id)))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


