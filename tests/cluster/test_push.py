"""Pops across nodes: a phone system's webhook may reach any node of the cluster, and the agent's
console may be connected to any other; the pop arrives there anyway, exactly once, with the agent's
seqs running on without a gap (PostgreSQL LISTEN/NOTIFY between the nodes, the backlog for resume).

All on the shared two-node cluster (conftest.py); each test has agents of its own, so their seqs start
at 1 whatever the other tests did.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from support.cluster import AgentSocket, ClusterNode, CommhubCluster, PhoneSystem, call_event, seq_problems
from support.load import report

SEED = 20261124


def provider_id(message: dict[str, Any]) -> str:
    return str(message.get("call", {}).get("provider_call_id"))


def for_call(call_id: str) -> Any:
    return lambda message: provider_id(message) == call_id


async def caught_up(cluster: CommhubCluster, sockets: list[AgentSocket], agent_id: int, timeout: float = 30) -> int:
    """Wait until every socket has the agent's newest stored seq; returns it."""
    newest = (await cluster.newest_seqs()).get(agent_id, 0)
    for socket in sockets:
        await socket.wait(lambda socket=socket: socket.last_seq >= newest, timeout, f"seq {newest}")
    return newest


async def test_webhook_to_node_1_pops_on_node_2_and_a_note_from_node_2_shows_on_node_1(
        cluster: CommhubCluster, http: aiohttp.ClientSession) -> None:
    node1, node2 = cluster.nodes[:2]
    phone = PhoneSystem(http)
    token = (await cluster.add_agents({"ada": "21"}))["ada"]
    agent_id = (await cluster.agent_ids())["ada"]
    status, contact = await node1.api("POST", "/api/contacts", cluster.admin_token, {
        "first_name": "Jürgen", "last_name": "Cluster", "customer_class": "A",
        "phones": [{"number": "030 7654321-21", "kind": "work"}]})
    assert status == 201, contact
    caller = "+49 30 7654321-21"

    on2 = await AgentSocket.open(http, node2, token, after=0, label="ada@node-2")
    on1 = await AgentSocket.open(http, node1, token, after=0, label="ada@node-1 (second session)")
    try:
        posted = time.time()
        status, reply = await phone.post(node1, call_event("ringing", "cluster-a-1", 0, caller=caller, targets=["21"]))
        assert status == 200, reply
        pop2 = await on2.next_of("call.ringing", where=for_call("cluster-a-1"))
        pop1 = await on1.next_of("call.ringing", where=for_call("cluster-a-1"))
        cross_node_s = on2.arrival_of(pop2) - posted
        assert pop2 == pop1, "both sessions get the same message"
        assert [m["id"] for m in pop2["matches"] if m["kind"] == "contact"] == [contact["id"]], pop2["matches"]
        assert {"type", "seq", "ts"} <= set(pop2)

        # The rest of the call through the other node, then the note over node 2's socket.
        status, _ = await phone.post(node2, call_event("answered", "cluster-a-1", 5, caller=caller,
                                                       targets=["21"], answered_by="21"))
        assert status == 200
        status, _ = await phone.post(node1, call_event("ended", "cluster-a-1", 60, caller=caller, targets=["21"]))
        assert status == 200
        for socket in (on1, on2):
            await socket.next_of("call.ended", where=for_call("cluster-a-1"))

        text = "Rückruf morgen zugesagt (über Knoten 2)"
        await on2.send({"type": "note", "call_id": pop2["call"]["id"], "text": text, "ref": "cluster-a-note"})
        saved = await on2.next_of("note.saved")
        entry_id = saved["entry"]["id"]
        assert saved["ref"] == "cluster-a-note" and saved["entry"]["body"] == text
        added = await on1.next_of("history.added", where=lambda m: m["entry"]["id"] == entry_id)
        assert added["entry"]["body"] == text
        await on2.next_of("history.added", where=lambda m: m["entry"]["id"] == entry_id)
        status, history = await node1.api("GET", f"/api/contacts/{contact['id']}/history", token)
        assert status == 200, history
        notes = [item for item in history["items"] if item["id"] == entry_id]
        assert len(notes) == 1 and notes[0]["body"] == text and notes[0]["kind"] == "note", history["items"][:3]

        newest = await caught_up(cluster, [on1, on2], agent_id)
        await asyncio.sleep(0.3)  # room for a doubled message to show up
    finally:
        await on1.close()
        await on2.close()

    # Exactly once, the same on both nodes, seqs 1, 2, 3, … without a gap.
    assert [m["type"] for m in on2.changes] == ["call.ringing", "call.answered", "call.ended", "history.added"]
    assert on1.changes == on2.changes
    for socket in (on1, on2):
        assert seq_problems(socket.seqs, 1) == [], (socket.label, socket.seqs)
        assert socket.last_seq == newest
    stored = await cluster.fetchval("SELECT count(*) FROM agent_messages WHERE agent_id = $1", agent_id)
    assert stored == newest
    report("cluster_cross_node_pop", {"pop_webhook_node1_to_socket_node2_ms": round(cross_node_s * 1000, 1),
                                      "messages": newest})


