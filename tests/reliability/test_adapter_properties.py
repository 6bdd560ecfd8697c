"""Property: whatever a phone system (or anyone else) sends, every adapter's `verify` and `parse` answer
with the contract's own errors or with valid commhub events, never with another exception (a 500).

Every installed adapter is covered (the `commhub.adapters` entry points, as in
tests/adapters/test_contract.py), fed with:
- arbitrary bytes under arbitrary content types, methods and queries;
- its own recorded vendor requests, mutated: fields removed, repeated, given wrong types, huge or
  odd values (digits that are not ASCII, far dates, NUL, lone surrogates), re-encoded, truncated;
- its recorded requests with hostile headers, queries and URLs, as aiohttp hands them over
  (non-UTF-8 header bytes arrive as surrogate escapes).

"Valid events" are events the call path can store on either backend: see `check_events`.
"""

from __future__ import annotations

import codecs
import json
import operator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from support.http_fixture import HttpFixture, adapter_fixtures, read_fixture, source_context

from adapters.generic.verify import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from commhub.store.sql_db import SqliteDb
from commhub.telephony.contract import (
    BadPayload,
    CallEvent,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    Replayed,
    Reply,
    SourceContext,
    VerificationFailed,
)
from commhub.telephony.registry import available, load_adapter

ADAPTERS = sorted(available())
FIXTURES: dict[str, list[HttpFixture]] = {name: [read_fixture(p) for p in adapter_fixtures(name)] for name in ADAPTERS}

# What the call path can store (commhub/store/models.py, `calls`): ids, numbers and names in
# String(200) columns (PostgreSQL enforces the length), seconds in an INTEGER column.
MAX_TEXT = 200
MAX_SECONDS = 2**31 - 1

PROPERTY = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


# --- what an adapter may answer -------------------------------------------------------------------------

def storable(text: object, *, limit: int | None = MAX_TEXT) -> bool:
    if not isinstance(text, str) or "\x00" in text or (limit is not None and len(text) > limit):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: neither SQLite nor PostgreSQL takes it
        return False
    return True


def check_events(events: object) -> None:
    assert isinstance(events, list) and events, events
    for call in events:
        assert isinstance(call, CallEvent)
        assert storable(call.call_id) and call.call_id.strip(), call.call_id
        assert isinstance(call.phase, Phase) and call.direction in ("in", "out"), call
        for name in ("caller", "callee", "answered_by", "related_call_id", "caller_name"):
            value = getattr(call, name)
            assert value is None or storable(value), (name, value)
        assert call.event_id is None or storable(call.event_id, limit=None), call.event_id
        assert isinstance(call.targets, tuple), call.targets
        assert all(storable(t, limit=None) and t.strip() for t in call.targets), call.targets
        assert call.outcome is None or isinstance(call.outcome, Outcome), call.outcome
        if call.duration is not None:
            assert type(call.duration) is int and 0 <= call.duration <= MAX_SECONDS, call.duration
        if call.occurred_at is not None:
            when = call.occurred_at
            assert isinstance(when, datetime) and when.tzinfo is not None, when
            # the call path writes and reads it back in SQLite's text format
            sqlite = SqliteDb(None)  # type: ignore[arg-type]
            assert sqlite.read_time(sqlite.time(when)) == when.astimezone(UTC), when


def check_error(error: Exception) -> None:
    if isinstance(error, IgnoredEvent):
        assert error.reason and (error.reply is None or isinstance(error.reply, Reply))
    else:
        assert error.message and error.status in (400, 401, 403), error  # type: ignore[attr-defined]
        json.dumps(error.to_json())  # type: ignore[attr-defined]  # the web layer renders it


def exercise(adapter: str, request: RawRequest, source: SourceContext) -> None:
    """verify, then parse (also when verify refused: parsing must be safe on its own), then reply."""
    spec = load_adapter(adapter)
    try:
        spec.verify(request, source)
        event("verify: passed")
    except (VerificationFailed, Replayed) as refused:
        check_error(refused)
        event(f"verify: {refused.code}")
    try:
        events = spec.parse(request, source)
    except (BadPayload, IgnoredEvent) as error:
        check_error(error)
        event("parse: ignored" if isinstance(error, IgnoredEvent) else "parse: bad_payload")
        return
    check_events(events)
    event("parse: events")
    reply = spec.reply(request, events, source)
    assert isinstance(reply, Reply) and 200 <= reply.status < 300, reply


