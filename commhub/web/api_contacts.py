"""/api/contacts and /api/organizations: search, caller-ID match, CRUD, timelines and notes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.contacts.names import contact_key, fold
from commhub.errors import BadRequest, ValidationFailed
from commhub.keys import CALL_DATABASE, CALLER_ID, DISPATCHER, HUB, SESSIONS, SETTINGS
from commhub.log import get_logger
from commhub.mail.filing import own_addresses
from commhub.mail.refiling import refile
from commhub.push.dispatch import write_and_push
from commhub.store import files, history
from commhub.store.models import Contact, Organization
from commhub.telephony import notes
from commhub.web.bodies import (
    current_agent,
    int_param,
    path_id,
    read_json,
    require_admin,
)
from commhub.web.schemas import ContactIn, ContactPatch, NoteIn, OrganizationIn

log = get_logger("commhub.api")
_SEARCH_PARAMS = ("q", "phone", "email")


async def list_contacts(request: web.Request) -> web.Response:
    given = [name for name in _SEARCH_PARAMS if name in request.query]
    if len(given) > 1:
        raise BadRequest(f"give one of q, phone or email, not {' and '.join(given)}")
    if given == ["phone"]:
        match = await request.app[CALLER_ID].match(request.query["phone"])
        return web.json_response(match.to_json())
    limit = int_param(request, "limit", 50, high=200)
    async with request.app[SESSIONS]() as session:
        if given == ["email"]:
            found = await files.contacts_by_email(session, request.query["email"])
        elif given == ["q"]:
            found = await files.search_contacts(session, request.query["q"], limit)
        else:
            after = int_param(request, "after", 0, low=0, high=2**31 - 1)
            found = list(await session.scalars(select(Contact).where(Contact.id > after)
                                               .order_by(Contact.id).limit(limit)))
        items = await files.contacts_json(session, found)
    return web.json_response({"items": items})


async def create_contact(request: web.Request) -> web.Response:
    body = await read_json(request, ContactIn)
    record = body.to_record()
    async with request.app[SESSIONS]() as session, session.begin():
        if body.organization_id is not None:
            await _existing_organization(session, body.organization_id)
            record.company = ""
        if record.is_company_only():
            raise ValidationFailed("a contact needs a first or last name; create a company at /api/organizations")
        _kind, contact_id, problems = await files.create_file(session, record, _region(request),
                                                              organization_id=body.organization_id)
        await refile(session, own_addresses(request.app[SETTINGS]), addresses=record.emails)
    async with request.app[SESSIONS]() as session:
        payload = await files.contact_json(session, await files.get_contact(session, contact_id))
    log.info("contact.created", id=contact_id, by=current_agent(request).id)
    return web.json_response({**payload, "warnings": problems.messages}, status=201)


async def _existing_organization(session: AsyncSession, organization_id: int) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise ValidationFailed(f"organization_id {organization_id} does not exist",
                               details=[{"field": "organization_id", "problem": "no such organization"}])
    return organization


def _region(request: web.Request) -> str:
    return request.app[SETTINGS].phone.default_region


async def get_contact(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        contact = await files.get_contact(session, path_id(request))
        return web.json_response(await files.contact_json(session, contact))


async def patch_contact(request: web.Request) -> web.Response:
    contact_id = path_id(request)
    body = await read_json(request, ContactPatch)
    sent = body.model_fields_set
    record = body.to_record()
    problems = files.Problems()
    async with request.app[SESSIONS]() as session, session.begin():
        contact = await files.get_contact(session, contact_id)
        changes = _scalar_changes(body, sent)
        if "organization_id" in sent and body.organization_id is not None:
            await _existing_organization(session, body.organization_id)
        if "company" in sent and "organization_id" not in sent:
            changes["organization_id"] = await files.find_or_create_organization(session, record)
        if sent & {"first_name", "last_name"}:
            changes["name_key"] = contact_key(changes.get("first_name", contact.first_name),
                                              changes.get("last_name", contact.last_name))
        for name, value in changes.items():
            setattr(contact, name, value)
        await files.replace_numbers(
            session, {"contact_id": contact_id},
            files.phone_values(record.phones, _region(request), problems) if "phones" in sent else None,
            files.email_values(record.emails, problems) if "emails" in sent else None)
        if "emails" in sent:
            await refile(session, own_addresses(request.app[SETTINGS]), addresses=record.emails)
    async with request.app[SESSIONS]() as session:
        payload = await files.contact_json(session, await files.get_contact(session, contact_id))
    return web.json_response({**payload, "warnings": problems.messages})


_SCALARS = ("salutation", "title", "first_name", "last_name", "position", "customer_class", "street",
            "postal_code", "city", "country", "organization_id", "attributes")


def _scalar_changes(body: ContactPatch, sent: set[str]) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in _SCALARS if name in sent}
    if changes.get("attributes") is None and "attributes" in changes:
        changes["attributes"] = {}
    return changes


async def delete_contact(request: web.Request) -> web.Response:
    admin = require_admin(request)
    contact_id = path_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        await session.delete(await files.get_contact(session, contact_id))
    log.info("contact.deleted", id=contact_id, by=admin.id)
    return web.Response(status=204)


async def contact_history(request: web.Request) -> web.Response:
    contact_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        await files.get_contact(session, contact_id)
        page = await history.timeline(session, contact_id=contact_id, limit=int_param(request, "limit", 50, high=200),
                                      before=request.query.get("before"))
    return web.json_response(page)


async def add_contact_note(request: web.Request) -> web.Response:
    return await _add_note(request, "contact")


async def list_organizations(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, high=200)
    statement = select(Organization).order_by(Organization.name_key, Organization.id).limit(limit)
    if "q" in request.query:
        statement = statement.where(Organization.name_key.contains(fold(request.query["q"]), autoescape=True))
    async with request.app[SESSIONS]() as session:
        found = list(await session.scalars(statement))
        items = await files.organizations_json(session, found)
    return web.json_response({"items": items})


async def create_organization(request: web.Request) -> web.Response:
    body = await read_json(request, OrganizationIn)
    async with request.app[SESSIONS]() as session, session.begin():
        record = body.to_record()
        _kind, organization_id, problems = await files.create_file(session, record, _region(request))
        organization = await files.get_organization(session, organization_id)
        await refile(session, own_addresses(request.app[SETTINGS]), addresses=record.emails,
                     domains=[organization.domain or ""])
    async with request.app[SESSIONS]() as session:
        payload = await files.organization_json(session, await files.get_organization(session, organization_id))
    return web.json_response({**payload, "warnings": problems.messages}, status=201)


async def get_organization(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        organization = await files.get_organization(session, path_id(request))
        return web.json_response(await files.organization_json(session, organization))


async def organization_history(request: web.Request) -> web.Response:
    organization_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        await files.get_organization(session, organization_id)
        page = await history.timeline(session, organization_id=organization_id,
                                      limit=int_param(request, "limit", 50, high=200),
                                      before=request.query.get("before"))
    return web.json_response(page)


async def add_organization_note(request: web.Request) -> web.Response:
    return await _add_note(request, "organization")


async def _add_note(request: web.Request, kind: str) -> web.Response:
    """The same note writer as the agent WebSocket's: other sessions of the agent see it at once."""
    file_id, agent_id = path_id(request), current_agent(request).id
    body = await read_json(request, NoteIn)
    app = request.app
    entry = await write_and_push(app[CALL_DATABASE], app[DISPATCHER], app[HUB].deliver,
                                 lambda sql, dispatcher: notes.note_on_file(sql, dispatcher, kind, file_id,
                                                                             agent_id, body.text))
    return web.json_response(entry, status=201)