async def test_an_agent_that_reconnects_to_the_other_node_resumes_every_missed_message_once(
        cluster: CommhubCluster, http: aiohttp.ClientSession) -> None:
    node1, node2 = cluster.nodes[:2]
    phone = PhoneSystem(http)
    token = (await cluster.add_agents({"bea": "22"}))["bea"]
    agent_id = (await cluster.agent_ids())["bea"]

    first = await AgentSocket.open(http, node1, token, after=0, label="bea@node-1")
    try:
        status, _ = await phone.post(node1, call_event("ringing", "cluster-b-0", 0, caller="+4917620000000",
                                                       targets=["22"]))
        assert status == 200
        await first.next_of("call.ringing", where=for_call("cluster-b-0"))
    finally:
        await first.close()
    last_seen = first.last_seq
    assert last_seen >= 1

    # While bea is away: five calls, their events spread over both nodes.
    away_calls = [f"cluster-b-{number}" for number in range(1, 6)]
    for number, call_id in enumerate(away_calls, start=1):
        caller = f"+491762000000{number}"
        events = [call_event("ringing", call_id, number * 100, caller=caller, targets=["22"])]
        if number % 2:
            events += [call_event("answered", call_id, number * 100 + 5, caller=caller, answered_by="22"),
                       call_event("ended", call_id, number * 100 + 60, caller=caller)]
        else:
            events += [call_event("ended", call_id, number * 100 + 30, caller=caller, outcome="missed")]
        for index, event in enumerate(events):
            status, reply = await phone.post((node1, node2)[(number + index) % 2], event)
            assert status == 200, reply
    newest = (await cluster.newest_seqs())[agent_id]

    # Back, on node 2, resuming after the last seq seen on node 1.
    second = await AgentSocket.open(http, node2, token, after=last_seen, label="bea@node-2")
    try:
        resumed = second.of_type("resumed")[0]
        replayed = list(second.changes)  # everything that took a seq before `resumed` arrived
        assert resumed["after"] == last_seen and resumed["complete"] is True, resumed
        assert resumed["replayed"] == newest - last_seen == len(replayed), (resumed, len(replayed))
        assert [m["seq"] for m in replayed] == list(range(last_seen + 1, newest + 1))
        kinds = Counter((m["type"], provider_id(m)) for m in replayed if m["type"].startswith("call."))
        for number, call_id in enumerate(away_calls, start=1):
            assert kinds[("call.ringing", call_id)] == 1 and kinds[("call.ended", call_id)] == 1, (call_id, kinds)
            assert kinds[("call.answered", call_id)] == (1 if number % 2 else 0), (call_id, kinds)
        assert sum(1 for m in replayed if m["type"] in ("task.created", "task.updated")) == 2  # two missed calls

        # Then live messages, through either node.
        status, _ = await phone.post(node1, call_event("ringing", "cluster-b-live", 900, caller="+4917620000009",
                                                       targets=["22"]))
        assert status == 200
        live = await second.next_of("call.ringing", where=for_call("cluster-b-live"))
        assert live["seq"] == newest + 1

        # The in-band form on node 1: {"type": "resume", "after": N} on an open socket.
        third = await AgentSocket.open(http, node1, token, label="bea@node-1 again")
        try:
            start = len(third.messages)
            await third.send({"type": "resume", "after": last_seen})
            again = await third.next_of("resumed", start=start)
            assert again["complete"] is True and again["replayed"] == newest + 1 - last_seen, again
            assert third.seqs == list(range(last_seen + 1, newest + 2))
        finally:
            await third.close()
        await asyncio.sleep(0.3)
    finally:
        await second.close()
    assert seq_problems(second.seqs, last_seen + 1) == [], second.seqs
    assert second.last_seq == newest + 1


