"""Bad webhook input gets a clear JSON error, never changes stored state, and never stops the server."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from conftest import Office

from adapters.generic.verify import sign

RINGING = {"event": "ringing", "call_id": "bad-1", "direction": "in", "from": "+49 30 1234567-10", "targets": ["10"]}


async def post(office: Office, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with office.http.post(office.base + path, data=body,
                                headers={"Content-Type": "application/json", **(headers or {})}) as response:
        return response.status, await response.json()


def signed(body: bytes, secret: str = "pbx-secret-for-tests", stamp: int | None = None) -> dict[str, str]:
    stamp = stamp or int(time.time())
    return {"X-Commhub-Timestamp": str(stamp), "X-Commhub-Signature": sign(secret, stamp, body)}


async def stored_calls(office: Office) -> list[dict]:  # type: ignore[type-arg]
    return (await office.get("/api/calls"))["items"]


async def test_each_kind_of_bad_request_is_refused_with_a_reason_and_stores_nothing(office: Office) -> None:
    body = json.dumps(RINGING).encode()
    cases = [
        ("/hooks/nowhere", body, signed(body), 404, "not_found"),
        ("/hooks/pbx", body, {}, 401, "verification_failed"),
        ("/hooks/pbx?token=wrong-token", body, {}, 401, "verification_failed"),
        ("/hooks/pbx", body, signed(body, secret="someone-elses-secret"), 401, "verification_failed"),
        ("/hooks/pbx", body + b" ", signed(body), 401, "verification_failed"),  # tampered after signing
        ("/hooks/pbx", body, signed(body, stamp=int(time.time()) - 3600), 403, "replayed"),  # too old
        ("/hooks/pbx", b"{not json", signed(b"{not json"), 400, "bad_payload"),
        ("/hooks/pbx", b"\x00" * (64 * 1024 + 1), {}, 413, "body_too_large"),
    ]
    for path, payload, headers, status, code in cases:
        got_status, reply = await post(office, path, payload, headers)
        assert (got_status, reply["error"]["code"]) == (status, code), (path, reply)
        assert reply["error"]["message"]
    assert await stored_calls(office) == []


async def test_a_missing_field_is_named(office: Office) -> None:
    body = json.dumps({k: v for k, v in RINGING.items() if k != "call_id"}).encode()
    status, reply = await post(office, "/hooks/pbx", body, signed(body))
    assert status == 400 and reply["error"]["details"] == {"field": "call_id"}
    assert await stored_calls(office) == []


async def test_a_replayed_signed_request_is_refused_and_stored_once(office: Office) -> None:
    body = json.dumps(RINGING).encode()
    headers = signed(body)
    first, _ = await post(office, "/hooks/pbx", body, headers)
    again, reply = await post(office, "/hooks/pbx", body, headers)
    assert (first, again, reply["error"]["code"]) == (200, 403, "replayed")
    assert len(await stored_calls(office)) == 1


async def test_a_flood_of_forged_requests_blocks_its_sender_and_never_the_phone_system(office: Office) -> None:
    """The flood comes from 127.0.0.2, the phone system from 127.0.0.1: a distinct client address each."""
    anna = await office.agent("anna")
    body = json.dumps(RINGING).encode()
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as attacker:
        async def forge(data: bytes, headers: dict[str, str]) -> int:
            async with attacker.post(office.base + "/hooks/pbx", data=data, headers=headers) as response:
                await response.read()
                return response.status

        bad = [forge(body, signed(body, secret="wrong-secret-x")) for _ in range(300)]
        bad += [forge(data, signed(data)) for data in (f"[{i}, 2".encode() for i in range(100))]
        flood = asyncio.gather(*bad)
        await office.phone.ring("good-1", "+49 30 1234567-10", "10")
        assert (await anna.next_of("call.ringing"))["call"]["provider_call_id"] == "good-1"
        statuses = await flood
    limit = office.settings.access.failure_limit
    # The first failures are told why; after the limit the sender waits, whatever it sends.
    assert statuses.count(401) == limit and statuses.count(429) > 0 and set(statuses) <= {400, 401, 429}
    assert [c["provider_call_id"] for c in await stored_calls(office)] == ["good-1"]
    await office.phone.ring("good-2", "+49 30 1234567-10", "10")  # the phone system is still welcome


async def test_the_socket_refuses_strangers_and_foreign_pages(office: Office) -> None:
    async with office.http.get(office.base + "/ws") as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "unauthorized"
    async with office.http.get(office.base + "/ws?token=chub_nonsense") as response:
        assert response.status == 401
    headers = {**office.headers("anna"), "Origin": "https://evil.example"}
    async with office.http.get(office.base + "/ws", headers=headers) as response:
        assert response.status == 403


async def test_lookup_gives_the_display_name(office: Office) -> None:
    async with office.http.get(office.base + "/lookup/pbx",
                               params={"number": "+49 30 1234567-10", "token": "pbx-secret-for-tests"}) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["name"] == "Jürgen Müller (Müller Haustechnik GmbH)"
    assert answer["matches"][0]["first_name"] == "Jürgen" and answer["matches"][0]["mobile"] == "+491712345678"
    async with office.http.get(office.base + "/lookup/pbx", params={"number": "anonymous"},
                               headers=office.headers("ben")) as response:
        assert (await response.json())["withheld"] is True
    async with office.http.get(office.base + "/lookup/pbx", params={"number": "0301234567"}) as response:
        assert response.status == 401
    async with office.http.get(office.base + "/lookup/pbx", params={"token": "pbx-secret-for-tests"}) as response:
        assert response.status == 400 and (await response.json())["error"]["details"] == {"field": "number"}


async def test_lookup_reads_a_plus_sent_unencoded_as_a_space(office: Office) -> None:
    # mod_cidlookup puts ${caller_id_number} into the URL as it is: "+4930…" arrives as " 4930…".
    async with office.http.get(office.base + "/lookup/pbx?number=+4930123456710&token=pbx-secret-for-tests"
                               ) as response:
        assert (await response.json())["name"] == "Jürgen Müller (Müller Haustechnik GmbH)"
