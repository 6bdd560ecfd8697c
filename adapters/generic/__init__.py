"""commhub's own webhook format, signed with HMAC-SHA256, plus Zammad's generic-CTI shape."""

from __future__ import annotations

from commhub.telephony.contract import AdapterSpec

from .parse import parse
from .reply import reply
from .verify import verify

SPEC = AdapterSpec(
    name="generic",
    title="Generic (any PBX that can call a URL)",
    verify=verify,
    parse=parse,
    reply=reply,
    options={
        "tolerance_seconds": "how far (seconds) X-Commhub-Timestamp may be from commhub's clock; default 300",
        "require_signature": "true: refuse unsigned requests even with the right ?token=; default false",
    },
    docs=("POST commhub's JSON events (ringing/answered/ended) to https://<commhub>/hooks/<source>, signed "
          "with X-Commhub-Timestamp and X-Commhub-Signature: v1=hex(HMAC-SHA256(secret, timestamp + '.' + body)); "
          "scripts written for Zammad's generic CTI (newCall/answer/hangup) work unchanged when the URL "
          "carries ?token=<secret>."),
)