@dataclass
class PlannedCall:
    call_id: str
    kind: str  # answered, missed, widened (a ring group that grows, then someone answers)
    rings: tuple[str, ...]  # extensions that must get the pop
    events: list[dict[str, Any]]
    state: str
    posted_at: list[float] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)


EXTENSIONS = {"carl": "31", "cora": "32", "dana": "33", "eike": "34", "finn": "35", "gesa": "36"}
LOAD_EVENTS = 300


def plan_calls(rng: random.Random) -> list[PlannedCall]:
    calls: list[PlannedCall] = []
    total = 0
    while total < LOAD_EVENTS:
        remaining = LOAD_EVENTS - total
        kinds = [k for k, size in (("answered", 3), ("missed", 2), ("widened", 4)) if size <= remaining
                 and remaining - size != 1]
        kind = rng.choice(kinds)
        number = len(calls)
        call_id = f"cluster-c-{number}"
        caller = f"+49176{3000000 + number}"
        first, second = rng.sample(sorted(EXTENSIONS.values()), 2)
        group = (first,) if rng.random() < 0.6 else (first, second)
        at = number * 1000
        if kind == "answered":
            rings = group
            events = [call_event("ringing", call_id, at, caller=caller, targets=list(group)),
                      call_event("answered", call_id, at + 5, caller=caller, answered_by=first),
                      call_event("ended", call_id, at + 60, caller=caller)]
            state = "completed"
        elif kind == "missed":
            rings = group
            events = [call_event("ringing", call_id, at, caller=caller, targets=list(group)),
                      call_event("ended", call_id, at + 30, caller=caller, outcome="missed")]
            state = "missed"
        else:
            rings = (first, second)
            events = [call_event("ringing", call_id, at, caller=caller, targets=[first]),
                      call_event("ringing", call_id, at + 3, caller=caller, targets=[first, second]),
                      call_event("answered", call_id, at + 8, caller=caller, answered_by=second),
                      call_event("ended", call_id, at + 90, caller=caller)]
            state = "completed"
        calls.append(PlannedCall(call_id, kind, rings, events, state))
        total += len(events)
    assert sum(len(call.events) for call in calls) == LOAD_EVENTS
    return calls


