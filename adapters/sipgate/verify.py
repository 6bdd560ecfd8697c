"""sipgate requests carry the source secret in the URL; with `verify_signature = true` they must also
be signed by sipgate: RSA-SHA256 (PKCS#1 v1.5), base64 in `x-sipgate-signature`, over the raw body."""

from __future__ import annotations

import base64
import binascii
from functools import cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from commhub.telephony.contract import RawRequest, SourceContext, VerificationFailed, check_url_token

from .public_key import sipgate_key

SIGNATURE_HEADER = "X-Sipgate-Signature"


def verify(request: RawRequest, source: SourceContext) -> None:
    # the token always: sipgate's one key signs every customer's pushes, so a valid signature alone
    # does not say the push belongs to this source
    check_url_token(request, source)
    if source.option("verify_signature", False):
        check_signature(request)


def check_signature(request: RawRequest) -> None:
    header = request.header(SIGNATURE_HEADER)
    if not header:
        raise VerificationFailed(f"missing {SIGNATURE_HEADER} (verify_signature is on for this source)")
    try:
        signature = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed(f"{SIGNATURE_HEADER} is not base64") from None
    try:
        _key().verify(signature, request.body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise VerificationFailed(f"{SIGNATURE_HEADER} does not match the body") from None


@cache
def _key() -> RSAPublicKey:
    return sipgate_key()
