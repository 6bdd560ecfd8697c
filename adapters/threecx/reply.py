"""What 3CX reads: `{}` for a journal entry, and the contact list its CRM template maps on lookup."""

from __future__ import annotations

import json
from typing import Any

from commhub.telephony.contract import CallEvent, LookupAnswer, LookupMatch, RawRequest, Reply, SourceContext

from adapters.threecx.parse import JOURNAL_REPLY


def journal_reply(request: RawRequest, events: list[CallEvent], source: SourceContext) -> Reply:
    return JOURNAL_REPLY


def lookup_contacts(answer: LookupAnswer) -> Reply:
    """`{"contacts": [...]}`; empty for a withheld caller or no match, so 3CX shows the number."""
    contacts = [] if answer.withheld else [contact(match) for match in answer.matches]
    return Reply(json.dumps({"contacts": contacts}, ensure_ascii=False), "application/json")


def contact(match: LookupMatch) -> dict[str, Any]:
    # 3CX shows "FirstName LastName": a file without those (an organisation) shows its name.
    named = bool(match.first_name or match.last_name)
    company = match.company or (match.name if match.kind == "organization" else None)
    return {
        "id": f"{match.kind}-{match.id}",
        "firstname": match.first_name or "",
        "lastname": match.last_name if named else match.name,
        "company": company or "",
        "email": match.email or "",
        "businessphone": match.phone or "",
        "mobilephone": match.mobile or "",
        "url": match.url,
    }
