"""FreeSWITCH: channel events in FreeSWITCH's header names, posted by commhub.lua or an event-socket bridge."""

from commhub.telephony.contract import AdapterSpec, check_url_token, empty_reply, lookup_text

from adapters.freeswitch.parse import parse_event

SPEC = AdapterSpec(
    name="freeswitch",
    title="FreeSWITCH (Lua event script or event-socket bridge)",
    verify=check_url_token,
    parse=parse_event,
    reply=empty_reply,
    lookup_reply=lookup_text,
    docs="Run adapters/freeswitch/snippets/commhub.lua as a Lua startup script: it posts CHANNEL_CREATE, "
         "CHANNEL_ANSWER and CHANNEL_HANGUP_COMPLETE to https://<commhub>/hooks/<source-name>?token=<secret>. "
         "mod_cidlookup with snippets/cidlookup.conf.xml asks /lookup/<source-name> for the caller's name.",
)
