"""Forged, tampered and replayed webhooks, for every installed adapter, over HTTP to a running commhub.

The valid requests are the vendors' own (adapters/<name>/fixtures): for each adapter and each way
it authenticates (URL token, signature; POST, GET) the first fixture that carries a call event is
the sample. Its credentials are stripped and made again for the test source's secret (signatures
with the vendor's algorithm, `SIGNERS`), so every case starts from a request commhub accepts, and
changes one thing:

- no credentials; the wrong secret, or another source's secret;
- one character of the token or of a signature/timestamp header changed;
- signed requests: one byte of the body changed; the signed URL changed (vendors that sign it);
  signed too long ago or in the future (vendors that sign a time);
- a signature over the body alone, with the event moved into the unsigned URL query;
- a replay of the exact valid request: refused by the replay guard where the vendor signs a time,
  otherwise accepted and stored once.

Then the source options that tighten or widen what is accepted (sipgate's RSA signature, Placetel's
`url_token`, generic's `require_signature`). The per-client failure limit is set out of reach here,
so every refusal shows its own status (test_access.py tests the limit, 429 with Retry-After).

Every refused request leaves the database as it was (`calls` and `call_events` empty, and every
other table unchanged); the controls show each changed request would be stored if it were signed
properly, so the refusal is the credential check's doing and nothing else.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from support.http_fixture import ADAPTERS_DIR, adapter_fixtures, read_fixture
from yarl import URL

from adapters.generic.verify import SIGNATURE_HEADER as GENERIC_SIGNATURE
from adapters.generic.verify import TIMESTAMP_HEADER as GENERIC_TIMESTAMP
from adapters.generic.verify import sign as generic_sign
from adapters.placetel.verify import SIGNATURE_HEADER as PLACETEL_SIGNATURE
from adapters.placetel.verify import sign as placetel_sign
from adapters.twilio.verify import HEADER as TWILIO_SIGNATURE
from adapters.twilio.verify import signature as twilio_signature
from commhub.commands.common import Database
from commhub.settings import AccessSettings, DatabaseSettings, ServerSettings, Settings, SourceSettings
from commhub.store.models import Base, Call, CallEventRow
from commhub.telephony.registry import available
from support.migrated import fresh_copy

PUBLIC_URL = "https://commhub.example.com"  # the Host the fixtures were captured (and Twilio's signed) for
CREDENTIAL_HEADER = re.compile(r"signature|timestamp", re.IGNORECASE)
DROPPED_HEADERS = frozenset({"host", "content-length"})
VOLATILE_COLUMNS = frozenset({"last_used_at"})


# --- requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # /hooks/<source>
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: bytes

    @property
    def path_qs(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")

    @property
    def url(self) -> str:
        return PUBLIC_URL + self.path_qs

    def with_token(self, token: str) -> Request:
        return replace(self, query=(("token", token), *self.query))

    def with_headers(self, **headers: str) -> Request:
        return replace(self, headers={**self.headers, **headers})

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass(frozen=True)
class Signer:
    """How a vendor signs: the headers it adds for a secret at a time (Unix seconds)."""

    sign: Callable[[Request, str, int], dict[str, str]]
    covers_url: bool = False  # the signature covers the URL (a changed query is refused)
    timestamped: bool = False  # a signed time: stale requests and replays are refused (403)


SIGNERS: dict[str, Signer] = {
    "generic": Signer(lambda request, secret, now: {
        GENERIC_TIMESTAMP: str(now), GENERIC_SIGNATURE: generic_sign(secret, now, request.body)}, timestamped=True),
    "placetel": Signer(lambda request, secret, now: {PLACETEL_SIGNATURE: placetel_sign(secret, request.body)}),
    "twilio": Signer(lambda request, secret, now: {
        TWILIO_SIGNATURE: twilio_signature(secret, request.url, request.form())}, covers_url=True),
}


@dataclass(frozen=True)
class Sample:
    """A vendor's request with a call event, its credentials stripped."""

    adapter: str
    fixture: str
    mode: str  # "token" (the secret in ?token=) or "signed"
    bare: Request
    expected_events: int

    @property
    def id(self) -> str:
        return f"{self.adapter}/{self.bare.method}/{self.mode}"

    @property
    def signer(self) -> Signer | None:
        return SIGNERS[self.adapter] if self.mode == "signed" else None

    def valid(self, secret: str, *, now: int | None = None, request: Request | None = None) -> Request:
        """`request` (default: the bare one) with credentials for `secret`, signed at `now`."""
        request = request or self.bare
        if self.signer is None:
            return request.with_token(secret)
        return request.with_headers(**self.signer.sign(request, secret, int(time.time()) if now is None else now))


