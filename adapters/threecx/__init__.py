"""3CX: the PBX pulls commhub through a CRM template (contact lookup by number, call journal)."""

from commhub.telephony.contract import AdapterSpec, check_url_token

from adapters.threecx.parse import parse_journal
from adapters.threecx.reply import journal_reply, lookup_contacts

SPEC = AdapterSpec(
    name="threecx",
    title="3CX (CRM template: contact lookup and call journal)",
    verify=check_url_token,
    parse=parse_journal,
    reply=journal_reply,
    lookup_reply=lookup_contacts,
    options={
        "timezone": "IANA time zone of the 3CX server (e.g. Europe/Berlin) for [DateTime] values without "
                    "an offset; default UTC",
    },
    docs="Upload adapters/threecx/snippets/commhub-crm-template.xml in the 3CX admin console (Settings → "
         "CRM → Server side) and fill in commhub's URL, the source name and its secret. 3CX then looks "
         "contacts up at /lookup/<source-name>?number=…&token=… and journals every ended call to "
         "/hooks/<source-name>?token=…; 3CX cannot sign, so the secret rides in the URL.",
)
