"""A phone system and agents for end-to-end tests: signed webhooks over HTTP, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from adapters.generic.verify import sign

SECRET = "pbx-secret-for-tests"


@dataclass
class Phone:
    """Posts commhub's generic JSON events, signed as a PBX script would."""

    base: str
    http: aiohttp.ClientSession
    source: str = "pbx"
    secret: str = SECRET
    signed_bodies: set[tuple[int, bytes]] = field(default_factory=set)

    async def post(self, event: dict[str, Any], *, signed: bool = True,
                   headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        body = json.dumps(event).encode()
        sent_headers = {"Content-Type": "application/json", **(headers or {})}
        if signed:
            # A PBX signs every delivery anew, a retry included; the same body signed in the same second
            # gives the same signature, which is refused as a replay, so a resend here is signed later.
            stamp = int(time.time())
            while (stamp, body) in self.signed_bodies:
                stamp += 1
            self.signed_bodies.add((stamp, body))
            sent_headers.update({"X-Commhub-Timestamp": str(stamp),
                                 "X-Commhub-Signature": sign(self.secret, stamp, body)})
        async with self.http.post(f"{self.base}/hooks/{self.source}", data=body, headers=sent_headers) as response:
            await response.read()
            return response

    async def ring(self, call_id: str, caller: str, *targets: str, to: str = "+49301111111") -> None:
        response = await self.post({"event": "ringing", "call_id": call_id, "direction": "in", "from": caller,
                                    "to": to, "targets": list(targets)})
        assert response.status == 200, await response.text()

    async def answer(self, call_id: str, by: str) -> None:
        response = await self.post({"event": "answered", "call_id": call_id, "direction": "in", "answered_by": by})
        assert response.status == 200

    async def hang_up(self, call_id: str, outcome: str | None = None) -> None:
        event = {"event": "ended", "call_id": call_id, "direction": "in"}
        if outcome:
            event["outcome"] = outcome
        response = await self.post(event)
        assert response.status == 200


class AgentClient:
    """One agent session over the real WebSocket, collecting what the server pushes."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, base: str, token: str, *, after: int | None = None) -> AgentClient:
        url = base.replace("http://", "ws://") + "/ws" + (f"?after={after}" if after is not None else "")
        connection = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                              open_timeout=5)
        client = cls(connection)
        hello = await client.next()
        assert hello["type"] == "hello"
        client.hello = hello
        return client

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.connection.recv(), timeout))

    async def next_of(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            message = await self.next(timeout)
            if message["type"] == type_:
                return message

    async def nothing_within(self, seconds: float = 0.3) -> bool:
        try:
            message = await self.next(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message: {message}")

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def close(self) -> None:
        await self.connection.close()
