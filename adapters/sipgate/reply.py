"""sipgate's XML replies. Only the reply to `newCall` matters: its `onAnswer`/`onHangup` URLs are the
only way to receive the answer and hangup events of that call (sipgate discards replies to those)."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from commhub.telephony.contract import CallEvent, Phase, RawRequest, Reply, SourceContext

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def reply(request: RawRequest, events: list[CallEvent], source: SourceContext) -> Reply:
    if any(event.phase is Phase.RINGING for event in events):
        return follow_call(source.hook_url)
    return empty_response()


def follow_call(url: str) -> Reply:
    """Ask for this call's answer and hangup events at our own hook URL (it carries `?token=`)."""
    quoted = quoteattr(url)
    return Reply(f"{DECLARATION}<Response onAnswer={quoted} onHangup={quoted}/>", "application/xml")


def empty_response() -> Reply:
    return Reply(f"{DECLARATION}<Response/>", "application/xml")
