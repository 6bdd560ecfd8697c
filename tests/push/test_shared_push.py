"""Several nodes on one PostgreSQL, in one process: numbers from the database, messages over NOTIFY.

The same topology with real processes (kills, SIGTERM, mailbox takeover) is in tests/cluster/.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from support.pgcluster import PostgresCluster
from support.phone import AgentClient, Phone

from commhub.app import build_app
from commhub.commands.common import open_database
from commhub.demo.load import load_demo
from commhub.keys import CALL_DATABASE, DISPATCHER, HUB, NODE
from commhub.push.dispatch import write_and_push
from commhub.push.message import Message
from commhub.push.notices import PAYLOAD_LIMIT, decode_notice, encode_notices
from commhub.settings import ClusterSettings, Settings
from commhub.store import agents
from telephony.conftest import office_settings


def test_notices_keep_order_and_size_and_send_a_large_message_by_reference() -> None:
    messages = [Message(agent, seq, "call.ringing", json.dumps({"seq": seq, "pad": "ä" * 700}), 1.5)
                for seq in range(1, 31) for agent in (1, 2)]
    big = Message(3, 1, "call.ringing", json.dumps({"pad": "x" * 9000}), 2.0)
    payloads = list(encode_notices([*messages[:20], big, *messages[20:]]))
    assert len(payloads) > 1
    assert all(len(payload.encode()) <= PAYLOAD_LIMIT for payload in payloads)
    items = [item for payload in payloads for item in decode_notice(payload)]
    assert items == [*messages[:20], (3, 1), *messages[20:]]


@dataclass
class Node:
    server: TestServer
    base: str


@pytest.fixture
async def two_nodes(pg_cluster: PostgresCluster) -> AsyncIterator[tuple[Node, Node, dict[str, str]]]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    base_settings = office_settings(url)
    async with open_database(base_settings) as database:
        await load_demo(database.sessions, "DE")
        async with database.sessions() as session, session.begin():
            tokens = {agent: await agents.issue_token(session, await agents.get_agent_by_name(session, agent))
                      for agent in ("anna", "ben")}
    nodes = []
    for node_name in ("node-a", "node-b"):
        settings = Settings(**{**base_settings.model_dump(by_alias=True, exclude={"source_file"}),
                               "cluster": ClusterSettings(node_name=node_name).model_dump()})
        server = TestServer(build_app(settings), host="127.0.0.1")
        await server.start_server()
        nodes.append(Node(server, str(server.make_url("")).rstrip("/")))
    yield nodes[0], nodes[1], tokens
    for node in nodes:
        await node.server.close()
    pg_cluster.drop_database(name)


async def test_a_webhook_on_one_node_pops_on_the_other(two_nodes: tuple[Node, Node, dict[str, str]]) -> None:
    a, b, tokens = two_nodes
    assert (a.server.app[NODE], b.server.app[NODE]) == ("node-a", "node-b")
    anna_b = await AgentClient.connect(b.base, tokens["anna"])
    anna_a = await AgentClient.connect(a.base, tokens["anna"])
    async with aiohttp.ClientSession() as http:
        await Phone(a.base, http).ring("x-1", "+49 30 1234567-10", "10")
    on_b, on_a = await anna_b.next_of("call.ringing"), await anna_a.next_of("call.ringing")
    assert on_b == on_a
    assert on_b["call"]["provider_call_id"] == "x-1" and on_b["seq"] == anna_b.hello["seq"] + 1
    assert await anna_b.nothing_within(0.3)
    for client in (anna_a, anna_b):
        await client.close()


async def test_events_spread_over_two_nodes_number_each_agent_without_gaps_or_doubles(
        two_nodes: tuple[Node, Node, dict[str, str]]) -> None:
    a, b, tokens = two_nodes
    listeners = [await AgentClient.connect(node.base, tokens[name]) for node in (a, b) for name in ("anna", "ben")]
    async with aiohttp.ClientSession() as http:
        phones = (Phone(a.base, http), Phone(b.base, http))

        async def call(index: int) -> None:
            # Each call's events alternate between the nodes, and calls overlap.
            await phones[index % 2].ring(f"spread-{index}", "+49 30 1234567-10", "10", "11")
            await phones[(index + 1) % 2].answer(f"spread-{index}", "10")
            await phones[index % 2].hang_up(f"spread-{index}")

        await asyncio.gather(*(call(index) for index in range(24)))
    for client in listeners:
        first = client.hello["seq"]
        received = []
        while True:
            try:
                received.append(await client.next(timeout=1.0))
            except TimeoutError:
                break
        seqs = [message["seq"] for message in received]
        assert seqs == list(range(first + 1, first + 1 + len(seqs))), "gap, double or disorder"
        ringing = [m["call"]["provider_call_id"] for m in received if m["type"] == "call.ringing"]
        assert sorted(ringing) == sorted(f"spread-{index}" for index in range(24))
        ended = [m for m in received if m["type"] == "call.ended"]
        assert len(ended) == 24 and {m["call"]["state"] for m in ended} == {"completed"}
        await client.close()


async def test_a_message_too_large_for_a_notification_comes_from_the_backlog(
        two_nodes: tuple[Node, Node, dict[str, str]]) -> None:
    a, b, tokens = two_nodes
    anna = await AgentClient.connect(b.base, tokens["anna"])
    anna_id = anna.hello["agent"]["id"]
    app = a.server.app
    text = "Ä" * 6000  # 12,000 bytes in UTF-8

    def work(sql, dispatcher):  # type: ignore[no-untyped-def]
        return None, dispatcher.stage(sql, [anna_id], "history.added", {"entry": {"body": text}})

    await write_and_push(app[CALL_DATABASE], app[DISPATCHER], app[HUB].deliver, work)
    message = await anna.next_of("history.added")
    assert message["entry"]["body"] == text and message["seq"] == anna.hello["seq"] + 1
    await anna.close()


async def test_missed_calls_from_one_number_on_two_nodes_at_once_share_one_callback_task(
        two_nodes: tuple[Node, Node, dict[str, str]]) -> None:
    a, b, tokens = two_nodes
    numbers = [f"+49 171 55500{index:02d}" for index in range(30)]
    async with aiohttp.ClientSession() as http:
        phones = (Phone(a.base, http), Phone(b.base, http))

        async def missed(node: int, number: str, call_id: str) -> None:
            await phones[node].ring(call_id, number, "10")
            await phones[node].hang_up(call_id, "missed")

        await asyncio.gather(*(missed(node, number, f"cb-{index}-{node}")
                               for index, number in enumerate(numbers) for node in (0, 1)))
        async with http.get(a.base + "/api/tasks", headers={"Authorization": f"Bearer {tokens['anna']}"}) as response:
            tasks = (await response.json())["items"]
    callbacks = [task for task in tasks if task["kind"] == "callback" and task["phone"].startswith("+4917155500")]
    assert len(callbacks) == len(numbers)
    assert sorted(len(task["call_ids"]) for task in callbacks) == [2] * len(numbers)
