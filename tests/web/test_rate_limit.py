"""Failed credentials are counted per client address and kind; too many block that client (429).

The limiter itself runs on a fake clock; through the app the default settings hold (10 failures in
60 s block for 300 s). The in-process TestClient always connects from 127.0.0.1, so a second client
address is either a real socket bound to 127.0.0.2 or a forwarded address behind a trusted proxy.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.generic.verify import sign
from commhub.app import build_app
from commhub.commands.common import Database
from commhub.errors import TooManyRequests
from commhub.settings import AccessSettings, DatabaseSettings, Settings, SourceSettings
from commhub.web.rate_limit import FailureLimiter

on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LIMIT = AccessSettings().failure_limit  # 10
BLOCK_S = AccessSettings().block_seconds  # 300
WRONG = {"Authorization": "Bearer chub_wrong-token-for-the-limit-tests"}
HOOK_SECRET = "hook-secret-for-limit-tests"
RINGING = {"event": "ringing", "call_id": "limit-1", "direction": "in", "from": "+49 30 1234567-10",
           "targets": ["10"]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: FakeClock, *, limit: int = 3, window_s: float = 10, block_s: float = 300,
            max_clients: int = 100_000) -> FailureLimiter:
    return FailureLimiter(limit=limit, window_s=window_s, block_s=block_s, clock=clock, max_clients=max_clients)


def retry_after(check: FailureLimiter, kind: str = "login", address: str = "10.0.0.1") -> int | None:
    """The Retry-After a blocked client is told, or None when it may go on."""
    try:
        check.check(kind, address)
    except TooManyRequests as refused:
        assert refused.details == {"retry_after": refused.retry_after}
        return refused.retry_after
    return None


# --- FailureLimiter on a fake clock ------------------------------------------------------------------


def test_the_limit_th_failure_within_the_window_blocks() -> None:
    clock = FakeClock()
    limits = limiter(clock)
    assert [limits.failed("login", "10.0.0.1") for _ in range(2)] == [False, False]
    assert retry_after(limits) is None, "below the limit nobody waits"
    clock.now += 1
    assert limits.failed("login", "10.0.0.1") is True
    assert retry_after(limits) == 300


def test_the_window_slides_so_old_failures_are_forgotten() -> None:
    clock = FakeClock()
    limits = limiter(clock, limit=3, window_s=10)
    limits.failed("login", "10.0.0.1")  # t=0
    clock.now += 5
    limits.failed("login", "10.0.0.1")  # t=5
    clock.now += 5
    # t=10: the first failure is exactly one window old and no longer counts: two in the window.
    assert limits.failed("login", "10.0.0.1") is False
    assert retry_after(limits) is None
    clock.now += 1
    assert limits.failed("login", "10.0.0.1") is True  # t=11: 5, 10, 11 are within 10 s


def test_failures_spread_wider_than_the_window_never_block() -> None:
    clock = FakeClock()
    limits = limiter(clock, limit=3, window_s=10)
    for _ in range(50):
        assert limits.failed("login", "10.0.0.1") is False
        assert retry_after(limits) is None
        clock.now += 5.01


def test_a_block_ends_after_block_seconds_and_starts_a_fresh_count() -> None:
    clock = FakeClock()
    limits = limiter(clock, limit=3, block_s=300)
    for _ in range(3):
        limits.failed("login", "10.0.0.1")
    clock.now += 299.5
    assert retry_after(limits) == 1
    clock.now += 0.5
    assert retry_after(limits) is None
    # The failures that caused the block are not held against the client a second time.
    assert limits.failed("login", "10.0.0.1") is False
    assert retry_after(limits) is None


def test_retry_after_is_rounded_up_to_whole_seconds() -> None:
    clock = FakeClock()
    limits = limiter(clock, limit=1, block_s=300)
    limits.failed("login", "10.0.0.1")
    assert retry_after(limits) == 300
    clock.now += 0.25
    assert retry_after(limits) == 300  # 299.75 s left: never promise less than the truth
    clock.now += 298.75
    assert retry_after(limits) == 1  # 1.0 s left
    clock.now += 0.999
    assert retry_after(limits) == 1  # 0.001 s left: still 1, never 0
    with pytest.raises(TooManyRequests) as refused:
        limits.check("login", "10.0.0.1")
    assert "retry in 1 s" in refused.value.message and refused.value.status == 429
    assert refused.value.code == "too_many_requests"


def test_kinds_and_addresses_are_counted_apart() -> None:
    clock = FakeClock()
    limits = limiter(clock, limit=3)
    for _ in range(2):
        limits.failed("login", "10.0.0.1")
        limits.failed("webhook", "10.0.0.1")
        limits.failed("login", "10.0.0.2")
    assert limits.failed("login", "10.0.0.1") is True
    assert retry_after(limits, "login", "10.0.0.1") == 300
    assert retry_after(limits, "webhook", "10.0.0.1") is None
    assert retry_after(limits, "login", "10.0.0.2") is None
    assert retry_after(limits, "login", "10.0.0.3") is None
    # Each of the others is one failure short of its own limit.
    assert limits.failed("webhook", "10.0.0.1") is True
    assert limits.failed("login", "10.0.0.2") is True


def test_the_memory_bound_evicts_the_quietest_client_not_one_that_keeps_trying() -> None:
    clock = FakeClock()
    limits = limiter(clock, limit=1, max_clients=3)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert limits.failed("login", address) is True
        clock.now += 1
    # 10.0.0.1 keeps knocking while blocked: that touches it, so 10.0.0.2 is now the quietest.
    assert retry_after(limits, "login", "10.0.0.1") is not None
    assert limits.failed("login", "10.0.0.4") is True
    assert retry_after(limits, "login", "10.0.0.2") is None, "the oldest-touched client was evicted"
    for address in ("10.0.0.1", "10.0.0.3", "10.0.0.4"):
        assert retry_after(limits, "login", address) is not None, address
    # A flood of new addresses never holds more than max_clients entries.
    for n in range(100):
        limits.failed("login", f"192.0.2.{n}")
    assert len(limits._clients) == 3
    assert retry_after(limits, "login", "10.0.0.1") is None


# --- through the app -----------------------------------------------------------------------------


async def assert_blocked(response: aiohttp.ClientResponse) -> int:
    assert response.status == 429, await response.text()
    body = await response.json()
    assert body["error"]["code"] == "too_many_requests" and body["error"]["message"]
    header = response.headers["Retry-After"]
    assert header.isdigit() and 0 < int(header) <= BLOCK_S
    assert body["error"]["details"] == {"retry_after": int(header)}
    return int(header)


async def fail_logins(client: TestClient, count: int = LIMIT, **headers: str) -> None:
    for _ in range(count):
        response = await client.get("/api/me", headers={**WRONG, **headers})
        assert response.status == 401, await response.text()
        assert (await response.json())["error"]["code"] == "unauthorized"


@on_sqlite
async def test_ten_wrong_tokens_block_the_address_even_for_the_right_token(
        client: TestClient, agent_headers: dict[str, str]) -> None:
    assert (await client.get("/api/me", headers=agent_headers)).status == 200
    await fail_logins(client)
    # Blocked whatever it sends: a 2xx now would tell a guesser it had guessed right.
    await assert_blocked(await client.get("/api/me", headers=agent_headers))
    await assert_blocked(await client.get("/api/contacts", headers=WRONG))
    await assert_blocked(await client.post("/api/session", json={"token": agent_headers["Authorization"][7:]}))
    # Requests that carry no credentials are not answered from the limiter.
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/api/me")).status == 401


@on_sqlite
async def test_nine_failures_do_not_block_and_requests_without_credentials_are_never_counted(
        client: TestClient, agent_headers: dict[str, str]) -> None:
    """A browser that has not signed in yet asks without credentials: it must not block its office."""
    await fail_logins(client, LIMIT - 1)
    for _ in range(3 * LIMIT):
        response = await client.get("/api/contacts")
        assert response.status == 401
        assert (await client.get("/ws")).status == 401  # no token at all: refused, not counted
    assert (await client.get("/api/me", headers=agent_headers)).status == 200
    await fail_logins(client, 1)  # the 10th failure is still told why ...
    await assert_blocked(await client.get("/api/me", headers=agent_headers))  # ... and blocks from then on


@on_sqlite
async def test_failed_console_sign_ins_count(client: TestClient, agent_headers: dict[str, str]) -> None:
    token = agent_headers["Authorization"].removeprefix("Bearer ")
    for n in range(LIMIT):
        response = await client.post("/api/session", json={"token": f"chub_wrong-{n}"})
        assert response.status == 401, await response.text()
        assert "Set-Cookie" not in response.headers
    refused = await client.post("/api/session", json={"token": token})
    await assert_blocked(refused)
    assert "Set-Cookie" not in refused.headers
    await assert_blocked(await client.get("/api/me", headers=agent_headers))


@on_sqlite
async def test_a_malformed_sign_in_body_is_not_a_failed_credential(client: TestClient,
                                                                  agent_headers: dict[str, str]) -> None:
    for _ in range(2 * LIMIT):
        response = await client.post("/api/session", json={"token": ""})
        assert response.status in (400, 422)
    signed_in = await client.post("/api/session", json={"token": agent_headers["Authorization"][7:]})
    assert signed_in.status == 200


@on_sqlite
async def test_wrong_tokens_at_the_websocket_handshake_count(client: TestClient,
                                                             agent_headers: dict[str, str]) -> None:
    token = agent_headers["Authorization"].removeprefix("Bearer ")
    for n in range(LIMIT):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws", params={"token": f"chub_wrong-{n}"})
        assert refused.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as blocked:
        await client.ws_connect("/ws", params={"token": token})
    assert blocked.value.status == 429
    # The socket and the API share one count: the guesser is blocked everywhere.
    await assert_blocked(await client.get("/api/me", headers=agent_headers))


@on_sqlite
async def test_a_cookie_with_a_wrong_token_counts(client: TestClient, agent_headers: dict[str, str]) -> None:
    for n in range(LIMIT):
        response = await client.get("/api/me", headers={"Cookie": f"commhub_session=chub_wrong-{n}"})
        assert response.status == 401
    await assert_blocked(await client.get("/api/me", headers=agent_headers))


# --- webhooks: their own count ---------------------------------------------------------------------


@pytest.fixture
def hook_settings(database_url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=database_url),
                    sources=[SourceSettings(name="pbx", adapter="generic", secret=HOOK_SECRET,
                                            options={"tolerance_seconds": 300})])


@pytest.fixture
async def hook_client(hook_settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(hook_settings))) as test_client:
        yield test_client


def signed(event: dict[str, object], secret: str = HOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    stamp = int(time.time())
    return body, {"Content-Type": "application/json", "X-Commhub-Timestamp": str(stamp),
                  "X-Commhub-Signature": sign(secret, stamp, body)}


@on_sqlite
async def test_wrong_webhook_credentials_block_webhooks_and_never_agent_logins(
        hook_client: TestClient, agent_headers: dict[str, str]) -> None:
    body = json.dumps(RINGING).encode()
    for n in range(LIMIT // 2):
        response = await hook_client.post("/hooks/pbx", params={"token": f"wrong-token-{n}"}, data=body,
                                          headers={"Content-Type": "application/json"})
        assert response.status == 401, await response.text()
    for n in range(LIMIT - LIMIT // 2):
        data, headers = signed({**RINGING, "call_id": f"forged-{n}"}, secret="someone-elses-secret")
        response = await hook_client.post("/hooks/pbx", data=data, headers=headers)
        assert response.status == 401, await response.text()
    # The right signature from this address now waits too ...
    data, headers = signed(RINGING)
    await assert_blocked(await hook_client.post("/hooks/pbx", data=data, headers=headers))
    await assert_blocked(await hook_client.get("/lookup/pbx", params={"number": "030 1234567",
                                                                      "token": HOOK_SECRET}))
    # ... but agents at that address still sign in: the phone system's failures are not theirs.
    assert (await hook_client.get("/api/me", headers=agent_headers)).status == 200
    assert (await hook_client.post("/api/session",
                                   json={"token": agent_headers["Authorization"][7:]})).status == 200


@on_sqlite
async def test_blocked_agent_logins_never_block_the_phone_system(hook_client: TestClient) -> None:
    await fail_logins(hook_client)
    data, headers = signed(RINGING)
    response = await hook_client.post("/hooks/pbx", data=data, headers=headers)
    assert response.status == 200, await response.text()
    lookup = await hook_client.get("/lookup/pbx", params={"number": "030 1234567", "token": HOOK_SECRET})
    assert lookup.status == 200, await lookup.text()


@on_sqlite
async def test_a_caller_name_lookup_with_a_wrong_secret_counts_as_a_webhook_failure(
        hook_client: TestClient, agent_headers: dict[str, str]) -> None:
    for n in range(LIMIT):
        response = await hook_client.get("/lookup/pbx", params={"number": "030 1234567", "token": f"wrong-{n}"})
        assert response.status == 401, await response.text()
    await assert_blocked(await hook_client.get("/lookup/pbx", params={"number": "030 1234567",
                                                                      "token": HOOK_SECRET}))
    data, headers = signed(RINGING)
    await assert_blocked(await hook_client.post("/hooks/pbx", data=data, headers=headers))
    assert (await hook_client.get("/api/me", headers=agent_headers)).status == 200


@on_sqlite
async def test_an_unknown_source_is_not_a_failed_credential(hook_client: TestClient) -> None:
    body = json.dumps(RINGING).encode()
    for _ in range(2 * LIMIT):
        response = await hook_client.post("/hooks/nowhere", data=body, params={"token": "x"})
        assert response.status == 404
    data, headers = signed(RINGING)
    assert (await hook_client.post("/hooks/pbx", data=data, headers=headers)).status == 200


# --- client addresses: a second real address, and trusted proxies ------------------------------------


@pytest.fixture
def proxied_settings(database_url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=database_url),
                    access=AccessSettings(trusted_proxies=["127.0.0.1/32", "::1"]))  # a network and an address


@pytest.fixture
async def proxied_client(proxied_settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(proxied_settings))) as test_client:
        yield test_client


@on_sqlite
async def test_another_address_is_not_blocked(settings: Settings, agent_headers: dict[str, str]) -> None:
    server = TestServer(build_app(settings), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("/api/me"))
    try:
        async with aiohttp.ClientSession() as first, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as second:
            for _ in range(LIMIT):
                async with first.get(base, headers=WRONG) as response:
                    assert response.status == 401
            async with first.get(base, headers=agent_headers) as response:
                await assert_blocked(response)
            async with second.get(base, headers=agent_headers) as response:
                assert response.status == 200, await response.text()
            # Nor is anyone at the second address blocked by failures there below the limit.
            for _ in range(LIMIT - 1):
                async with second.get(base, headers=WRONG) as response:
                    assert response.status == 401
            async with second.get(base, headers=agent_headers) as response:
                assert response.status == 200
    finally:
        await server.close()


@on_sqlite
async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(
        proxied_client: TestClient, agent_headers: dict[str, str]) -> None:
    await fail_logins(proxied_client, **{"X-Forwarded-For": "203.0.113.7"})
    blocked = {**agent_headers, "X-Forwarded-For": "203.0.113.7"}
    await assert_blocked(await proxied_client.get("/api/me", headers=blocked))
    # The same client behind a second trusted hop (the proxy appended itself): still that client.
    await assert_blocked(await proxied_client.get(
        "/api/me", headers={**agent_headers, "X-Forwarded-For": "203.0.113.7, 127.0.0.1"}))
    # Two header lines are one list: the last untrusted hop is the client.
    await assert_blocked(await proxied_client.get(
        "/api/me", headers=[*agent_headers.items(), ("X-Forwarded-For", "198.51.100.1"),
                            ("X-Forwarded-For", "203.0.113.7")]))
    # Its neighbours behind the same proxy, and the proxy itself, are not blocked.
    for forwarded in ("203.0.113.8", "10.1.2.3, 203.0.113.99"):
        response = await proxied_client.get("/api/me", headers={**agent_headers, "X-Forwarded-For": forwarded})
        assert response.status == 200, forwarded
    assert (await proxied_client.get("/api/me", headers=agent_headers)).status == 200
    # A client cannot hide behind an address it writes in front of its own: the proxy appends the real one.
    spoofed = {**agent_headers, "X-Forwarded-For": "203.0.113.7, 198.51.100.20"}
    assert (await proxied_client.get("/api/me", headers=spoofed)).status == 200


@on_sqlite
async def test_a_forwarded_value_that_is_not_an_address_falls_back_to_the_proxy(
        proxied_client: TestClient, agent_headers: dict[str, str]) -> None:
    # Junk in the header counts against the proxy's own address, never against a made-up one.
    for n in range(LIMIT):
        response = await proxied_client.get("/api/me", headers={**WRONG, "X-Forwarded-For": f"junk-{n}"})
        assert response.status == 401
    await assert_blocked(await proxied_client.get("/api/me", headers=agent_headers))
    ok = await proxied_client.get("/api/me", headers={**agent_headers, "X-Forwarded-For": "203.0.113.7"})
    assert ok.status == 200


@on_sqlite
async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
        proxied_settings: Settings, agent_headers: dict[str, str]) -> None:
    """127.0.0.1 is the trusted proxy; 127.0.0.2 is a client that writes its own X-Forwarded-For."""
    server = TestServer(build_app(proxied_settings), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("/api/me"))
    try:
        async with aiohttp.ClientSession() as proxy, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as direct:
            for n in range(LIMIT):  # each failure claims to come from somewhere else
                async with direct.get(base, headers={**WRONG, "X-Forwarded-For": f"203.0.113.{n}"}) as response:
                    assert response.status == 401
            async with direct.get(base, headers={**agent_headers, "X-Forwarded-For": "198.51.100.1"}) as response:
                await assert_blocked(response)  # counted against 127.0.0.2 itself
            # The addresses it named were never blocked: through the real proxy they get in.
            async with proxy.get(base, headers={**agent_headers, "X-Forwarded-For": "203.0.113.0"}) as response:
                assert response.status == 200
            async with proxy.get(base, headers=agent_headers) as response:
                assert response.status == 200
    finally:
        await server.close()


@on_sqlite
async def test_without_trusted_proxies_x_forwarded_for_is_ignored(client: TestClient,
                                                                  agent_headers: dict[str, str]) -> None:
    for n in range(LIMIT):
        response = await client.get("/api/me", headers={**WRONG, "X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status == 401
    fresh = {**agent_headers, "X-Forwarded-For": "198.51.100.77"}
    await assert_blocked(await client.get("/api/me", headers=fresh))


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="'proxy.internal' is not an IP address or network"):
        AccessSettings(trusted_proxies=["10.0.0.0/8", "proxy.internal"])
    assert AccessSettings(trusted_proxies=["10.0.0.0/8"]).is_trusted_proxy("10.20.30.40")
    assert not AccessSettings(trusted_proxies=["10.0.0.0/8"]).is_trusted_proxy("11.0.0.1")
