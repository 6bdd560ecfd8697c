"""`GET /lookup/{source}?number=…`: the caller's name for the phone's display, in the vendor's format.

Phones ask this while ringing, so it is one caller-ID match and one query for the files' details.
Authenticated like the source's webhooks that cannot sign: `?token=<source secret>`, or an agent token.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.contacts.matching import CallerMatch, Candidate
from commhub.errors import BadRequest, Unauthorized
from commhub.keys import CALLER_ID, SESSIONS, SOURCES
from commhub.store.models import Contact, EmailAddressRow, PhoneNumberRow
from commhub.telephony.contract import LookupAnswer, LookupMatch, equal_secrets
from commhub.web.access import WEBHOOK, agent_for_token, count_failure, refuse_blocked
from commhub.web.console_session import bearer_token
from commhub.web.webhooks import base_url, reply_response

WITHHELD_LABEL = {"de": "Rufnummer unterdrückt", "en": "Withheld number"}


async def lookup(request: web.Request) -> web.Response:
    source = request.app[SOURCES].get(request.match_info["source"])
    await _authorise(request, source.secret)
    number = request.query.get("number")
    if number is None:
        raise BadRequest("give the caller's number: ?number=…", details={"field": "number"})
    if len(number) > 200:
        raise BadRequest("number: at most 200 characters", details={"field": "number"})
    if number.startswith(" ") and number.strip().replace(" ", "").isdigit():
        # An unencoded "+" in a query string arrives as a space (FreeSWITCH's mod_cidlookup sends
        # `${caller_id_number}` as it is): "+49 30…" reads " 49 30…".
        number = "+" + number.lstrip()
    match = await request.app[CALLER_ID].match(number)
    async with request.app[SESSIONS]() as session:
        matches = await _lookup_matches(session, match.candidates, base_url(request))
    answer = LookupAnswer(number=number, e164=match.number.e164, withheld=match.number.withheld,
                          display_name=display_name(match, str(source.options.get("language", "de"))),
                          matches=tuple(matches), ambiguous=match.ambiguous)
    return reply_response(source.spec.lookup_reply(answer))


async def _authorise(request: web.Request, secret: str) -> None:
    refuse_blocked(request, WEBHOOK)
    if equal_secrets(request.query.get("token"), secret):
        return
    token = bearer_token(request)
    if token is not None:
        await agent_for_token(request, token)
        return
    count_failure(request, WEBHOOK)
    raise Unauthorized("give the source's secret as ?token=… or an agent token")


def display_name(match: CallerMatch, language: str) -> str:
    if match.number.withheld:
        return WITHHELD_LABEL.get(language, WITHHELD_LABEL["en"])
    if not match.candidates:
        return match.facts.get("international") or match.number.e164 or match.number.raw
    best = match.candidates[0]
    name = best.name if not best.company or best.kind == "organization" else f"{best.name} ({best.company})"
    return name if not match.ambiguous else f"{name} +{len(match.candidates) - 1}"


async def _lookup_matches(session: AsyncSession, candidates: list[Candidate], base: str) -> list[LookupMatch]:
    people = [c.id for c in candidates if c.kind == "contact"]
    names: dict[int, tuple[str | None, str | None]] = {}
    emails: dict[int, str] = {}
    mobiles: dict[int, str] = {}
    if people:
        names = {cid: (first, last) for cid, first, last in await session.execute(
            select(Contact.id, Contact.first_name, Contact.last_name).where(Contact.id.in_(people)))}
        for cid, address in await session.execute(select(EmailAddressRow.contact_id, EmailAddressRow.address)
                                                  .where(EmailAddressRow.contact_id.in_(people))
                                                  .order_by(EmailAddressRow.id)):
            emails.setdefault(cid, address)
        for cid, e164 in await session.execute(select(PhoneNumberRow.contact_id, PhoneNumberRow.e164).where(
                PhoneNumberRow.contact_id.in_(people), PhoneNumberRow.kind == "mobile")):
            mobiles.setdefault(cid, e164)
    out = []
    for c in candidates:
        first, last = names.get(c.id, (None, None)) if c.kind == "contact" else (None, None)
        out.append(LookupMatch(
            kind=c.kind, id=c.id, name=c.name, first_name=first, last_name=last,
            company=c.company if c.kind == "contact" else c.name, customer_class=c.customer_class,
            email=emails.get(c.id) if c.kind == "contact" else None, phone=c.matched_number if c.via == "exact"
            else None, mobile=mobiles.get(c.id) if c.kind == "contact" else None,
            url=f"{base}/#/{'contacts' if c.kind == 'contact' else 'organizations'}/{c.id}"))
    return out
