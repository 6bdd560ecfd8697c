"""Placetel signs each request when a shared secret is set in its external-API settings:
`X-PLACETEL-SIGNATURE` = hex(HMAC-SHA256(secret, raw body)) (Placetel/call-control-notify-api README).

Without that secret Placetel can only call a URL, so `url_token = true` accepts the source secret as
`?token=` instead. A request that carries a signature is always judged by it, and must carry its
event in the signed body.
"""

from __future__ import annotations

import hashlib
import hmac

from commhub.telephony.contract import (
    RawRequest,
    SourceContext,
    VerificationFailed,
    check_url_token,
    equal_secrets,
)

SIGNATURE_HEADER = "X-PLACETEL-SIGNATURE"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(request: RawRequest, source: SourceContext) -> None:
    signature = request.header(SIGNATURE_HEADER)
    if signature is not None:
        check_signature(request, source, signature)
    elif source.option("url_token", False):
        check_url_token(request, source)
    else:
        raise VerificationFailed(f"missing {SIGNATURE_HEADER}: set the shared secret in Placetel's "
                                 "external API settings (or allow ?token= with url_token = true)")


def check_signature(request: RawRequest, source: SourceContext, signature: str) -> None:
    if not source.secret:
        raise VerificationFailed("this source has no secret to check signatures with")
    if not request.body:
        # The signature covers the body only. Without one, the event would be read from the URL's
        # query, which nothing signs: one signature of an empty body would vouch for any event.
        raise VerificationFailed(f"a request signed with {SIGNATURE_HEADER} needs the event in its body")
    # no timestamp is signed, so a replay cannot be told from Placetel's own retry: the core's
    # idempotent call events store a replayed event once
    if not equal_secrets(signature.strip().lower(), sign(source.secret, request.body)):
        raise VerificationFailed(f"{SIGNATURE_HEADER} does not match the body")
