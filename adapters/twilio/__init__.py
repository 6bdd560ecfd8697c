"""Twilio Programmable Voice: voice URL, status callbacks and `<Dial action>`, signed with the auth token."""

from commhub.telephony.contract import AdapterSpec

from adapters.twilio.parse import parse_request
from adapters.twilio.reply import twiml_reply
from adapters.twilio.verify import verify_signature

SPEC = AdapterSpec(
    name="twilio",
    title="Twilio Programmable Voice",
    verify=verify_signature,
    parse=parse_request,
    reply=twiml_reply,
    options={
        "dial": "where a new inbound call is forwarded (`<Dial>`): an E.164 number, a `sip:` URI or "
                "`client:<identity>`; unset, commhub answers the voice URL with an empty `<Response/>`",
    },
    docs="Set the Twilio number's voice URL (\"A call comes in\", HTTP POST) and its status callback URL "
         "to https://<commhub>/hooks/<source-name>; the source's secret is the account's auth token, "
         "which signs every request (X-Twilio-Signature). With option `dial` commhub forwards new calls "
         "and learns from the <Dial action> whether the agent answered.",
    token_in_hook_url=False,  # the secret is the auth token: Twilio signs with it, it never goes in a URL
)