def request_of(method: str, url: str, headers: CIMultiDict[str], query: dict[str, str], body: bytes) -> RawRequest:
    return RawRequest(method=method, url=url, headers=headers, query=query, body=body,
                      received_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC))


def boolean_options(adapter: str) -> list[str]:
    """Options documented as `true: …`: each is also tested switched on."""
    return [name for name, text in load_adapter(adapter).options.items() if text.lower().startswith("true")]


def sources(adapter: str) -> st.SearchStrategy[SourceContext]:
    def build(switched: bool) -> SourceContext:
        source = source_context(adapter)
        if switched:
            source = replace(source, options={**source.options, **dict.fromkeys(boolean_options(adapter), True)})
        return source
    return st.builds(build, st.booleans())


# --- recorded requests, taken apart -----------------------------------------------------------------------

def decode(fixture: HttpFixture) -> tuple[str, Any]:
    """("json", dict) | ("form", [(name, value)]) | ("query", [(name, value)]) | ("raw", [])"""
    if fixture.method == "GET" or not fixture.body:
        return "query", [(k, v) for k, v in parse_qsl(fixture.target.partition("?")[2], keep_blank_values=True)
                         if k != "token"]
    try:
        data = json.loads(fixture.body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return "json", data
    try:
        return "form", parse_qsl(fixture.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return "raw", []


# --- values a field may hold ------------------------------------------------------------------------------

def _fixture_fields(fixture: HttpFixture) -> list[tuple[str, Any]]:
    kind, fields = decode(fixture)
    return list(fields.items()) if isinstance(fields, dict) else fields


FIELD_NAMES = sorted({name for fixtures in FIXTURES.values() for f in fixtures for name, _ in _fixture_fields(f)})
FIELD_VALUES = sorted({str(v) for fixtures in FIXTURES.values() for f in fixtures for _, v in _fixture_fields(f)})

ODD_TEXT = [
    "", " ", "\t\n", "\x00", "a\x00b", "\ud800", "x\udcff", "\ufeff", "\u202e", "🦜", "Müller", "İN", "ß",
    "²", "١٢٣", "٣٠", "𝟗", "-1", "-0", "0", "+1", "1.5", "1e309", "-1e309", "1e300", "NaN", "nan", "inf",
    "Infinity", "99999999999999999999", "9" * 5000, "1" * 4301, "0x10", "1_000",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0005-01-01T00:00:00Z", "2026-11-24T10:00:00",
    "1970-01-01T00:00:00Z", "Mon, 01 Jan 0001 00:00:00 +0100", "Fri, 31 Dec 9999 23:59:59 -1200",
    "31.12.9999 23:59:59", "01.01.0001 00:00:00", "99999999999.00:00:00", "99:99:99", "23:59",
    "anonymous", "client:", "sip:@", "sips:;", "client:anonymous", "tel:", "in", "out", "IN", "Out", "inbound",
    "outbound-dial", "completed", "ANSWER", "CANCEL", "USER_BUSY", "newCall", "hangup", "ringing", "ended",
    "Hangup", "DialBegin", "CHANNEL_HANGUP_COMPLETE", "HungUp", "Inbound", "Missed", "voicemail",
    "[]", "{}", "null", "true", "%00", "%ff", "a=b&c", "&&&", "=", "{\"a\":", "<Response/>",
]
SCALARS = st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none())
HUGE = st.builds(operator.mul, st.sampled_from(["9", "a", "ü", "\x00", "€", " ", "1.", "+49"]),
                 st.integers(min_value=150, max_value=40_000))
VALUES = st.one_of(
    st.sampled_from(ODD_TEXT), st.sampled_from(FIELD_VALUES), st.text(max_size=60), SCALARS, HUGE,
    st.lists(SCALARS, max_size=4), st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
    st.integers(min_value=-(2**70), max_value=2**70),
)
NAMES = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=20), st.sampled_from(FIELD_NAMES).map(str.lower),
                  st.sampled_from(FIELD_NAMES).map(lambda name: name + "[]"))


# --- recorded requests, put together again ----------------------------------------------------------------

def as_text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value) \
        if isinstance(value, list | dict) else str(value)