def samples() -> tuple[list[Sample], list[str]]:
    """Per adapter and (method, mode) the first fixture that stores a call event, ringing ones first;
    and the fixtures signed in a way no signer here knows."""
    found: dict[tuple[str, str, str], Sample] = {}
    unknown: list[str] = []
    for adapter in sorted(available()):
        fixtures = [(path, read_fixture(path)) for path in adapter_fixtures(adapter)]
        with_events = [(path, fixture) for path, fixture in fixtures if fixture.expected().get("events")]
        with_events.sort(key=lambda item: item[1].expected()["events"][0]["phase"] != "ringing")
        for path, fixture in with_events:
            target = URL(fixture.target)
            query = parse_qsl(target.raw_query_string, keep_blank_values=True)
            signed = [name for name in fixture.headers if CREDENTIAL_HEADER.search(name)]
            if signed and adapter not in SIGNERS:
                unknown.append(f"{adapter}/{path.name}")
                continue
            mode = "signed" if signed else "token" if any(name == "token" for name, _ in query) else "none"
            bare = Request(fixture.method, f"/hooks/{adapter}", tuple((k, v) for k, v in query if k != "token"),
                           {name: value for name, value in fixture.headers.items()
                            if name.lower() not in DROPPED_HEADERS and not CREDENTIAL_HEADER.search(name)},
                           fixture.body)
            found.setdefault((adapter, fixture.method, mode),
                             Sample(adapter, path.stem, mode, bare, len(fixture.expected()["events"])))
    return list(found.values()), unknown


SAMPLES, UNSIGNABLE = samples()
SIGNED = [sample for sample in SAMPLES if sample.signer is not None]
URL_SIGNED = [sample for sample in SIGNED if sample.signer and sample.signer.covers_url]
BODY_SIGNED = [sample for sample in SIGNED if sample.signer and not sample.signer.covers_url]
TIME_SIGNED = [sample for sample in SIGNED if sample.signer and sample.signer.timestamped]


def sample_id(sample: Sample) -> str:
    return sample.id


def secret(source: str) -> str:
    return f"{source}-forgery-secret-0451"


def fixture_options(adapter: str) -> dict[str, Any]:
    config = json.loads((ADAPTERS_DIR / adapter / "fixtures" / "source.json").read_text("utf-8"))
    return dict(config.get("options", {}))


# Sources beside one per adapter: stricter or looser options of the same adapters.
EXTRA_SOURCES = {
    "sipgate-signed": ("sipgate", {"verify_signature": True}),
    "placetel-token": ("placetel", {"url_token": True}),
    "generic-strict": ("generic", {"require_signature": True}),
}


@pytest.fixture
def database_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """SQLite only (verification happens before the database is touched), from the migrated copy."""
    return fresh_copy(migrated_sqlite, tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    sources = [SourceSettings(name=name, adapter=name, secret=secret(name), options=fixture_options(name))
               for name in sorted(available())]
    sources += [SourceSettings(name=name, adapter=adapter, secret=secret(name),
                               options={**fixture_options(adapter), **options})
                for name, (adapter, options) in EXTRA_SOURCES.items()]
    # The failure limit out of reach: each refusal shows its own status (test_access.py tests the limit).
    return Settings(database=DatabaseSettings(url=database_url), server=ServerSettings(public_url=PUBLIC_URL),
                    sources=sources, access=AccessSettings(failure_limit=10_000))


# --- sending and checking ---------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: str
    calls: str | None  # X-Commhub-Calls: the stored calls' ids


async def post(client: TestClient, request: Request) -> Answer:
    target = URL(str(client.make_url("")).rstrip("/") + request.path_qs, encoded=True)
    async with client.session.request(request.method, target, headers=request.headers,
                                      data=request.body or None) as response:
        return Answer(response.status, await response.text(), response.headers.get("X-Commhub-Calls"))


Snapshot = dict[str, list[tuple[Any, ...]]]


async def snapshot(db: Database) -> Snapshot:
    out = {}
    async with db.sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
            rows = await session.execute(select(*columns).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(row) for row in rows]
    return out


async def stored(db: Database) -> tuple[int, int]:
    async with db.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(Call)) or 0,
                await session.scalar(select(func.count()).select_from(CallEventRow)) or 0)


