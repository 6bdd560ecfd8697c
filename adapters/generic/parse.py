"""A generic request is either commhub's own format or Zammad's generic-CTI shape; `event` tells which."""

from __future__ import annotations

from collections.abc import Mapping

from commhub.telephony.contract import BadPayload, CallEvent, RawRequest, SourceContext, first

from .commhub_format import EVENTS as COMMHUB_EVENTS
from .commhub_format import parse_commhub
from .zammad_format import EVENTS as ZAMMAD_EVENTS
from .zammad_format import parse_zammad


def parse(request: RawRequest, source: SourceContext) -> list[CallEvent]:
    fields = request.fields()
    if is_zammad_shape(fields):
        return [parse_zammad(fields)]
    return [parse_commhub(fields)]


def is_zammad_shape(fields: Mapping[str, list[str]]) -> bool:
    event = first(fields, "event") or ""
    if event in ZAMMAD_EVENTS:
        return True
    if event in COMMHUB_EVENTS:
        return False
    known = ", ".join([*COMMHUB_EVENTS, *ZAMMAD_EVENTS])
    raise BadPayload(f"unknown event {event!r} (known: {known})", field="event")
