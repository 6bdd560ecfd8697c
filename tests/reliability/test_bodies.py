"""Bodies no client should send, sent over raw sockets to a real running commhub (every installed adapter
as a source, the demo customers): too large, cut off, not UTF-8, undecodable header bytes.

Each gets a clear 4xx with a JSON reason (or, for a webhook, the reply its vendor expects), never a 5xx;
nothing is stored or changed (a digest of every customer and call row is compared); nothing is logged as
a failure of commhub itself; and the server goes on answering and storing good requests.

The last test runs in-process on both backends (tests/conftest.py `client`): text SQLite keeps but
PostgreSQL refuses must be refused by commhub, not by the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.fuzz_server import (
    ADAPTERS,
    Answer,
    FuzzServer,
    HookRequest,
    accepted_fixtures,
    parse_answer,
    raw_exchange,
    request_bytes,
    resigned,
    secret_for,
)
from support.http_fixture import HttpFixture

from commhub.app import MAX_BODY_BYTES
from commhub.web.routes import ROUTES
from commhub.web.webhooks import MAX_HOOK_BODY

JSON_ROUTES = [route for route in ROUTES if route.body is not None and route.path.startswith("/api/")]
# A body each JSON route accepts, so that only its encoding is wrong (ids: the demo's first files).
VALID_BODIES: dict[str, dict[str, Any]] = {
    "ContactIn": {"first_name": "Ümit", "last_name": "Çelik", "company": "Größe & Söhne"},
    "ContactPatch": {"position": "Geschäftsführerin"},
    "OrganizationIn": {"name": "Bäckerei Groß"},
    "NoteIn": {"text": "Rückruf zugesagt"},
    "AgentIn": {"name": "jürgen", "extensions": ["77"]},
    "SessionIn": {"token": "chub_ungültig"},
    "TaskPatch": {"status": "done"},
    "MailIn": {"to": ["jürgen@example.com"], "subject": "Grüße", "text": "Schöne Grüße"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    running = FuzzServer(tmp_path_factory.mktemp("bodies"))
    running.start()
    yield running
    running.stop()


def send(server: FuzzServer, raw: bytes, **how: bool) -> Answer | None:
    return parse_answer(raw_exchange(server.port, raw, **how))


def request_to(server: FuzzServer, method: str, path: str, headers: dict[str, str | bytes], body: bytes = b"",
               **how: Any) -> bytes:
    """Request bytes with the Host a client of `server.base` sends (Twilio's signature covers it)."""
    return request_bytes(method, path, {"Host": f"127.0.0.1:{server.port}", **headers}, body, **how)


def send_hook(server: FuzzServer, hook: HookRequest, *, body: bytes | None = None,
              headers: dict[str, str | bytes] | None = None, **how: Any) -> Answer | None:
    data = hook.body if body is None else body
    return send(server, request_to(server, hook.method, hook.path, {**hook.headers, **(headers or {})}, data, **how))


def send_api(server: FuzzServer, method: str, path: str, body: bytes, content_type: str = "application/json",
             **how: Any) -> Answer | None:
    headers: dict[str, str | bytes] = {**server.auth(), "Content-Type": content_type}
    return send(server, request_to(server, method, path, headers, body, **how))


def assert_refused(answer: Answer | None, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of `statuses`, when given) with commhub's JSON error body."""
    assert answer is not None, "the server answered nothing"
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    if statuses:
        assert answer.status in statuses, (answer.status, answer.body[:300])
    return answer.error


def fixture_of(adapter: str) -> HttpFixture:
    fixtures = accepted_fixtures(adapter)
    assert fixtures, f"{adapter} has no recorded request that gives call events"
    return fixtures[0]


def padded(fixture: HttpFixture, size: int) -> bytes:
    """The recorded request with one more field, so the body is exactly `size` bytes."""
    body = fixture.body
    if fixture.headers.get("Content-Type", "").startswith("application/json"):
        start, rest = b'{"commhub_padding": "', b'", ' + body.lstrip()[1:]
        return start + b"x" * (size - len(start) - len(rest)) + rest
    fill = size - len(body) - len(b"&commhub_padding=")
    return body + b"&commhub_padding=" + b"x" * fill


def api_path(path: str) -> str:
    return path.replace("{id}", "1").replace("{attachment_id}", "1")


@pytest.fixture
def unchanged(server: FuzzServer) -> Iterator[None]:
    """The test may send only bad requests: afterwards every row is as it was, and the log is clean."""
    before, since = server.snapshot(), server.log_size()
    yield
    server.wait_quiet()
    assert server.snapshot() == before
    assert server.log_problems(since) == [], server.log_problems(since)[:3]
    assert server.healthy()


# --- every adapter is reachable: so the bad requests below are judged by parsing, not by a refusal ----------

@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_adapter_stores_its_recorded_request_signed_for_this_server(server: FuzzServer, adapter: str) -> None:
    before = server.counts()["call_events"]
    answer = send_hook(server, resigned(server.base, adapter, fixture_of(adapter)))
    assert answer is not None and 200 <= answer.status < 300, (answer and answer.status, answer and answer.body[:300])
    assert server.counts()["call_events"] == before + 1


# --- too large ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_webhook_body_over_64_kib_is_413(server: FuzzServer, adapter: str, unchanged: None) -> None:
    fixture = fixture_of(adapter)
    body = padded(fixture, MAX_HOOK_BODY + 1)
    hook = resigned(server.base, adapter, fixture, body)
    for chunked in (False, True):  # declared up front, and streamed without a Content-Length
        error = assert_refused(send_hook(server, hook, chunked=chunked), 413)
        assert error["code"] == "body_too_large" and str(MAX_HOOK_BODY) in error["message"]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_webhook_body_of_exactly_64_kib_is_read(server: FuzzServer, adapter: str) -> None:
    fixture = fixture_of(adapter)
    body = padded(fixture, MAX_HOOK_BODY)
    assert len(body) == MAX_HOOK_BODY
    answer = send_hook(server, resigned(server.base, adapter, fixture, body))
    assert answer is not None and 200 <= answer.status < 300, (answer and answer.status, answer and answer.body[:300])


@pytest.mark.parametrize("route", JSON_ROUTES, ids=[f"{r.method} {r.path}" for r in JSON_ROUTES])
def test_an_api_body_over_the_rest_limit_is_413(server: FuzzServer, route: Any, unchanged: None) -> None:
    body = json.dumps({"text": "x" * MAX_BODY_BYTES}).encode()
    for chunked in (False, True):
        error = assert_refused(send_api(server, route.method, api_path(route.path), body, chunked=chunked), 413)
        assert error["code"] == "body_too_large"


# --- cut off ------------------------------------------------------------------------------------------------

def cut_off(data: bytes) -> list[tuple[bytes, dict[str, bool]]]:
    """The same request with its body cut short, sent by a client that then hangs up or half-closes."""
    head, _, body = data.partition(b"\r\n\r\n")
    cut = head + b"\r\n\r\n" + body[:max(1, len(body) // 3)]
    return [(cut, {"close_early": True}), (cut, {"half_close": True})]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_webhook_body_shorter_than_its_content_length(server: FuzzServer, adapter: str, unchanged: None) -> None:
    fixture = fixture_of(adapter)
    hook = resigned(server.base, adapter, fixture)
    for chunked in (False, True):
        whole = request_to(server, hook.method, hook.path, dict(hook.headers), hook.body, chunked=chunked)
        for data, how in cut_off(whole):
            answer = send(server, data, **how)
            assert answer is None or 400 <= answer.status < 500, (answer.status, answer.body[:300])


@pytest.mark.parametrize("route", JSON_ROUTES, ids=[f"{r.method} {r.path}" for r in JSON_ROUTES])
def test_an_api_body_shorter_than_its_content_length(server: FuzzServer, route: Any, unchanged: None) -> None:
    body = json.dumps(VALID_BODIES[route.body.__name__], ensure_ascii=False).encode()
    headers: dict[str, str | bytes] = {**server.auth(), "Content-Type": "application/json"}
    for chunked in (False, True):
        whole = request_to(server, route.method, api_path(route.path), headers, body, chunked=chunked)
        for data, how in cut_off(whole):
            answer = send(server, data, **how)
            assert answer is None or 400 <= answer.status < 500, (answer.status, answer.body[:300])


# --- not UTF-8 ----------------------------------------------------------------------------------------------

def not_utf8(body: bytes, json_body: bool) -> dict[str, tuple[bytes, str | None]]:
    """Variants of a body: (bytes, Content-Type to send instead, or None for the recorded one)."""
    text = body.decode("utf-8")
    if json_body:
        latin = b'{"commhub_extra": "M\xfcller", ' + body.lstrip()[1:]
        broken = b'{"commhub_extra": "\xff\xfe\xc3\x28", ' + body.lstrip()[1:]
        kind = "application/json"
    else:
        latin = body + b"&commhub_extra=M\xfcller"
        broken = body + b"&commhub_extra=\xff\xfe\xc3\x28"
        kind = "application/x-www-form-urlencoded"
    return {
        "latin-1": (latin, None),
        "latin-1 declared": (latin, f"{kind}; charset=latin-1"),
        "invalid UTF-8": (broken, None),
        "UTF-16": (text.encode("utf-16"), None),
        "UTF-16 declared": (text.encode("utf-16"), f"{kind}; charset=utf-16"),
        "UTF-16 without BOM": (text.encode("utf-16-le"), None),
    }


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_webhook_body_that_is_not_utf8(server: FuzzServer, adapter: str, unchanged: None) -> None:
    fixture = fixture_of(adapter)
    json_body = fixture.headers.get("Content-Type", "").startswith("application/json")
    for name, (body, content_type) in not_utf8(fixture.body, json_body).items():
        hook = resigned(server.base, adapter, fixture, body, content_type)
        answer = send_hook(server, hook)
        assert answer is not None, name
        if 200 <= answer.status < 300:  # the vendor's reply to an event it may send: then nothing is stored
            continue
        error = assert_refused(answer)
        assert error["code"] in ("bad_payload", "verification_failed", "bad_request"), (name, error)


@pytest.mark.parametrize("route", JSON_ROUTES, ids=[f"{r.method} {r.path}" for r in JSON_ROUTES])
def test_an_api_body_that_is_not_utf8(server: FuzzServer, route: Any, unchanged: None) -> None:
    body = json.dumps(VALID_BODIES[route.body.__name__], ensure_ascii=False).encode()
    for name, (data, content_type) in not_utf8(body, json_body=True).items():
        answer = send_api(server, route.method, api_path(route.path), data, content_type or "application/json")
        error = assert_refused(answer)
        assert error["code"] in ("bad_request", "unsupported_media_type", "not_found"), (name, error)


@pytest.mark.parametrize("route", JSON_ROUTES, ids=[f"{r.method} {r.path}" for r in JSON_ROUTES])
def test_an_api_body_json_cannot_represent(server: FuzzServer, route: Any, unchanged: None) -> None:
    """A number of 5000 digits (Python refuses to convert it), nesting 100,000 deep, a lone surrogate,
    NaN: JSON documents the parser may choke on."""
    bodies = [b'{"text": ' + b"1" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000, b'{"text": "\\ud800"}',
              b'{"text": NaN}', b'{"text": 1e999}', b"\xef\xbb\xbf" + b'{"text": ' + b"9" * 4400 + b"}"]
    for body in bodies:
        assert_refused(send_api(server, route.method, api_path(route.path), body))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_webhook_body_json_cannot_represent(server: FuzzServer, adapter: str, unchanged: None) -> None:
    fixture = fixture_of(adapter)
    for body in (b'{"event": ' + b"1" * 5000 + b"}", b"[" * 60_000 + b"]" * 5_000, b'{"Event": "\\ud800"}'):
        answer = send_hook(server, resigned(server.base, adapter, fixture, body, "application/json"))
        assert answer is not None and answer.status < 500, (answer and answer.status, answer and answer.body[:300])
        if answer.status >= 300:
            assert_refused(answer)


# --- header bytes that are no UTF-8 -------------------------------------------------------------------------

def test_an_undecodable_token_is_refused_with_401(server: FuzzServer, unchanged: None) -> None:
    for headers in ({"Authorization": b"Bearer chub_\xff\xfe"}, {"Authorization": b"Bearer \xc3\x28"},
                    {"Cookie": b"commhub_session=chub_\xff"}, {"Authorization": b"\xff chub_x"}):
        error = assert_refused(send(server, request_to(server, "GET", "/api/me", headers)), 401)
        assert error["code"] == "unauthorized"
    # the caller-name lookup takes an agent token too
    answer = send(server, request_to(server, "GET", "/lookup/generic?number=0301234567",
                                     {"Authorization": b"Bearer chub_\xff"}))
    assert assert_refused(answer, 401)["code"] in ("unauthorized", "verification_failed")
    # signing out with such a cookie signs nobody out, and fails for nobody
    answer = send(server, request_to(server, "DELETE", "/api/session", {"Cookie": b"commhub_session=chub_\xff"}))
    assert answer is not None and answer.status == 204, answer


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_undecodable_credentials_on_a_webhook_are_refused(server: FuzzServer, adapter: str, unchanged: None) -> None:
    fixture = fixture_of(adapter)
    hook = resigned(server.base, adapter, fixture)
    path = hook.path.replace(secret_for(adapter), "%FF%FE")
    hostile = [{name: b"\xff\xfe" + value.encode()} for name, value in hook.headers.items() if name != "Content-Type"]
    hostile += [{"X-Twilio-Signature": b"\xff"}, {"X-PLACETEL-SIGNATURE": b"\xc3\x28"},
                {"X-Commhub-Signature": b"v1=\xff", "X-Commhub-Timestamp": "²".encode()},
                {"X-Commhub-Signature": b"v1=00", "X-Commhub-Timestamp": b"9" * 5000}]
    for headers in hostile:
        answer = send_hook(server, HookRequest(hook.method, path, hook.headers, hook.body), headers=headers)
        assert answer is not None and answer.status < 500, (headers, answer and answer.status,
                                                             answer and answer.body[:300])
        if answer.status >= 300:
            assert_refused(answer)
    # The URL a signature covers is built from Host. Wrong credentials: the request must be refused.
    spoiled = HookRequest(hook.method, path, {name: value if name == "Content-Type" else "bogus"
                                              for name, value in hook.headers.items()}, hook.body)
    for host in (b"x:abc", b"[::1", b"\xff", b"h:99999999"):
        answer = send_hook(server, spoiled, headers={"Host": host})
        assert answer is not None and answer.status < 500, (host, answer and answer.status,
                                                            answer and answer.body[:300])


# --- and afterwards ------------------------------------------------------------------------------------------

def test_after_all_this_the_server_answers_and_stores(server: FuzzServer) -> None:
    assert server.healthy()
    for adapter in ADAPTERS:
        fixture = fixture_of(adapter)
        answer = send_hook(server, resigned(server.base, adapter, fixture))
        assert answer is not None and 200 <= answer.status < 300, (adapter, answer and answer.status)
    answer = send_api(server, "POST", "/api/contacts", json.dumps(VALID_BODIES["ContactIn"]).encode())
    assert answer is not None and answer.status == 201, answer
    assert server.log_problems() == [], server.log_problems()[:3]


def test_every_json_route_has_a_valid_body_to_spoil() -> None:
    assert JSON_ROUTES and {route.body.__name__ for route in JSON_ROUTES} <= set(VALID_BODIES)


# --- text one of the two databases cannot hold, in-process on both (tests/conftest.py: SQLite, PostgreSQL) -----

AWKWARD_TEXT = ["a\x00b", "ß" * 200, "ﷺ" * 100, "x" * 5000]


async def test_text_a_database_cannot_hold_is_refused_not_crashed(client: Any, admin_headers: dict[str, str]) -> None:
    """NUL (PostgreSQL text refuses it), names that fold into keys longer than their column, over-long text:
    in every string of every JSON route's body, on each backend: 2xx or 4xx, never 5xx."""
    for route in JSON_ROUTES:
        valid = VALID_BODIES[route.body.__name__]
        for name, value in valid.items():
            for text in AWKWARD_TEXT:
                body = {**valid, name: [text] if isinstance(value, list) else text}
                response = await client.request(route.method, api_path(route.path), json=body, headers=admin_headers)
                assert response.status < 500, (route.path, name, text[:20], response.status, await response.text())
