"""`GET /metrics`: what an operator graphs and alerts on, in Prometheus' text format (prometheus_client).

Each application has its own registry (no process-wide state), holding:
- counters and a histogram the code feeds as things happen (webhooks, pops);
- values read when scraped, from the objects that know them (sessions, archivers, the outbox).
Labels are configured names only (sources, mailboxes, folders, message types), never personal data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from commhub.mail.service import MailService
from commhub.push.hub import Hub
from commhub.push.message import Message

# From a message's staging in its transaction to its last byte handed to the agent's socket. Pops are
# milliseconds; the upper buckets show a slow client or an overloaded node.
POP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, node: str) -> None:
        self.registry = CollectorRegistry()
        self.node = node
        self.webhooks = Counter("commhub_webhooks", "Webhook requests by source and result",
                                ["source", "result"], registry=self.registry)
        self.pop_latency = Histogram("commhub_pop_latency_seconds",
                                     "Seconds from a change's commit to its message written to an agent's socket",
                                     ["type"], buckets=POP_BUCKETS, registry=self.registry)
        self.outbox_size = Gauge("commhub_outbox_size", "Outgoing mails queued and not yet sent",
                                 registry=self.registry)
        info = Gauge("commhub_node_info", "This node (the value is always 1)", ["node"], registry=self.registry)
        info.labels(node).set(1)
        ProcessCollector(registry=self.registry)

    def pop_sent(self, message: Message) -> None:
        if message.at:
            self.pop_latency.labels(message.type).observe(max(0.0, time.time() - message.at))

    def watch_hub(self, hub: Hub) -> None:
        hub.sent = self.pop_sent
        self.registry.register(_Read(lambda: [
            _gauge("commhub_agents_connected", "Agents with at least one open socket on this node", hub.agents()),
            _gauge("commhub_agent_sessions", "Open agent sockets on this node", hub.sessions()),
        ]))

    def watch_mail(self, mail: MailService) -> None:
        def read() -> list[Metric]:
            archived = CounterMetricFamily("commhub_messages_archived", "Messages filed by this node's archivers",
                                           labels=["mailbox"])
            lag = GaugeMetricFamily("commhub_archiver_lag_seconds",
                                    "Seconds new mail may have waited unfiled (0: caught up and watching)",
                                    labels=["mailbox", "folder"])
            held = GaugeMetricFamily("commhub_mailbox_held", "1 where this node archives the mailbox",
                                     labels=["mailbox"])
            totals: dict[str, int] = {}
            for archiver in mail.archivers:
                name = archiver.settings.name
                totals[name] = totals.get(name, 0) + archiver.filed_total
                if mail.holds(name):
                    lag.add_metric([name, archiver.folder], archiver.lag_seconds())
            for name in mail.mailboxes:
                archived.add_metric([name], totals.get(name, 0))
                held.add_metric([name], 1 if mail.holds(name) else 0)
            return [archived, lag, held]
        self.registry.register(_Read(read))


class _Read(Collector):
    """Values read at scrape time."""

    def __init__(self, read: Callable[[], list[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from self._read()


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