async def test_concurrent_calls_posted_to_both_nodes_pop_exactly_once_on_both(
        cluster: CommhubCluster, http: aiohttp.ClientSession) -> None:
    node1, node2 = cluster.nodes[:2]
    rng = random.Random(SEED)
    tokens = await cluster.add_agents(EXTENSIONS)
    ids = await cluster.agent_ids()
    calls = plan_calls(rng)
    sockets: dict[str, list[AgentSocket]] = {}
    for name, token in tokens.items():
        sockets[name] = [await AgentSocket.open(http, node, token, after=0, label=f"{name}@{node.name}")
                         for node in (node1, node2)]
    phone = PhoneSystem(http)
    failures: list[str] = []
    limit = asyncio.Semaphore(24)  # calls in progress at once

    async def run(index: int, call: PlannedCall) -> None:
        async with limit:
            call_rng = random.Random(f"{SEED}/{index}")
            for step, event in enumerate(call.events):
                if step:
                    await asyncio.sleep(call_rng.uniform(0, 0.02))
                node: ClusterNode = (node1, node2)[(index + step) % 2]
                call.posted_at.append(time.time())
                call.nodes.append(node.name)
                status, reply = await phone.post(node, event)
                if status != 200:
                    failures.append(f"{node.name} {event['event_id']}: {status} {str(reply)[:200]}")
                    return

    try:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(run(i, call) for i, call in enumerate(calls))), 120)
        load_s = time.monotonic() - started
        assert failures == [], failures[:5]
        newest = await cluster.newest_seqs()
        for name, pair in sockets.items():
            target = newest.get(ids[name], 0)
            for socket in pair:
                await socket.wait(lambda socket=socket, target=target: socket.last_seq >= target, 60,
                                  f"seq {target}")
        await asyncio.sleep(0.5)  # room for a doubled or late message to show up
    finally:
        for pair in sockets.values():
            for socket in pair:
                await socket.close()

    # --- what the agents saw ----------------------------------------------------------------
    by_extension = {extension: name for name, extension in EXTENSIONS.items()}
    problems: dict[str, list[str]] = {}
    expected: Counter[tuple[str, str, str]] = Counter()
    for call in calls:
        for extension in call.rings:
            agent = by_extension[extension]
            expected[(agent, "call.ringing", call.call_id)] += 1
            expected[(agent, "call.ended", call.call_id)] += 1
            if call.state == "completed":
                expected[(agent, "call.answered", call.call_id)] += 1
    latencies: dict[str, list[float]] = {"same": [], "cross": []}
    posted = {call.call_id: call for call in calls}
    for name, pair in sockets.items():
        for socket in pair:
            found = seq_problems(socket.seqs, 1)
            if socket.last_seq != newest.get(ids[name], 0):
                found.append(f"last seq {socket.last_seq}, stored {newest.get(ids[name], 0)}")
            if found:
                problems[socket.label] = found
            for message in socket.changes:
                if message["type"] == "call.ringing":
                    call = posted[provider_id(message)]
                    # the ringing event that rang this agent: the first, or the widening one
                    index = 0 if call.kind != "widened" or EXTENSIONS[name] != call.rings[1] else 1
                    latencies["same" if call.nodes[index] == socket.node.name else "cross"].append(
                        socket.arrival_of(message) - call.posted_at[index])
        assert pair[0].changes == pair[1].changes, f"{name}: node-1 and node-2 sessions differ"
    received: Counter[tuple[str, str, str]] = Counter()
    for name, pair in sockets.items():
        for message in pair[1].changes:
            if message["type"].startswith("call."):
                received[(name, message["type"], provider_id(message))] += 1
    lost = sorted(set(expected) - set(received))
    doubled = sorted(key for key, count in received.items() if count > 1)
    unexpected = sorted(set(received) - set(expected))

    # --- what the database holds --------------------------------------------------------------
    states = dict(await cluster.fetch("SELECT provider_call_id, state FROM calls WHERE provider_call_id LIKE "
                                      "'cluster-c-%'"))
    event_counts = dict(await cluster.fetch(
        "SELECT c.provider_call_id, count(*) FROM call_events e JOIN calls c ON c.id = e.call_id "
        "WHERE c.provider_call_id LIKE 'cluster-c-%' GROUP BY c.provider_call_id"))
    wrong_state = [(call.call_id, states.get(call.call_id), call.state) for call in calls
                   if states.get(call.call_id) != call.state]
    wrong_events = [(call.call_id, event_counts.get(call.call_id), len(call.events)) for call in calls
                    if event_counts.get(call.call_id) != len(call.events)]
    backlog = await cluster.fetch("SELECT agent_id, count(*), count(DISTINCT seq), max(seq) FROM agent_messages "
                                  "WHERE agent_id = ANY($1::int[]) GROUP BY agent_id",
                                  [ids[name] for name in EXTENSIONS])
    backlog_gaps = [row for row in backlog if not row[1] == row[2] == row[3]]

    def ms(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1000, 1) if len(values) > 1 \
            else round(values[0] * 1000, 1)

    report("cluster_concurrent_load", {
        "events": LOAD_EVENTS, "calls": len(calls), "nodes": 2, "agents": len(EXTENSIONS), "sessions": 12,
        "load_s": round(load_s, 2), "events_per_s": round(LOAD_EVENTS / load_s, 1),
        "pops_expected_per_session": sum(1 for key in expected if key[1] == "call.ringing"),
        "messages_delivered": sum(len(socket.changes) for pair in sockets.values() for socket in pair),
        "pop_ms_same_node_p50_p95": [ms(latencies["same"], 50), ms(latencies["same"], 95)],
        "pop_ms_cross_node_p50_p95": [ms(latencies["cross"], 50), ms(latencies["cross"], 95)],
        "lost": len(lost), "doubled": len(doubled), "unexpected": len(unexpected),
        "seq_problems": sum(len(p) for p in problems.values()), "wrong_state": len(wrong_state),
    })
    assert problems == {}, problems
    assert lost == [] and doubled == [] and unexpected == [], (lost[:5], doubled[:5], unexpected[:5])
    assert wrong_state == [], wrong_state[:5]
    assert wrong_events == [], wrong_events[:5]
    assert len(backlog) == len(EXTENSIONS) and backlog_gaps == [], backlog