async def assert_refused(client: TestClient, db: Database, request: Request, statuses: set[int],
                         what: str) -> None:
    """Refused with one of `statuses`, as JSON, storing nothing."""
    before = await snapshot(db)
    answer = await post(client, request)
    assert answer.status in statuses, f"{what}: {answer.status} {answer.body[:300]}"
    assert json.loads(answer.body)["error"]["code"] in ("verification_failed", "replayed", "unauthorized",
                                                        "forbidden"), answer.body
    assert answer.calls is None
    after = await snapshot(db)
    assert [name for name in before if before[name] != after[name]] == [], what


async def assert_stored(client: TestClient, db: Database, request: Request, what: str) -> Answer:
    answer = await post(client, request)
    assert 200 <= answer.status < 300 and answer.calls, f"{what}: {answer.status} {answer.body[:300]}"
    calls, events = await stored(db)
    assert calls >= 1 and events >= 1, what
    return answer


def altered(value: str) -> str:
    """`value` with its first character replaced by another of the same kind (a digit by a digit,
    hex by hex, a letter by a letter of the same case): the same shape, a different credential.
    The first, not the last: a base64 string's last character may hold padding bits only."""
    first = value[0]
    if first.isdigit():
        other = str((int(first) + 1) % 10)
    elif first.lower() in "abcdef":
        other = "abcdef"[("abcdef".index(first.lower()) + 1) % 6]
        other = other.upper() if first.isupper() else other
    elif first.isalpha():
        other = "b" if first.lower() == "a" else "a"
        other = other.upper() if first.isupper() else other
    else:
        other = "A"
    return other + value[1:]


def one_byte_changed(body: bytes) -> bytes:
    """The body with one digit changed (the last one): still a well-formed event of the vendor's."""
    at = max(i for i, byte in enumerate(body) if chr(byte).isdigit())
    return body[:at] + str((int(chr(body[at])) + 1) % 10).encode() + body[at + 1:]


# --- the matrix -------------------------------------------------------------------------------------


def test_every_adapter_has_a_sample_and_every_signature_a_signer() -> None:
    """A new adapter is covered as soon as its fixtures are: one with a call event, and, if the
    vendor signs, a signer here (SIGNERS) that signs like it."""
    assert UNSIGNABLE == [], f"fixtures signed in a way tests/reliability/test_webhook_forgery.py cannot: {UNSIGNABLE}"
    assert {sample.adapter for sample in SAMPLES} == set(available())
    assert [sample.id for sample in SAMPLES if sample.mode == "none"] == [], "events stored without credentials"
    assert set(SIGNERS) <= set(available())


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
async def test_a_request_without_credentials_is_refused(client: TestClient, db: Database, sample: Sample) -> None:
    await assert_refused(client, db, sample.bare, {401}, "no credentials")
    assert await stored(db) == (0, 0)
    await assert_stored(client, db, sample.valid(secret(sample.adapter)), "control: with credentials")


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
async def test_a_wrong_secret_or_another_sources_secret_is_refused(client: TestClient, db: Database,
                                                                    sample: Sample) -> None:
    other = "generic" if sample.adapter != "generic" else "asterisk"
    for wrong, what in ((f"{sample.adapter}-guessed-secret-0451", "a guessed secret"),
                        (secret(other), f"the secret of source {other}"),
                        (secret(sample.adapter) + "x", "the secret with one character more"),
                        (secret(sample.adapter)[:-1], "the secret with one character less")):
        await assert_refused(client, db, sample.valid(wrong), {401}, what)
    assert await stored(db) == (0, 0)


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
async def test_a_changed_token_or_signature_header_is_refused(client: TestClient, db: Database, sample: Sample) -> None:
    valid = sample.valid(secret(sample.adapter))
    changed: list[tuple[str, Request]] = []
    if any(name == "token" for name, _ in valid.query):
        query = tuple((k, altered(v) if k == "token" else v) for k, v in valid.query)
        changed.append(("?token= with one character changed", replace(valid, query=query)))
    for name in sorted(set(valid.headers) - set(sample.bare.headers)):  # the headers the signer wrote
        changed.append((f"{name} with one character changed",
                        valid.with_headers(**{name: altered(valid.headers[name])})))
        changed.append((f"{name} left out",
                        replace(valid, headers={k: v for k, v in valid.headers.items() if k != name})))
    assert changed, "the valid request carries no credential to change"
    for what, request in changed:
        await assert_refused(client, db, request, {401}, what)
    assert await stored(db) == (0, 0)


