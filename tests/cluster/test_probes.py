"""`/readyz` and `/metrics` of a running cluster, read as an orchestrator's readiness probe and
Prometheus read them (no token): each node says who it is and that its database and migrations are
fine, exactly one node holds each mailbox, and the counters and gauges follow what happens.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from support.cluster import (
    MAILBOX,
    AgentSocket,
    ClusterNode,
    CommhubCluster,
    PhoneSystem,
    append_mail,
    business_mail,
    call_event,
    wait_for,
)
from support.dovecot import Dovecot
from support.load import report

ARCHIVED = 20


class Scrape:
    """One /metrics answer, parsed by Prometheus' own parser."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def type_of(self, family: str) -> str | None:
        found = self.families.get(family)
        return found.type if found else None

    def has(self, name: str) -> bool:
        return any(sample.name == name for sample in self.samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples `name` whose labels include `labels` (0 when there are none)."""
        return sum(sample.value for sample in self.samples
                   if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                out[sample.labels.get(label, "")] = out.get(sample.labels.get(label, ""), 0) + sample.value
        return out


async def scrape(node: ClusterNode) -> Scrape:
    return Scrape(await node.metrics())


async def pops_observed(cluster: CommhubCluster) -> float:
    """Pops written to sockets, by every node's commhub_pop_latency_seconds histogram."""
    return sum([(await scrape(node)).value("commhub_pop_latency_seconds_count") for node in cluster.nodes])


async def test_readyz_and_metrics_of_a_running_cluster(
        cluster: CommhubCluster, shared_dovecot: Dovecot, http: aiohttp.ClientSession) -> None:
    node1, node2 = cluster.nodes[:2]
    await cluster.wait_ready(timeout=30)

    # --- /readyz -----------------------------------------------------------------------------------
    holder = await cluster.wait_holder(MAILBOX, timeout=30)
    for _ in range(3):
        assert await cluster.holders(MAILBOX) == [holder]
        await asyncio.sleep(0.5)
    answers: dict[str, Any] = {}
    for node in cluster.nodes:
        status, body = await node.readyz()
        answers[node.name] = body
        assert status == 200, (node.name, body)
        assert body["status"] == "ready" and body["node"] == node.name, body
        assert body["database"] == "ok" and body["migrations"] == "current", body
        assert body.get("push") == "listening", body  # README: PostgreSQL's LISTEN for other nodes' pops
        entries = [entry for entry in body["mail"] if entry["mailbox"] == MAILBOX]
        assert [entry["folder"] for entry in entries] == ["INBOX"], body["mail"]
        assert entries[0]["held_here"] is (node is holder), (node.name, entries)
        assert isinstance(entries[0]["connected"], bool) and (entries[0]["error"] is None
                                                               or isinstance(entries[0]["error"], str)), entries

    async def holder_connected() -> bool:
        _status, body = await holder.readyz()
        return any(e["mailbox"] == MAILBOX and e["connected"] is True and e["error"] is None for e in body["mail"])

    await wait_for(holder_connected, 30, f"{holder.name}'s archiver to be connected (readyz)")

    # --- /metrics: the mailbox -----------------------------------------------------------------------
    before = {node.name: await scrape(node) for node in cluster.nodes}
    for node in cluster.nodes:
        metrics = before[node.name]
        assert metrics.value("commhub_mailbox_held", mailbox=MAILBOX) == (1 if node is holder else 0), node.name
        assert metrics.has("commhub_outbox_size"), node.name
        assert metrics.type_of("commhub_pop_latency_seconds") == "histogram", node.name
        assert metrics.has("commhub_agents_connected"), node.name
        assert metrics.by_label("commhub_node_info", "node") == {node.name: 1}, node.name
    assert before[holder.name].has("commhub_archiver_lag_seconds"), "no archiver lag on the holder"
    assert set(before[holder.name].by_label("commhub_archiver_lag_seconds", "folder", mailbox=MAILBOX)) == {"INBOX"}
    archived_before = sum(m.value("commhub_messages_archived_total", mailbox=MAILBOX) for m in before.values())
    mail = [business_mail(number, tag="probes") for number in range(ARCHIVED)]
    await asyncio.to_thread(append_mail, shared_dovecot.port, shared_dovecot.user, shared_dovecot.password,
                            [raw for raw, _ in mail])
    last_uid = max(shared_dovecot.uids("INBOX"))

    async def archived() -> bool:
        return await cluster.checkpoint(MAILBOX) >= last_uid

    await wait_for(archived, 60, "the new mail to be archived", interval=0.1)
    after = {node.name: await scrape(node) for node in cluster.nodes}
    archived_after = sum(m.value("commhub_messages_archived_total", mailbox=MAILBOX) for m in after.values())
    assert archived_after - archived_before == ARCHIVED, (archived_before, archived_after)
    assert after[holder.name].value("commhub_messages_archived_total", mailbox=MAILBOX) \
        - before[holder.name].value("commhub_messages_archived_total", mailbox=MAILBOX) == ARCHIVED

    # --- /metrics: webhooks --------------------------------------------------------------------------
    phone = PhoneSystem(http)
    counted = (await scrape(node1)).by_label("commhub_webhooks_total", "result", source="pbx")
    status, _ = await phone.post(node1, call_event("ringing", "probes-1", 0, caller="+4917650000001",
                                                   targets=["51"]))
    assert status == 200
    good = (await scrape(node1)).by_label("commhub_webhooks_total", "result", source="pbx")
    grown = {result: good.get(result, 0) - counted.get(result, 0) for result in good}
    assert sum(grown.values()) == 1 and max(grown.values()) == 1, (counted, good)
    ok_result = next(result for result, change in grown.items() if change == 1)
    async with http.post(node1.base + "/hooks/pbx?token=wrong-token-0000", json={"event": "ringing"}) as reply:
        assert reply.status == 401
    bad = (await scrape(node1)).by_label("commhub_webhooks_total", "result", source="pbx")
    grown_bad = {result: bad.get(result, 0) - good.get(result, 0) for result in bad}
    assert sum(grown_bad.values()) == 1 and grown_bad.get(ok_result, 0) == 0, (good, bad)

    # --- /metrics: agents and pops -----------------------------------------------------------------
    tokens = await cluster.add_agents({"jan": "51", "kim": "52", "lea": "53"})
    sockets = [await AgentSocket.open(http, node1, tokens["jan"], label="jan@node-1"),
               await AgentSocket.open(http, node1, tokens["kim"], label="kim@node-1"),
               await AgentSocket.open(http, node2, tokens["lea"], label="lea@node-2")]
    try:
        async def connected(expected: dict[str, float]) -> bool:
            seen = {node.name: (await scrape(node)).value("commhub_agents_connected") for node in cluster.nodes}
            return seen == expected

        await wait_for(lambda: connected({node1.name: 2, node2.name: 1}), 10, "agents_connected 2 and 1")
        await sockets[1].close()
        await wait_for(lambda: connected({node1.name: 1, node2.name: 1}), 10, "agents_connected 1 and 1")
        # A second session of an agent is one more session, not one more agent.
        sockets.append(await AgentSocket.open(http, node1, tokens["jan"], label="jan@node-1, second session"))

        async def sessions_counted() -> bool:
            metrics = await scrape(node1)
            return (metrics.value("commhub_agents_connected"), metrics.value("commhub_agent_sessions")) == (1, 2)

        await wait_for(sessions_counted, 10, "node-1: 1 agent connected, 2 sessions")

        pops_before = await pops_observed(cluster)
        posted = time.time()
        status, _ = await phone.post(node2, call_event("ringing", "probes-2", 10, caller="+4917650000002",
                                                       targets=["51"]))
        assert status == 200
        pop = await sockets[0].next_of("call.ringing")
        pop_ms = (sockets[0].arrival_of(pop) - posted) * 1000

        async def pops_counted() -> bool:
            return await pops_observed(cluster) >= pops_before + 1

        await wait_for(pops_counted, 10, "the pop in commhub_pop_latency_seconds")
    finally:
        for socket in sockets:
            await socket.close()
    report("cluster_probes", {"holder": holder.name, "archived": ARCHIVED, "webhook_result_labels": sorted(bad),
                              "pop_ms_node2_to_node1": round(pop_ms, 1)})
