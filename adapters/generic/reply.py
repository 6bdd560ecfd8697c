"""What a generic sender gets back: Zammad's own `{}` for its shape, a short receipt for ours."""

from __future__ import annotations

import json

from commhub.telephony.contract import CallEvent, RawRequest, Reply, SourceContext

from .parse import is_zammad_shape


def reply(request: RawRequest, events: list[CallEvent], source: SourceContext) -> Reply:
    if is_zammad_shape(request.fields()):
        # Zammad answers `{}` unless it rejects or rewrites the call; scripts may parse the body
        return Reply("{}", "application/json")
    return Reply(json.dumps({"ok": True, "events": len(events)}), "application/json")