@pytest.mark.parametrize("sample", SIGNED, ids=sample_id)
async def test_a_signed_request_with_one_byte_of_its_body_changed_is_refused(client: TestClient, db: Database,
                                                                             sample: Sample) -> None:
    now = int(time.time())
    valid = sample.valid(secret(sample.adapter), now=now)
    tampered = replace(valid, body=one_byte_changed(valid.body))
    await assert_refused(client, db, tampered, {401}, "body changed after signing")
    assert await stored(db) == (0, 0)
    # control: the changed body is a good event, stored once signed for what it says
    await assert_stored(client, db, sample.valid(secret(sample.adapter), now=now,
                                               request=replace(sample.bare, body=tampered.body)), "control")


@pytest.mark.parametrize("sample", URL_SIGNED, ids=sample_id)
async def test_a_signed_request_sent_to_another_url_is_refused(client: TestClient, db: Database,
                                                               sample: Sample) -> None:
    valid = sample.valid(secret(sample.adapter))
    await assert_refused(client, db, replace(valid, query=(*valid.query, ("x", "1"))), {401},
                         "a query parameter added to the signed URL")
    assert await stored(db) == (0, 0)
    moved = replace(sample.bare, query=(*sample.bare.query, ("x", "1")))
    await assert_stored(client, db, sample.valid(secret(sample.adapter), request=moved), "control: signed for that URL")


def query_fields(body: bytes) -> tuple[tuple[str, str], ...]:
    """A body's fields as URL query parameters (a JSON object's scalar members, or a form's fields)."""
    if body.lstrip().startswith(b"{"):
        return tuple((k, str(v)) for k, v in json.loads(body).items() if isinstance(v, (str, int, float)))
    return tuple(parse_qsl(body.decode(), keep_blank_values=True))


@pytest.mark.parametrize("sample", BODY_SIGNED, ids=sample_id)
async def test_a_signature_over_the_body_alone_vouches_for_nothing_in_the_url(client: TestClient, db: Database,
                                                                              sample: Sample) -> None:
    """With an empty body an event is read from the URL's query (`RawRequest.fields()`), which a
    signature over the body does not cover: a signature of the empty body must not vouch for it
    (it would be one constant per secret, good for any event forever)."""
    emptied = replace(sample.bare, body=b"", query=query_fields(sample.bare.body))
    for method in ("POST", "GET"):
        request = sample.valid(secret(sample.adapter), request=replace(emptied, method=method))
        await assert_refused(client, db, request, {401}, f"{method}: the event in the query, the empty body signed")
    assert await stored(db) == (0, 0)
    # control: the same event in the body, signed, is stored
    await assert_stored(client, db, sample.valid(secret(sample.adapter)), "control: the event in the signed body")


@pytest.mark.parametrize("sample", TIME_SIGNED, ids=sample_id)
async def test_a_request_signed_too_long_ago_or_ahead_is_refused(client: TestClient, db: Database,
                                                                 sample: Sample) -> None:
    tolerance = int(fixture_options(sample.adapter).get("tolerance_seconds", 300))
    now = int(time.time())
    for skew in (-tolerance - 60, -24 * 3600, tolerance + 60):
        await assert_refused(client, db, sample.valid(secret(sample.adapter), now=now + skew), {403},
                             f"signed {skew} s from now")
    assert await stored(db) == (0, 0)


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
async def test_a_replayed_request_is_refused_or_stored_once(client: TestClient, db: Database, sample: Sample) -> None:
    valid = sample.valid(secret(sample.adapter))
    first = await assert_stored(client, db, valid, "the original")
    once = await snapshot(db)
    assert await stored(db) == (1, sample.expected_events)
    for _ in range(2):
        if sample.signer is not None and sample.signer.timestamped:
            # a signed time: the replay guard remembers the signature for as long as it is accepted
            await assert_refused(client, db, valid, {403}, "replay of a signed request")
        else:
            # nothing to tell a replay from the vendor's own retry: accepted, and stored once
            again = await post(client, valid)
            assert (again.status, again.calls) == (200, first.calls), again.body
    assert await snapshot(db) == once