@st.composite
def mutated_fields(draw: st.DrawFn, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    pairs = list(pairs)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        action = draw(st.sampled_from(["remove", "set", "set", "repeat", "add"]))
        if action == "remove" and pairs:
            del pairs[draw(st.integers(min_value=0, max_value=len(pairs) - 1))]
        elif action == "set" and pairs:
            index = draw(st.integers(min_value=0, max_value=len(pairs) - 1))
            pairs[index] = (pairs[index][0], draw(VALUES))
        elif action == "repeat" and pairs:
            name = pairs[draw(st.integers(min_value=0, max_value=len(pairs) - 1))][0]
            pairs.append((name, draw(VALUES)))
        else:
            pairs.append((draw(NAMES), draw(VALUES)))
    return pairs


def encode_json(pairs: list[tuple[str, Any]], ascii_only: bool) -> bytes:
    data: dict[str, Any] = {}
    for name, value in pairs:
        if name in data:  # a repeated field: a list, as JSON senders write it
            data[name] = [*data[name], value] if isinstance(data[name], list) else [data[name], value]
        else:
            data[name] = value
    return json.dumps(data, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def encode_form(pairs: list[tuple[str, Any]]) -> bytes:
    return urlencode([(name, as_text(value)) for name, value in pairs],
                     encoding="utf-8", errors="surrogatepass").encode("ascii")


def transcode(body: bytes, how: str) -> bytes:
    text = body.decode("utf-8", "surrogatepass")
    if how == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    if how == "latin-1":
        return text.encode("latin-1", "replace")
    if how == "utf-8-bom":
        return codecs.BOM_UTF8 + body
    return body


CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data",
                 "application/json; charset=utf-16", "APPLICATION/JSON", "application/x-www-form-urlencoded; charset=latin-1"]


@st.composite
def mutated_requests(draw: st.DrawFn, adapter: str) -> RawRequest:
    fixture = draw(st.sampled_from(FIXTURES[adapter]))
    kind, fields = decode(fixture)
    pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
    pairs = draw(mutated_fields(pairs))
    headers = CIMultiDict(fixture.headers)
    query = dict(parse_qsl(fixture.target.partition("?")[2], keep_blank_values=True))
    method, body = fixture.method, fixture.body
    shape = draw(st.sampled_from(["same", "same", "same", "json", "form", "query"])) if kind != "raw" else "raw"
    shape = kind if shape == "same" else shape
    if shape == "query":
        method, body = draw(st.sampled_from(["GET", "POST"])), b""
        query = {k: v for k, v in query.items() if k == "token"} | {name: as_text(v) for name, v in pairs}
    elif shape == "json":
        body = encode_json(pairs, draw(st.booleans()))
        headers["Content-Type"] = "application/json"
    elif shape == "form":
        body = encode_form(pairs)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = transcode(body, draw(st.sampled_from(["as is"] * 6 + ["utf-16", "latin-1", "utf-8-bom"])))
    if body and draw(st.integers(min_value=0, max_value=4)) == 0:
        body = body[:draw(st.integers(min_value=0, max_value=len(body) - 1))]  # truncated on the way
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    return request_of(method, fixture.url, headers, query, body)


# --- hostile headers, queries and URLs ---------------------------------------------------------------------

def header_text(raw: bytes) -> str:
    """A header value as aiohttp hands it over: UTF-8, undecodable bytes as surrogate escapes."""
    return raw.decode("utf-8", "surrogateescape")


SIGNATURE_HEADERS = ["X-Commhub-Signature", "X-Commhub-Timestamp", "X-Twilio-Signature", "X-PLACETEL-SIGNATURE",
                     "X-Sipgate-Signature", "Content-Type", "Host", "Authorization"]
HEADER_VALUES = st.one_of(
    st.binary(max_size=80).map(header_text), st.text(max_size=80).filter(lambda t: "\x00" not in t),
    st.sampled_from(["v1=", "v1=00", "v1=" + "0" * 64, ",,,", "²", "١٧٦٤٠٠٠٠٠٠", "9" * 5000, "-1", "0",
                     "99999999999999999999", "=" * 40, "AAAA", "\udcff\udcfe", "  ", "sha256=00"]),
)
QUERY_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["", "\x00", "\ufffd", "9" * 5000, "%FF"]))
URLS = st.sampled_from([
    "https://commhub.example.com/hooks/x", "https://commhub.example.com:abc/hooks/x", "https://[::1/hooks/x",
    "http://user:pw@host:99999/hooks/x", "https://commhub.example.com/hooks/x?bodySHA256=\u00e9",
    "https://commhub.example.com/hooks/x?bodySHA256=", "https://h:0/hooks/x", "no scheme at all",
    "https://commhub.example.com/hooks/x?bodySHA256=%FF&bodySHA256=a", "https://\udcff/hooks/x",
])


