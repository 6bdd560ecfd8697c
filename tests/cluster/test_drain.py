"""Graceful SIGTERM of one node of two, under load: it stops taking connections, answers the
requests it is already handling (2xx, committed), closes its agents' sockets with 1012 "service
restart" so they come back through the other node and resume, lets its mail import finish the batch
it is committing and log out from IMAP, hands its mailbox to the other node, and exits 0 within
`shutdown_seconds` (plus room for a loaded machine).

A request "already being handled" is made certain, not hoped for, by the second test: it is sent
with `Expect: 100-continue`, and the server's `100 Continue` (sent once it has parsed the request
and routed it) comes before the SIGTERM; its body follows once the node logged `shutdown.started`,
as from a phone system on a slow line.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from support.cluster import (
    HOOK_PATH,
    MAILBOX,
    TAKEOVER_LIMIT_S,
    AgentSocket,
    ClusterNode,
    CommhubCluster,
    PhoneSystem,
    append_mail,
    business_mail,
    call_event,
    dovecot_sessions,
    mailbox_of,
    seq_problems,
    wait_for,
)
from support.dovecot import Dovecot
from support.faults import log_time
from support.load import report

SHUTDOWN_SECONDS = 5
EXIT_MARGIN_S = 20  # a loaded 2-core machine: the bound is shutdown_seconds plus this
MESSAGES = 300
AGENTS = {"hana": "41", "ivo": "42"}


class HeldRequest:
    """A webhook whose headers the server has read and routed (it answered `100 Continue`) and whose
    body is still to come: a request in flight, for as long as we like."""

    def __init__(self, node: ClusterNode, body: dict[str, Any]) -> None:
        self.node = node
        self.body = json.dumps(body).encode()
        self.event = body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.node.port)
        head = (f"POST {HOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.node.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
                "Expect: 100-continue\r\nConnection: close\r\n\r\n")
        self._writer.write(head.encode())
        await self._writer.drain()
        line = await asyncio.wait_for(self._reader.readline(), 15)
        assert line.startswith(b"HTTP/1.1 100"), f"expected 100 Continue, got {line!r}"
        assert await asyncio.wait_for(self._reader.readline(), 15) == b"\r\n"

    async def finish(self) -> tuple[int | None, str]:
        """Send the body; (status, what the connection said: the reply, or why it failed)."""
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(self.body)
            await self._writer.drain()
            reply = await asyncio.wait_for(self._reader.read(), 30)
        except (OSError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            self._writer.close()
        status_line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = status_line.split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        return status, reply.decode(errors="replace")[-300:]


@dataclass
class Load:
    """Calls that keep coming while the node drains: each event to the draining node first, and to the
    other one when it gets no 2xx (a phone system behind a load balancer)."""

    phone: PhoneSystem
    nodes: list[ClusterNode]
    calls: dict[str, tuple[str, int]] = field(default_factory=dict)  # call id -> (extension, events)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted_by(self, name: str) -> int:
        return sum(1 for delivery in self.phone.deliveries if delivery.accepted_by == name)

    async def caller(self, line: int) -> None:
        rng = random.Random(line)
        number = 0
        while not self.stop.is_set():
            call_id = f"drain-{line}-{number}"
            extension = list(AGENTS.values())[(line + number) % len(AGENTS)]
            caller = f"+49151{line:02d}{number:05d}"
            at = (line * 1000 + number) * 100
            events = [call_event("ringing", call_id, at, caller=caller, targets=[extension]),
                      call_event("answered", call_id, at + 5, caller=caller, answered_by=extension),
                      call_event("ended", call_id, at + 40, caller=caller)]
            self.calls[call_id] = (extension, len(events))
            for event in events:
                await self.phone.deliver(event, self.nodes)
                await asyncio.sleep(rng.uniform(0.005, 0.03))
            number += 1


async def test_sigterm_drains_a_node_under_load_without_losing_a_webhook_a_pop_or_a_message(
        dovecot: Dovecot, make_cluster: Callable[..., CommhubCluster], http: aiohttp.ClientSession) -> None:
    began = time.monotonic()
    cluster = make_cluster(nodes=2, mailbox=mailbox_of(dovecot, batch_size=10), lease_check_seconds=1,
                           shutdown_seconds=SHUTDOWN_SECONDS)
    draining = await cluster.wait_holder(MAILBOX, timeout=30)  # the node that archives the mailbox goes
    other = cluster.others(draining)[0]
    tokens = await cluster.add_agents(AGENTS)
    ids = await cluster.agent_ids()
    sockets = {name: await AgentSocket.open(http, draining, token, after=0, label=f"{name}@{draining.name}")
               for name, token in tokens.items()}
    staying = await AgentSocket.open(http, other, tokens["ivo"], after=0, label=f"ivo@{other.name} (stays)")
    resumed: dict[str, AgentSocket] = {}
    mail = [business_mail(number, tag="drain") for number in range(MESSAGES)]
    load = Load(PhoneSystem(http), [draining, other])
    callers: list[asyncio.Task[None]] = []
    try:
        # Mail being imported, calls coming in: then SIGTERM.
        await asyncio.to_thread(append_mail, dovecot.port, dovecot.user, dovecot.password, [raw for raw, _ in mail])

        async def importing() -> bool:
            return await cluster.checkpoint(MAILBOX) >= 30

        await wait_for(importing, 60, "the mail import to begin", interval=0.02)
        callers = [asyncio.create_task(load.caller(line)) for line in range(4)]
        await wait_for(lambda: load.accepted_by(draining.name) >= 20, 60, "calls flowing through the node")
        # The node's IMAP sessions: the ones open now (the test's own open and end at once).
        imap_open = [session for session, ended in dovecot_sessions(dovecot.log_file).items() if ended is None]
        checkpoint_at_term = await cluster.checkpoint(MAILBOX)

        sigterm_at = draining.send_sigterm()
        started_logged = True
        try:
            await draining.wait_event("shutdown.started", 10, since=sigterm_at)
        except AssertionError:
            started_logged = False
        try:
            ready_status, ready_body = await draining.readyz()
            readyz_during_drain: Any = (ready_status, ready_body.get("status") if isinstance(ready_body, dict) else
                                        str(ready_body)[:100])
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            readyz_during_drain = type(exc).__name__  # the listener is closed already: as good

        # The agents are told to come back, and do, through the other node.
        closes = {}
        for name, socket in sockets.items():
            closes[name] = await socket.wait_closed(SHUTDOWN_SECONDS + EXIT_MARGIN_S)
            resumed[name] = await AgentSocket.open(http, other, tokens[name], after=socket.last_seq,
                                                   label=f"{name}@{other.name} (resumed)")
        exit_code = await asyncio.to_thread(draining.wait_exit, SHUTDOWN_SECONDS + EXIT_MARGIN_S)
        drain_s = time.time() - sigterm_at

        # The mailbox goes to the other node.
        acquired = await other.wait_event("mail.lease_acquired", TAKEOVER_LIMIT_S + 5, since=sigterm_at,
                                          mailbox=MAILBOX)
        takeover_s = log_time(acquired) - sigterm_at

        # Calls go on through the other node for a while, then the phone system is done.
        accepted_after = len([d for d in load.phone.deliveries if d.accepted_by])
        await wait_for(lambda: len([d for d in load.phone.deliveries if d.accepted_by]) >= accepted_after + 20,
                       60, "calls through the remaining node")
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*callers), 60)

        # Everyone catches up with what the database holds.
        newest = await cluster.newest_seqs()
        for name in AGENTS:
            target = newest.get(ids[name], 0)
            await resumed[name].wait(lambda name=name, target=target: resumed[name].last_seq >= target, 60,
                                     f"seq {target}")
        await staying.wait(lambda: staying.last_seq >= newest.get(ids["ivo"], 0), 60, "ivo's newest seq")

        async def archived() -> bool:
            return await cluster.checkpoint(MAILBOX) >= max(dovecot.uids("INBOX"))

        await wait_for(archived, 120, "every message archived by the other node", interval=0.2)
        await wait_for(lambda: all(dovecot_sessions(dovecot.log_file)[s] is not None for s in imap_open), 10,
                       "Dovecot to log the end of the drained node's IMAP sessions")
        imap_ends = {session: dovecot_sessions(dovecot.log_file)[session] for session in imap_open}
    finally:
        load.stop.set()
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        for socket in [*sockets.values(), *resumed.values(), staying]:
            await socket.close()

    # --- the webhooks ----------------------------------------------------------------------------
    deliveries = load.phone.deliveries
    by_draining = [d for d in deliveries if d.accepted_by == draining.name]
    answers = Counter(outcome for d in deliveries for node, outcome in d.attempts if node == draining.name)
    bad_answers = {outcome: count for outcome, count in answers.items()
                   if outcome.isdigit() and not (200 <= int(outcome) < 300 or outcome == "503")}
    states = dict(await cluster.fetch(
        "SELECT provider_call_id, state FROM calls WHERE provider_call_id LIKE 'drain-%'"))
    stored_events = dict(await cluster.fetch(
        "SELECT c.provider_call_id, count(*) FROM call_events e JOIN calls c ON c.id = e.call_id "
        "WHERE c.provider_call_id LIKE 'drain-%' GROUP BY c.provider_call_id"))
    wrong_calls = [(call_id, states.get(call_id), stored_events.get(call_id), events)
                   for call_id, (_, events) in load.calls.items()
                   if states.get(call_id) != "completed" or stored_events.get(call_id) != events]

    # --- the agents -------------------------------------------------------------------------------
    streams = {name: [*sockets[name].changes, *resumed[name].changes] for name in AGENTS}
    streams["ivo (stayed on the other node)"] = staying.changes
    seq_issues = {name: seq_problems([m["seq"] for m in stream], 1) for name, stream in streams.items()}
    seq_issues = {name: issues for name, issues in seq_issues.items() if issues}
    short = {name: (stream[-1]["seq"] if stream else 0, newest.get(ids[name.split()[0]], 0))
             for name, stream in streams.items()
             if (stream[-1]["seq"] if stream else 0) != newest.get(ids[name.split()[0]], 0)}
    expected_pops = {(extension, call_id) for call_id, (extension, _) in load.calls.items()}
    pops = Counter((AGENTS[name], m["call"]["provider_call_id"]) for name in AGENTS
                   for m in streams[name] if m["type"] == "call.ringing")
    lost_pops = sorted(expected_pops - set(pops))
    doubled_pops = sorted(key for key, count in pops.items() if count > 1)
    incomplete = {name: socket.of_type("resumed") for name, socket in resumed.items()
                  if [m["complete"] for m in socket.of_type("resumed")] != [True]}

    # --- the node and the mailbox ---------------------------------------------------------------
    shutdown_started = draining.events_since("shutdown.started", sigterm_at)
    shutdown_finished = draining.events_since("shutdown.finished", sigterm_at)
    lost_lease = draining.events_since("mail.lease_lost", sigterm_at, mailbox=MAILBOX)
    emails = await cluster.fetchval("SELECT count(*) FROM emails")
    distinct = await cluster.fetchval("SELECT count(DISTINCT message_id) FROM emails")
    locations = await cluster.fetchval("SELECT count(*) FROM email_locations WHERE mailbox = $1", MAILBOX)

    report("cluster_sigterm_drain", {
        "shutdown_seconds": SHUTDOWN_SECONDS, "drain_s": round(drain_s, 2), "exit_code": exit_code,
        "mailbox_takeover_s": round(takeover_s, 2), "checkpoint_at_sigterm": checkpoint_at_term,
        "webhooks": len(deliveries), "accepted_by_draining": len(by_draining),
        "draining_answers": dict(answers),
        "events_stored_by_the_node_after_shutdown_started": len(draining.events_since(
            "call.event", log_time(shutdown_started[0]))) if shutdown_started else None,
        "close_codes": {name: code for name, (code, _) in closes.items()},
        "readyz_during_drain": readyz_during_drain,
        "imap_sessions_of_the_node": imap_ends,
        "pops_expected": len(expected_pops), "pops_lost": len(lost_pops), "pops_doubled": len(doubled_pops),
        "emails": emails, "runtime_s": round(time.monotonic() - began, 1)})

    assert started_logged and len(shutdown_started) == 1, "shutdown.started was not logged"
    assert len(shutdown_finished) == 1, "shutdown.finished was not logged"
    assert exit_code == 0, f"exit code {exit_code} after {drain_s:.1f} s:\n{draining.tail(20)}"
    assert drain_s < SHUTDOWN_SECONDS + EXIT_MARGIN_S
    assert bad_answers == {}, f"the draining node answered {bad_answers}"
    assert wrong_calls == [], wrong_calls[:5]
    for name, (code, reason) in closes.items():
        assert code == 1012 and "reconnect" in reason.lower(), (name, code, reason)
    if isinstance(readyz_during_drain, tuple):
        assert readyz_during_drain == (503, "draining"), readyz_during_drain
    assert seq_issues == {} and short == {}, (seq_issues, short)
    assert lost_pops == [] and doubled_pops == [], (lost_pops[:5], doubled_pops[:5])
    assert incomplete == {}, incomplete
    assert takeover_s < TAKEOVER_LIMIT_S, takeover_s
    assert [entry.get("node") for entry in lost_lease] == [draining.name], lost_lease
    assert emails == distinct == locations == MESSAGES, (emails, distinct, locations)
    assert imap_ends and all(how == "Logged out" for how in imap_ends.values()), \
        f"the drained node's IMAP sessions must end with LOGOUT; Dovecot logged: {imap_ends}"


async def test_a_quiet_node_drains_a_webhook_still_arriving_and_logs_out_of_an_idle_mailbox(
        dovecot: Dovecot, make_cluster: Callable[..., CommhubCluster], http: aiohttp.ClientSession) -> None:
    """SIGTERM to a node whose archiver is idling (IMAP IDLE) and which is receiving two webhooks
    whose bodies are still on their way (a phone system on a slow line)."""
    cluster = make_cluster(nodes=1, mailbox=mailbox_of(dovecot), shutdown_seconds=SHUTDOWN_SECONDS)
    node = cluster.nodes[0]
    await cluster.wait_holder(MAILBOX, timeout=30)
    await asyncio.to_thread(append_mail, dovecot.port, dovecot.user, dovecot.password,
                            [business_mail(number, tag="idle")[0] for number in range(5)])

    async def idling() -> bool:
        if await cluster.checkpoint(MAILBOX) < max(dovecot.uids("INBOX")):
            return False
        metrics = await node.metrics()  # lag 0: "caught up and watching"
        return f'commhub_archiver_lag_seconds{{folder="INBOX",mailbox="{MAILBOX}"}} 0.0' in metrics

    await wait_for(idling, 30, "the archiver to catch up and watch the folder")
    await asyncio.sleep(0.5)  # it is in IDLE by now
    token = (await cluster.add_agents({"jule": "43"}))["jule"]
    agent = await AgentSocket.open(http, node, token, after=0, label="jule")
    held = [HeldRequest(node, call_event("ringing", f"held-{n}", n, caller=f"+4915299900{n}", targets=["43"]))
            for n in range(2)]
    try:
        for request in held:
            await request.open()
        imap_open = [session for session, ended in dovecot_sessions(dovecot.log_file).items() if ended is None]
        sigterm_at = node.send_sigterm()
        await node.wait_event("shutdown.started", 10, since=sigterm_at)
        replies = [await request.finish() for request in held]
        code, reason = await agent.wait_closed(SHUTDOWN_SECONDS + EXIT_MARGIN_S)
        exit_code = await asyncio.to_thread(node.wait_exit, SHUTDOWN_SECONDS + EXIT_MARGIN_S)
        drain_s = time.time() - sigterm_at
    finally:
        await agent.close()
    await wait_for(lambda: all(dovecot_sessions(dovecot.log_file)[s] is not None for s in imap_open), 10,
                   "Dovecot to log the end of the node's IMAP sessions")
    imap_ends = {session: dovecot_sessions(dovecot.log_file)[session] for session in imap_open}
    states = dict(await cluster.fetch("SELECT provider_call_id, state FROM calls WHERE provider_call_id LIKE 'held-%'"))
    lease_lost = node.events_since("mail.lease_lost", sigterm_at, mailbox=MAILBOX)
    report("cluster_sigterm_quiet_node", {
        "shutdown_seconds": SHUTDOWN_SECONDS, "drain_s": round(drain_s, 2), "exit_code": exit_code,
        "held_request_replies": [status for status, _ in replies], "stored": states,
        "imap_sessions_of_the_node": imap_ends,
        "lease_lost_s": round(log_time(lease_lost[0]) - sigterm_at, 2) if lease_lost else None})
    assert code == 1012, (code, reason)
    assert exit_code == 0
    problems = []
    if not imap_ends or any(how != "Logged out" for how in imap_ends.values()):
        problems.append(f"the idling archiver's IMAP session must end with LOGOUT; Dovecot logged: {imap_ends}")
    for status, reply in replies:
        if status is None or not 200 <= status < 300:
            problems.append(f"a webhook in flight at SIGTERM (headers read, body still to come) got {status}: "
                            f"{reply!r}")
    if states != {"held-0": "ringing", "held-1": "ringing"}:
        problems.append(f"the webhooks in flight were not stored: {states}")
    assert problems == [], "\n".join(problems)