# --- options that tighten or widen what a source accepts ------------------------------------------


def sipgate_vector() -> Request:
    [path] = [p for p in adapter_fixtures("sipgate") if p.stem == "newCall__signed_library_vector"]
    fixture = read_fixture(path)
    return Request(fixture.method, "/hooks/sipgate-signed", (("token", secret("sipgate-signed")),),
                   {k: v for k, v in fixture.headers.items() if k.lower() not in DROPPED_HEADERS}, fixture.body)


async def test_sipgates_signature_when_required_cannot_be_left_out_or_bent(client: TestClient, db: Database) -> None:
    """`verify_signature = true`: sipgate's RSA signature over the body, besides the token."""
    vector = sipgate_vector()
    header = next(name for name in vector.headers if name.lower() == "x-sipgate-signature")
    without = replace(vector, headers={k: v for k, v in vector.headers.items() if k != header})
    for what, request in (
            ("the right token, no signature", without),
            ("the signature with one character changed",
             vector.with_headers(**{header: altered(vector.headers[header])})),
            ("one byte of the body changed", replace(vector, body=one_byte_changed(vector.body))),
            ("a valid signature, the wrong token", replace(vector, query=(("token", secret("sipgate")),))),
            ("a valid signature, no token", replace(vector, query=()))):
        await assert_refused(client, db, request, {401}, what)
    # control: sipgate's own signed request passes verification (its empty callId is then a 400)
    answer = await post(client, vector)
    assert answer.status == 400 and json.loads(answer.body)["error"]["code"] == "bad_payload", answer.body
    assert await stored(db) == (0, 0)


@pytest.mark.parametrize("name", ["placetel-token", "generic"])
async def test_a_wrong_signature_is_not_rescued_by_the_right_token(client: TestClient, db: Database,
                                                                  name: str) -> None:
    """Where the secret may also ride in the URL, a request that carries a signature is judged by it."""
    adapter = EXTRA_SOURCES.get(name, (name, {}))[0]
    [sample] = [b for b in SIGNED if b.adapter == adapter and b.bare.method == "POST"]
    bare = replace(sample.bare, path=f"/hooks/{name}")
    signed = sample.valid(secret(name), request=bare)
    forged = sample.valid("not-the-secret-0451", request=bare).with_token(secret(name))
    await assert_refused(client, db, forged, {401}, "a wrong signature with the right ?token=")
    assert await stored(db) == (0, 0)
    await assert_stored(client, db, bare.with_token(secret(name)), "control: the token alone, unsigned")
    await assert_stored(client, db, signed, "control: signed")


async def test_a_source_that_requires_signatures_refuses_the_token_alone(client: TestClient, db: Database) -> None:
    [sample] = [b for b in SIGNED if b.adapter == "generic"]
    bare = replace(sample.bare, path="/hooks/generic-strict")
    await assert_refused(client, db, bare.with_token(secret("generic-strict")), {401}, "the token alone")
    assert await stored(db) == (0, 0)
    await assert_stored(client, db, sample.valid(secret("generic-strict"), request=bare), "control: signed")


async def test_an_unknown_source_is_a_404_and_stores_nothing(client: TestClient, db: Database) -> None:
    [sample] = [b for b in SAMPLES if b.adapter == "generic" and b.mode == "token" and b.bare.method == "POST"]
    request = replace(sample.bare, path="/hooks/no-such-source").with_token(secret("generic"))
    before = await snapshot(db)
    answer = await post(client, request)
    assert answer.status == 404 and answer.calls is None
    assert await snapshot(db) == before

