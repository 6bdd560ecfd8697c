"""TwiML replies: `<Response/>` for everything, `<Dial>` for a new inbound call when `dial` is set.

The `<Dial action>` points back at this source's hook, so Twilio reports there whether the dialled
agent answered (`DialCallStatus`). Once that request is answered with an empty `<Response/>`,
Twilio hangs up the caller: the call ends with the dialled conversation.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from commhub.telephony.contract import CallEvent, Phase, RawRequest, Reply, SourceContext

EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
CONTENT_TYPE = "application/xml"


def twiml_reply(request: RawRequest, events: list[CallEvent], source: SourceContext) -> Reply:
    target = source.option("dial")
    if target and is_new_inbound_call(request, events):
        return Reply(dial_twiml(str(target), source.hook_url), CONTENT_TYPE)
    return empty_twiml()


def empty_twiml() -> Reply:
    return Reply(EMPTY, CONTENT_TYPE)


def is_new_inbound_call(request: RawRequest, events: list[CallEvent]) -> bool:
    """The voice URL request: Twilio waits for TwiML telling it what to do with the caller."""
    fields = request.fields()
    return (len(events) == 1 and events[0].phase is Phase.RINGING and events[0].direction == "in"
            and "SequenceNumber" not in fields and "DialCallStatus" not in fields)


def dial_twiml(target: str, action_url: str) -> str:
    noun = dial_noun(target)
    return ('<?xml version="1.0" encoding="UTF-8"?><Response>'
            f'<Dial action={quoteattr(action_url)} answerOnBridge="true">{noun}</Dial></Response>')


def dial_noun(target: str) -> str:
    """`sip:…` -> `<Sip>`, `client:alice` -> `<Client>alice</Client>`, else a phone number."""
    if target.lower().startswith(("sip:", "sips:")):
        return f"<Sip>{escape(target)}</Sip>"
    if target.lower().startswith("client:"):
        return f"<Client>{escape(target[len('client:'):])}</Client>"
    return f"<Number>{escape(target)}</Number>"
