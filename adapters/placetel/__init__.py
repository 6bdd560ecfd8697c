"""Placetel Notify API (IncomingCall, OutgoingCall, CallAccepted, HungUp)."""

from __future__ import annotations

from commhub.telephony.contract import AdapterSpec, empty_reply

from .parse import parse
from .verify import verify

SPEC = AdapterSpec(
    name="placetel",
    title="Placetel",
    verify=verify,
    parse=parse,
    reply=empty_reply,
    options={
        "url_token": ("true: accept requests without X-PLACETEL-SIGNATURE when the URL carries ?token=<secret> "
                      "(accounts without a signing secret); default false: the signature is required"),
    },
    docs=("In the Placetel web portal (Settings → External APIs) enter https://<commhub>/hooks/<source> as the "
          "Notify URL, set the source's secret as the shared secret, and tick the numbers to notify; "
          "commhub checks X-PLACETEL-SIGNATURE on every request."),
)
