"""sipgate.io push API (newCall, answer, hangup)."""

from __future__ import annotations

from commhub.telephony.contract import AdapterSpec

from .parse import parse
from .reply import reply
from .verify import verify

SPEC = AdapterSpec(
    name="sipgate",
    title="sipgate.io",
    verify=verify,
    parse=parse,
    reply=reply,
    options={
        "verify_signature": ("true: also require sipgate's RSA signature (x-sipgate-signature) over the body; "
                             "default false (the ?token= in the URL is always required)"),
    },
    docs=("In sipgate's web app set the incoming and outgoing webhook URL of sipgate.io to "
          "https://<commhub>/hooks/<source>?token=<secret>; commhub answers each newCall with onAnswer/onHangup "
          "so sipgate also reports when the call is answered and ends."),
)
