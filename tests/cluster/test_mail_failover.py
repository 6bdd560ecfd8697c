"""One archiver per mailbox in a cluster, and failover: every configured mailbox is archived by
exactly one node at a time (a PostgreSQL advisory lock on a connection of that node's own); when that
node dies, or hangs, another takes over within 30 s from the stored checkpoint, and every message is
filed exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from support.cluster import (
    MAILBOX,
    TAKEOVER_LIMIT_S,
    ClusterNode,
    CommhubCluster,
    append_mail,
    business_mail,
    mailbox_of,
    wait_for,
)
from support.dovecot import Dovecot
from support.faults import log_time
from support.load import report

BEFORE_KILL = 600  # messages in the folder when the holder is killed mid-import
AFTER_KILL = 100  # delivered while it is dead
KILL_AT = 120  # the checkpoint the import must have passed (batches of 10): the kill comes mid-import


async def filed_exactly_once(cluster: CommhubCluster, message_ids: list[str], uids: list[int]) -> dict[str, int]:
    """Each Message-ID stored once, each UID located once, one history entry each; returns the counts."""
    emails = await cluster.fetchval("SELECT count(*) FROM emails")
    by_id = dict(await cluster.fetch("SELECT message_id, count(*) FROM emails GROUP BY message_id"))
    locations = dict(await cluster.fetch(
        "SELECT uid, count(*) FROM email_locations WHERE mailbox = $1 GROUP BY uid", MAILBOX))
    entries = dict(await cluster.fetch(
        "SELECT e.id, count(h.id) FROM emails e LEFT JOIN history_entries h ON h.email_id = e.id "
        "AND h.kind = 'email' GROUP BY e.id"))
    missing = [m for m in message_ids if by_id.get(m, 0) == 0]
    doubled = [m for m, count in by_id.items() if count > 1]
    missing_uids = sorted(set(uids) - set(locations))
    doubled_uids = sorted(uid for uid, count in locations.items() if count > 1)
    entry_problems = [email for email, count in entries.items() if count != 1]
    assert missing == [], f"{len(missing)} messages never filed: {missing[:5]}"
    assert doubled == [], f"{len(doubled)} messages filed twice: {doubled[:5]}"
    assert emails == len(message_ids), (emails, len(message_ids))
    assert missing_uids == [] and doubled_uids == [], (missing_uids[:5], doubled_uids[:5])
    assert entry_problems == [], entry_problems[:5]
    return {"emails": emails, "distinct_message_ids": len(by_id), "locations": len(locations)}


async def lease_taken(node_list: list[ClusterNode], since: float, timeout: float) -> tuple[ClusterNode, float]:
    """The first node of `node_list` to log mail.lease_acquired for the mailbox at or after `since`,
    and when (wall time of its log entry)."""
    found: list[tuple[ClusterNode, float]] = []

    def logged() -> bool:
        for node in node_list:
            for entry in node.events_since("mail.lease_acquired", since, mailbox=MAILBOX):
                found.append((node, log_time(entry)))
        return bool(found)

    await wait_for(logged, timeout, f"another node to log mail.lease_acquired for {MAILBOX!r}", interval=0.05)
    return min(found, key=lambda item: item[1])


async def test_the_holder_killed_mid_import_another_node_takes_over_and_files_every_message_once(
        dovecot: Dovecot, make_cluster: Callable[..., CommhubCluster]) -> None:
    began = time.monotonic()
    cluster = make_cluster(nodes=3, mailbox=mailbox_of(dovecot, batch_size=10), lease_check_seconds=1)
    holder = await cluster.wait_holder(MAILBOX, timeout=30)
    start_events = [entry for node in cluster.nodes
                    for entry in node.events_since("mail.lease_acquired", 0, mailbox=MAILBOX)]
    assert [entry["node"] for entry in start_events] == [holder.name], start_events

    mail = [business_mail(number, tag="failover") for number in range(BEFORE_KILL + AFTER_KILL)]
    appended = await asyncio.to_thread(append_mail, dovecot.port, dovecot.user, dovecot.password,
                                       [raw for raw, _ in mail[:BEFORE_KILL]])
    assert appended == BEFORE_KILL
    last_uid = max(dovecot.uids("INBOX"))

    # SIGKILL the holder once its import passed KILL_AT, while it is still going.
    async def progressed() -> bool:
        return await cluster.checkpoint(MAILBOX) >= KILL_AT

    await wait_for(progressed, 120, f"the import to pass UID {KILL_AT}", interval=0.02)
    survivors = cluster.others(holder)
    # More mail arrives while the mailbox has no archiver. The survivors are held (SIGSTOP) for the
    # moment of the kill and the delivery, so that the mail surely arrives before one of them takes
    # over: mail arriving during the new holder's first sync is another test's business.
    for node in survivors:
        node.freeze()
    try:
        killed_at = holder.kill()
        at_kill = await cluster.checkpoint(MAILBOX)
        appended = await asyncio.to_thread(append_mail, dovecot.port, dovecot.user, dovecot.password,
                                           [raw for raw, _ in mail[BEFORE_KILL:]])
    finally:
        released_at = time.time()
        for node in survivors:
            node.thaw()
    assert at_kill < last_uid, f"the import had finished ({at_kill}/{last_uid}) before the kill: nothing was tested"
    assert appended == AFTER_KILL

    taker, acquired_at = await lease_taken(survivors, killed_at, TAKEOVER_LIMIT_S + 5)
    takeover_s = acquired_at - killed_at
    assert await cluster.wait_holder(MAILBOX, timeout=TAKEOVER_LIMIT_S, among=survivors) is taker
    readyz_s = time.time() - killed_at
    assert takeover_s < TAKEOVER_LIMIT_S, f"{taker.name} took over {takeover_s:.1f} s after the kill"

    uids = dovecot.uids("INBOX")
    assert len(uids) == BEFORE_KILL + AFTER_KILL

    async def caught_up() -> bool:
        return await cluster.checkpoint(MAILBOX) >= max(uids)

    caught_up_started = time.monotonic()
    await wait_for(caught_up, 180, "the new holder to archive every message", interval=0.1)
    catch_up_s = time.monotonic() - caught_up_started
    counts = await filed_exactly_once(cluster, [message_id for _, message_id in mail], uids)

    # The killed node comes back: the mailbox stays with the node that has it, one holder only.
    await asyncio.to_thread(holder.start)
    await cluster.wait_ready(timeout=30)
    for _ in range(3):
        assert await cluster.holders(MAILBOX) == [taker], await cluster.holders(MAILBOX)
        await asyncio.sleep(1.0)  # the restarted node's lease checks come every second
    assert holder.events_since("mail.lease_acquired", holder.started_at, mailbox=MAILBOX) == []

    report("cluster_mail_failover", {
        "nodes": 3, "messages": len(uids), "batch_size": 10, "checkpoint_at_kill": at_kill,
        "killed": holder.name, "taken_over_by": taker.name, "takeover_s_by_log": round(takeover_s, 2),
        "takeover_s_after_survivors_resumed": round(acquired_at - released_at, 2),
        "takeover_s_by_readyz": round(readyz_s, 2), "catch_up_s": round(catch_up_s, 1), **counts,
        "runtime_s": round(time.monotonic() - began, 1)})


async def test_a_frozen_holder_loses_the_mailbox_after_the_lease_timeout_and_stops_when_it_wakes(
        dovecot: Dovecot, make_cluster: Callable[..., CommhubCluster]) -> None:
    lease_timeout = 3
    cluster = make_cluster(nodes=2, mailbox=mailbox_of(dovecot, batch_size=10), lease_check_seconds=1,
                           lease_timeout_seconds=lease_timeout)
    holder = await cluster.wait_holder(MAILBOX, timeout=30)
    other = cluster.others(holder)[0]
    mail = [business_mail(number, tag="frozen") for number in range(150)]
    await asyncio.to_thread(append_mail, dovecot.port, dovecot.user, dovecot.password, [raw for raw, _ in mail[:100]])

    frozen_at = time.time()
    holder.freeze()
    try:
        _taker, acquired_at = await lease_taken([other], frozen_at, TAKEOVER_LIMIT_S + 5)
    finally:
        holder.thaw()
        thawed_at = time.time()
    takeover_s = acquired_at - frozen_at
    assert takeover_s < TAKEOVER_LIMIT_S, takeover_s
    # Woken up, the old holder finds its lease connection gone and stops archiving.
    lost = await holder.wait_event("mail.lease_lost", 30, since=frozen_at, mailbox=MAILBOX)
    assert lost["node"] == holder.name
    stopped_s = log_time(lost) - thawed_at
    for _ in range(3):
        assert await cluster.holders(MAILBOX) == [other], await cluster.holders(MAILBOX)
        await asyncio.sleep(1.0)

    await asyncio.to_thread(append_mail, dovecot.port, dovecot.user, dovecot.password, [raw for raw, _ in mail[100:]])
    uids = dovecot.uids("INBOX")

    async def caught_up() -> bool:
        return await cluster.checkpoint(MAILBOX) >= max(uids)

    await wait_for(caught_up, 120, "every message archived", interval=0.1)
    counts = await filed_exactly_once(cluster, [message_id for _, message_id in mail], uids)
    report("cluster_mail_frozen_holder", {"lease_timeout_seconds": lease_timeout,
                                          "takeover_s_after_freeze": round(takeover_s, 2),
                                          "lease_lost_logged_s_after_thaw": round(stopped_s, 2), **counts})
