"""X-Twilio-Signature: base64(HMAC-SHA1(auth token, public URL + every parameter as name+value)).

Parameters are taken in sorted name order and, for a repeated name, every value sorted
(twilio-python `RequestValidator.compute_signature`). Twilio's own back end is not consistent
about default ports, so like the official library we accept the URL without any port and the
URL with the scheme's default port (:443 / :80) added.
JSON bodies are signed differently: the URL carries `bodySHA256` (hex SHA-256 of the raw body)
and the signature covers the URL alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

from commhub.telephony.contract import BadPayload, RawRequest, SourceContext, VerificationFailed

HEADER = "X-Twilio-Signature"


def verify_signature(request: RawRequest, source: SourceContext) -> None:
    if not source.secret:
        raise VerificationFailed("this Twilio source has no auth token configured (secret)")
    given = request.header(HEADER)
    if not given:
        raise VerificationFailed(f"the {HEADER} header is missing")
    urls = url_variants(request.url)
    try:
        params = signed_params(request)
    except BadPayload:  # a body that is no UTF-8 form cannot be what Twilio signed
        raise VerificationFailed(f"the body is not a form the {HEADER} could cover") from None
    offered = given.strip().encode("utf-8", "surrogatepass")  # undecodable header bytes arrive escaped
    for url in urls:
        if hmac.compare_digest(signature(source.secret, url, params).encode(), offered):
            return
    raise VerificationFailed(f"the {HEADER} header does not match this source's auth token")


def signature(token: str, url: str, params: Mapping[str, list[str]]) -> str:
    """The signature Twilio computes for `url` and the POSTed `params`."""
    text = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    # a Host header aiohttp could not decode arrives with surrogate escapes: it simply never matches
    digest = hmac.new(token.encode(), text.encode("utf-8", "surrogatepass"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_params(request: RawRequest) -> dict[str, list[str]]:
    """The POST parameters Twilio signed: the form fields, none for GET, none for a JSON body."""
    if request.method == "GET" or not request.body:
        return {}
    if "bodySHA256" in parse_qs(urlsplit(request.url).query):
        check_body_hash(request)
        return {}
    return request.form()


def check_body_hash(request: RawRequest) -> None:
    expected = parse_qs(urlsplit(request.url).query)["bodySHA256"][0]
    if not hmac.compare_digest(hashlib.sha256(request.body).hexdigest().encode(),
                               expected.lower().encode("utf-8", "surrogatepass")):
        raise VerificationFailed("the body does not match the bodySHA256 Twilio signed")


def url_variants(url: str) -> list[str]:
    """The URL without a port and with the default port, as twilio-python's validator tries them."""
    try:
        parts = urlsplit(url)
        given_port = parts.port
    except ValueError:  # the Host header named no port ("host:abc") or no host ("[::1"): nothing Twilio signed
        raise VerificationFailed(f"the request URL {url[:100]!r} cannot be what Twilio signed") from None
    credentials, _, hostport = parts.netloc.rpartition("@")
    host = hostport.rsplit(":", 1)[0] if given_port else hostport
    port = given_port or (443 if parts.scheme == "https" else 80)
    prefix = f"{credentials}@" if credentials else ""
    return [urlunsplit(parts._replace(netloc=f"{prefix}{host}")),
            urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))]
