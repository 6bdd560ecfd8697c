"""Archives one folder of one mailbox: catch up from the checkpoint, then watch (IDLE or polling).

Exactly once, whatever happens in between:
- messages are addressed by (UIDVALIDITY, UID), never by sequence number or \\Seen;
- each batch is stored and the checkpoint moved in one transaction, so a crash repeats at most the
  batch that was not committed, and the repeat finds nothing to do twice (unique keys);
- a new UIDVALIDITY voids the checkpoint: the folder is read again and known messages (by
  Message-ID, else content hash) only gain a location;
- `after_archive` touches only what is committed; `move`/`delete` leftovers of an interrupted run
  are finished at the next one.
A message that cannot be parsed is stored raw and flagged; one larger than the limit is filed from
its header with a warning. Neither stops the folder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from commhub.log import get_logger
from commhub.mail.filing import OwnAddresses
from commhub.mail.imap import IDLE_RENEW_SECONDS, ImapError, ImapSession
from commhub.mail.preparing import POOL_FROM_MESSAGES, Prepared, parse_pool, prepare_batch, prepare_in
from commhub.retry import Backoff
from commhub.settings import MailboxSettings
from commhub.store.mail_db import MailDatabase

log = get_logger(__name__)
BATCH_BYTES = 32 * 1024 * 1024  # a batch's download is held in memory until it is stored


@dataclass(frozen=True, slots=True)
class Batch:
    uids: tuple[int, ...]
    sizes: dict[int, int]
    header_only: bool


@dataclass(slots=True)
class FolderReport:
    mailbox: str
    folder: str
    fetched: int = 0
    filed: int = 0
    known: int = 0
    erased: int = 0
    warnings: int = 0
    rescanned: bool = False
    seconds: float = 0.0


def plan_batches(sizes: Sequence[tuple[int, int]], batch_size: int, max_message_bytes: int) -> list[Batch]:
    """Cut the new UIDs into FETCHes in UID order: at most `batch_size` messages or BATCH_BYTES each,
    oversized messages in header-only batches of their own."""
    batches: list[Batch] = []
    current: dict[int, int] = {}
    current_oversized = False
    for uid, size in sizes:
        oversized = size > max_message_bytes
        full = (len(current) >= batch_size or oversized != current_oversized
                or (not oversized and current and sum(current.values()) + size > BATCH_BYTES))
        if current and full:
            batches.append(Batch(tuple(current), current, current_oversized))
            current = {}
        current[uid] = size
        current_oversized = oversized
    if current:
        batches.append(Batch(tuple(current), current, current_oversized))
    return batches


class FolderArchiver:
    def __init__(self, settings: MailboxSettings, folder: str, database: MailDatabase, own: OwnAddresses) -> None:
        self.settings = settings
        self.folder = folder
        self.database = database
        self.own = own
        self.max_bytes = int(settings.max_message_mb * 1024 * 1024)
        self.idle_seconds: float = IDLE_RENEW_SECONDS
        self.connected = False
        self.connects = 0  # successful logins: more than one means the connection was lost and remade
        self.last_error: str | None = None
        self.last_sync: datetime | None = None
        self.filed_total = 0  # messages this archiver filed since start (/metrics)
        # Since when new mail may be waiting unfiled (None: caught up and watching); /metrics' lag.
        self.behind_since: float | None = time.time()

    def lag_seconds(self) -> float:
        return 0.0 if self.behind_since is None else max(0.0, time.time() - self.behind_since)

    async def sync(self, imap: ImapSession) -> FolderReport:
        """Archive everything new in the folder; return what was done."""
        started = time.perf_counter()
        settings, report = self.settings, FolderReport(self.settings.name, self.folder)
        state = await imap.open_folder(self.folder, readonly=settings.after_archive == "keep")
        checkpoint = await self.database.run(lambda sql: sql.checkpoint(settings.name, self.folder))
        last = checkpoint[1] if checkpoint and checkpoint[0] == state.uidvalidity else 0
        if checkpoint and checkpoint[0] != state.uidvalidity:
            report.rescanned = True
            log.warning("mail.uidvalidity_changed", mailbox=settings.name, folder=self.folder,
                        old=checkpoint[0], new=state.uidvalidity)
        nothing_new = state.uidnext is not None and state.uidnext <= last + 1
        sizes = [] if nothing_new else await imap.sizes_from(last + 1)
        if sizes:
            filed_uids = await self._import(imap, state.uidvalidity, plan_batches(
                sizes, settings.batch_size, self.max_bytes), report)
            if settings.after_archive == "seen" and filed_uids:
                await imap.mark_seen(filed_uids)
        elif checkpoint != (state.uidvalidity, last):
            await self.database.run_to_end(lambda sql: sql.save_checkpoint(
                settings.name, self.folder, state.uidvalidity, last, datetime.now(UTC)))
        await self._finish_leftovers(imap, state.uidvalidity)
        report.seconds = time.perf_counter() - started
        self.last_sync = datetime.now(UTC)
        if report.fetched or report.rescanned:
            log.info("mail.folder_synced", mailbox=settings.name, folder=self.folder, fetched=report.fetched,
                     filed=report.filed, known=report.known, erased=report.erased, warnings=report.warnings,
                     seconds=round(report.seconds, 3))
        return report

    async def _import(self, imap: ImapSession, uidvalidity: int, batches: list[Batch],
                      report: FolderReport) -> list[int]:
        """Fetch batches over one or more connections, parse them (in worker processes when there are
        many), store them strictly in UID order: download, parsing and storing overlap."""
        loop = asyncio.get_running_loop()
        sessions = [imap] + await self._extra_sessions(len(batches))
        pool = parse_pool() if sum(len(b.uids) for b in batches) >= POOL_FROM_MESSAGES else None
        ready: list[asyncio.Future[asyncio.Future[list[Prepared]]]] = [loop.create_future() for _ in batches]
        # Batches downloaded but not yet stored: enough to keep every connection and parser busy, no more.
        window = asyncio.Semaphore(len(sessions) + 2)
        pending = iter(range(len(batches)))
        parsing: list[asyncio.Future[list[Prepared]]] = []

        def parse(batch: Batch, messages: dict[int, bytes]) -> asyncio.Future[list[Prepared]]:
            if pool is not None:
                job = asyncio.ensure_future(prepare_in(pool, messages, batch.sizes, batch.header_only))
            else:
                job = asyncio.ensure_future(self.database.offload(
                    lambda: prepare_batch(messages, batch.sizes, batch.header_only)))
            parsing.append(job)
            return job

        async def download(session: ImapSession) -> None:
            for index in pending:
                await window.acquire()
                batch = batches[index]
                try:
                    messages = await session.fetch(batch.uids, header_only=batch.header_only)
                except Exception as exc:  # noqa: BLE001 - handed to the storing loop, which raises it
                    ready[index].set_exception(exc)
                    return
                ready[index].set_result(parse(batch, messages))

        tasks = [asyncio.create_task(download(session)) for session in sessions]
        filed_uids: list[int] = []
        try:
            for index, batch in enumerate(batches):
                items = await (await ready[index])
                window.release()
                await self._store(batch, items, uidvalidity, report)
                filed_uids.extend(item.uid for item in items)
        finally:
            for task in [*tasks, *parsing]:
                task.cancel()
            await asyncio.gather(*tasks, *parsing, return_exceptions=True)
            for future in ready:
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: a failure is reported once, by the loop above
            for session in sessions[1:]:
                await session.close()
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        return filed_uids

    async def _extra_sessions(self, batch_count: int) -> list[ImapSession]:
        """More connections for a large first import: each downloads while the others wait on the server."""
        wanted = min(self.settings.connections - 1, batch_count - 1)
        sessions: list[ImapSession] = []
        for _ in range(max(wanted, 0)):
            session = ImapSession(self.settings)
            try:
                await session.open()
                await session.open_folder(self.folder, readonly=True)
            except (ImapError, OSError, TimeoutError) as exc:
                # A server that limits connections per user: import with fewer.
                log.info("mail.extra_connection_refused", mailbox=self.settings.name, error=str(exc))
                await session.close()
                break
            sessions.append(session)
        return sessions

    async def _store(self, batch: Batch, items: list[Prepared], uidvalidity: int, report: FolderReport) -> None:
        settings, folder = self.settings, self.folder
        now = datetime.now(UTC)
        result = await self.database.run_to_end(lambda sql: sql.file_batch(
            settings.name, folder, uidvalidity, items, self.own, max(batch.uids), now))
        self.filed_total += len(result.filed)
        report.fetched += len(items)
        report.filed += len(result.filed)
        report.known += result.known
        report.erased += result.erased
        report.warnings += result.warnings
        for item in items:
            if item.parsed is None or item.header_only:
                log.warning("mail.message_kept_raw" if item.parsed is None else "mail.message_oversized",
                            mailbox=settings.name, folder=folder, uid=item.uid, size=item.size)

    async def _finish_leftovers(self, imap: ImapSession, uidvalidity: int) -> None:
        """`move:`/`delete`: act on every archived message still in the folder (an interrupted run's too)."""
        settings = self.settings
        if settings.after_archive in ("keep", "seen"):
            return
        checkpoint = await self.database.run(lambda sql: sql.checkpoint(settings.name, self.folder))
        if not checkpoint or checkpoint[0] != uidvalidity or checkpoint[1] == 0:
            return
        uids = await imap.search("UID", f"1:{checkpoint[1]}")
        uids = [uid for uid in uids if uid <= checkpoint[1]]
        if not uids:
            return
        target = settings.move_target
        if target is not None:
            await imap.move(uids, target)
        else:
            await imap.delete(uids)
        log.info("mail.after_archive", mailbox=settings.name, folder=self.folder, action=settings.after_archive,
                 count=len(uids))

    async def run_forever(self) -> None:
        """Catch up, then watch; on any failure reconnect with backoff. Cancel to stop."""
        backoff = Backoff(first=1.0, ceiling=300.0)
        settings = self.settings
        while True:
            imap = ImapSession(settings)
            try:
                await imap.open()
                self.connects += 1
                self.connected, self.last_error = True, None
                await self._catch_up(imap)
                backoff.reset()
                while True:
                    await self._wait(imap)
                    self.behind_since = self.behind_since or time.time()
                    await self._catch_up(imap)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken mailbox never stops the others
                self.behind_since = self.behind_since or time.time()
                self.connected, self.last_error = False, str(exc)
                delay = backoff.next_delay()
                log.warning("mail.folder_failed", mailbox=settings.name, folder=self.folder,
                            error=f"{type(exc).__name__}: {exc}", retry_seconds=round(delay, 1))
            finally:
                self.connected = False
                await imap.close()  # LOGOUT, on shutdown too
            await asyncio.sleep(delay)

    async def _catch_up(self, imap: ImapSession) -> None:
        """Sync until a sync finds nothing new: what arrived while one was fetching was announced then,
        not during the IDLE that follows, and would wait for the server's next notice (minutes)."""
        while (await self.sync(imap)).fetched:
            pass
        self.behind_since = None

    async def _wait(self, imap: ImapSession) -> None:
        if self.settings.mode == "idle" and "IDLE" in imap.capabilities:
            await imap.wait_for_news(self.idle_seconds)
        else:
            await asyncio.sleep(self.settings.poll_seconds)
            await imap.noop()
