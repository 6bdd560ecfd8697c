"""Who may post to a generic source.

A request carrying `X-Commhub-Signature` is checked by that signature only (HMAC-SHA256 over
`"<timestamp>." + raw body`, the Stripe/Slack scheme): signed too long ago or seen before is refused.
A request without one is accepted only with the source secret in the URL (`?token=`), the one thing
scripts written for Zammad's generic CTI can do. The token has no replay protection; a replayed
event is still stored once, because the core applies call events idempotently.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from commhub.telephony.contract import (
    RawRequest,
    Replayed,
    SourceContext,
    VerificationFailed,
    check_url_token,
    equal_secrets,
)

SIGNATURE_HEADER = "X-Commhub-Signature"
TIMESTAMP_HEADER = "X-Commhub-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Commhub-Signature` value a sender computes: `v1=<hex HMAC-SHA256>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(request: RawRequest, source: SourceContext) -> None:
    header = request.header(SIGNATURE_HEADER)
    if header is not None:
        check_signature(request, source, header)
    elif source.option("require_signature", False):
        raise VerificationFailed(f"this source accepts signed requests only ({SIGNATURE_HEADER})")
    else:
        check_url_token(request, source)


def check_signature(request: RawRequest, source: SourceContext, header: str) -> None:
    if not source.secret:
        raise VerificationFailed("this source has no secret to check signatures with")
    if not request.body:
        # the signature covers the body only: a signed GET would leave its query unprotected
        raise VerificationFailed("a signed request needs a body; send the event as JSON with POST")
    timestamp = signed_at(request)
    expected = sign(source.secret, timestamp, request.body)
    if not any(equal_secrets(given, expected) for given in offered_signatures(header)):
        raise VerificationFailed(f"wrong {SIGNATURE_HEADER} for this body and timestamp")
    refuse_stale(timestamp, source)
    refuse_second_use(expected, timestamp, source)


def signed_at(request: RawRequest) -> int:
    value = (request.header(TIMESTAMP_HEADER) or "").strip()
    # ASCII digits only ("²".isdigit() is true, and int() refuses it); 12 digits reach the year 33658
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise VerificationFailed(f"{TIMESTAMP_HEADER} must be the signing time in Unix seconds")
    return int(value)


def offered_signatures(header: str) -> list[str]:
    """`v1=…` entries of the header; several are allowed (comma-separated) as in Stripe's scheme."""
    parts = (part.strip() for part in header.split(","))
    return [part[:3] + part[3:].lower() for part in parts if part.startswith("v1=")]


def tolerance(source: SourceContext) -> timedelta:
    return timedelta(seconds=int(source.option("tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)))


def refuse_stale(timestamp: int, source: SourceContext) -> None:
    try:
        age = source.now() - datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):  # beyond the year 9999: as stale as it gets
        raise Replayed(f"signed at {timestamp}, which is no time at all") from None
    if abs(age) > tolerance(source):
        raise Replayed(f"signed {int(age.total_seconds())} s away from now; allowed: {tolerance(source)}")


def refuse_second_use(signature: str, timestamp: int, source: SourceContext) -> None:
    # remembered until the timestamp check refuses it anyway
    until = datetime.fromtimestamp(timestamp, UTC) + tolerance(source)
    if not source.replay.first_time(f"generic:{source.name}:{signature}", until=until):
        raise Replayed("this signed request was already received")
