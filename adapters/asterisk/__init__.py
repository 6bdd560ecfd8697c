"""Asterisk: call events in AMI's field names, posted by a dialplan CURL() or an AMI bridge."""

from commhub.telephony.contract import AdapterSpec, check_url_token, empty_reply, lookup_text

from adapters.asterisk.parse import parse_event

SPEC = AdapterSpec(
    name="asterisk",
    title="Asterisk (dialplan CURL() or AMI bridge)",
    verify=check_url_token,
    parse=parse_event,
    reply=empty_reply,
    lookup_reply=lookup_text,
    docs="Asterisk has no webhooks: add the CURL() lines of adapters/asterisk/snippets/extensions.conf to "
         "your dialplan (or let an AMI bridge forward Newchannel/DialBegin/BridgeEnter/Hangup) posting to "
         "https://<commhub>/hooks/<source-name>?token=<secret>; "
         "Set(CALLERID(name)=${CURL(https://<commhub>/lookup/<source-name>?token=<secret>&number=…)}) "
         "puts commhub's name for the caller on the phones.",
)