@st.composite
def hostile_requests(draw: st.DrawFn, adapter: str) -> RawRequest:
    fixture = draw(st.sampled_from(FIXTURES[adapter]))
    headers = CIMultiDict(fixture.headers)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        name = draw(st.one_of(st.sampled_from(SIGNATURE_HEADERS), st.sampled_from(list(headers) or ["X"])))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            headers.popall(name, None)
        else:
            headers[name] = draw(HEADER_VALUES)
    query = dict(parse_qsl(fixture.target.partition("?")[2], keep_blank_values=True))
    if draw(st.booleans()):
        query["token"] = draw(st.one_of(QUERY_VALUES, st.just(source_context(adapter).secret or "")))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        query[draw(NAMES)] = draw(QUERY_VALUES)
    url = draw(st.one_of(st.just(fixture.url), URLS))
    method = draw(st.sampled_from([fixture.method, fixture.method, "GET", "POST"]))
    return request_of(method, url, headers, query, fixture.body)


# --- the properties ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("adapter", ADAPTERS)
@PROPERTY
@given(data=st.data())
def test_arbitrary_bytes(adapter: str, data: st.DataObject) -> None:
    body = data.draw(st.one_of(st.binary(max_size=600), st.text(max_size=300).map(
        lambda t: t.encode("utf-8", "surrogatepass")), st.sampled_from([b"{", b"[]", b"{}", b"null", b"\x00" * 10,
                                                                         b"\xff\xfe{\x00}\x00", b"=&=&", b"[" * 5000])))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))
    query = data.draw(st.dictionaries(st.text(max_size=10), QUERY_VALUES, max_size=4))
    method = data.draw(st.sampled_from(["POST", "GET", "PUT"]))
    headers = CIMultiDict({"Content-Type": content_type} if content_type else {})
    request = request_of(method, f"https://commhub.example.com/hooks/{adapter}", headers, query, body)
    exercise(adapter, request, data.draw(sources(adapter)))


@pytest.mark.parametrize("adapter", ADAPTERS)
@PROPERTY
@given(data=st.data())
def test_mutated_vendor_requests(adapter: str, data: st.DataObject) -> None:
    exercise(adapter, data.draw(mutated_requests(adapter)), data.draw(sources(adapter)))


@pytest.mark.parametrize("adapter", ADAPTERS)
@PROPERTY
@given(data=st.data())
def test_hostile_headers_queries_and_urls(adapter: str, data: st.DataObject) -> None:
    exercise(adapter, data.draw(hostile_requests(adapter)), data.draw(sources(adapter)))


@PROPERTY
@given(data=st.data())
def test_generic_signature_checked_with_any_timestamp(data: st.DataObject) -> None:
    """Correctly signed requests reach the timestamp and replay checks with any timestamp at all."""
    source = source_context("generic")
    assert source.secret
    fixture = data.draw(st.sampled_from(FIXTURES["generic"]))
    body = data.draw(st.one_of(st.just(fixture.body), mutated_requests("generic").map(lambda r: r.body)))
    stamp = data.draw(st.one_of(
        st.integers(min_value=0, max_value=10**30).map(str), st.integers(min_value=-10**12, max_value=0).map(str),
        st.sampled_from(["1764000000", "²", "١٧٦٤٠٠٠٠٠٠", "9" * 5000, "", " 1764000000 ", "1764000000.5"])))
    try:
        signature = sign(source.secret, int(stamp), body)
    except ValueError:
        signature = "v1=" + "0" * 64
    headers = CIMultiDict({"Content-Type": "application/json", SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp})
    exercise("generic", request_of("POST", fixture.url, headers, {}, body), source)
    exercise("generic", request_of("POST", fixture.url, headers, {}, body), source)  # the same again: a replay


def test_every_adapter_has_recorded_requests_to_mutate() -> None:
    assert ADAPTERS and all(FIXTURES[name] for name in ADAPTERS)
    assert all(decode(f)[0] != "raw" for fixtures in FIXTURES.values() for f in fixtures)

