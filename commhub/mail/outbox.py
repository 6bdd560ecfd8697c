"""Mail commhub sends: filed in the history at once, kept in an outbox until the SMTP server has it.

Nothing is lost when the SMTP server is down: the message waits in `mail_outbox` and is retried
with growing pauses for `[smtp] retry_hours`; the API meanwhile says "queued". Once sent, a copy
is appended to the configured Sent folder; when the archiver later meets it there, its Message-ID
(commhub's own) finds the history entry that already exists, so it is filed once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from commhub.log import get_logger
from commhub.mail.filing import own_addresses
from commhub.mail.imap import ImapError, imap_session
from commhub.mail.parse import parse_message
from commhub.mail.sending import ComposeError, Draft, SendError, compose, envelope, transmit
from commhub.retry import Backoff
from commhub.settings import MailboxSettings, Settings
from commhub.store.mail_db import MailDatabase
from commhub.store.mail_sql import OutboxRow, Outgoing

log = get_logger(__name__)
FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 3600
IDLE_CHECK_SECONDS = 30
# An attempt is a SMTP delivery and an IMAP APPEND to Sent, each within its own timeout, plus margin.
ATTEMPT_WINDOW_TIMEOUTS = 3


@dataclass(frozen=True, slots=True)
class Submitted:
    email_id: int
    outbox_id: int
    message_id: str
    status: str  # sent, queued, failed
    error: str | None = None


class Outbox:
    def __init__(self, settings: Settings, database: MailDatabase) -> None:
        self.smtp = settings.smtp
        self.database = database
        self.own = own_addresses(settings)
        self.sent_box: MailboxSettings | None = next(
            (m for m in settings.mailboxes if m.name == settings.smtp.sent_mailbox), None)
        self.wake = asyncio.Event()

    async def submit(self, draft: Draft, *, agent_id: int | None = None, contact_ids: list[int] | None = None,
                     organization_ids: list[int] | None = None, send_now: bool = True) -> Submitted:
        """File the message, queue it, and (unless told not to) try to send it right away."""
        if not self.smtp.from_:
            raise ComposeError("no sender: set [smtp] from in the configuration")
        raw, message_id = compose(draft, self.smtp.from_)
        parsed = parse_message(raw)
        sender, recipients, _ = envelope(raw)
        now = datetime.now(UTC)
        outgoing = Outgoing(message_id, raw, parsed, "queued", agent_id, contact_ids or [], organization_ids or [])

        # Sent right here: the outbox loop (on any node) leaves the row alone while this attempt may
        # still run, so the message never goes out twice; if this node dies meanwhile, the loop sends it.
        first_attempt = now + timedelta(seconds=ATTEMPT_WINDOW_TIMEOUTS * self.smtp.timeout_seconds) if send_now else now

        def file(sql):  # type: ignore[no-untyped-def]
            email_id = sql.file_outgoing(outgoing, self.own, now)
            return email_id, sql.queue(email_id, raw, sender, recipients, now, first_attempt)
        email_id, outbox_id = await self.database.run(file)
        if not send_now:
            self.wake.set()
            return Submitted(email_id, outbox_id, message_id, "queued")
        status, error = await self._attempt(OutboxRow(outbox_id, email_id, raw, "queued", 0, now, False))
        return Submitted(email_id, outbox_id, message_id, status, error)

    async def deliver_due(self) -> int:
        """One pass over what is due; returns how many were handled."""
        rows = await self.database.run(lambda sql: sql.outbox_due(datetime.now(UTC)))
        for row in rows:
            await self._attempt(row)
        return len(rows)

    async def _attempt(self, row: OutboxRow) -> tuple[str, str | None]:
        if row.status == "queued":
            try:
                await transmit(self.smtp, row.raw)
            except SendError as exc:
                return await self._failed(row, str(exc))
            log.info("mail.sent", outbox_id=row.id, email_id=row.email_id)
        appended, error = await self._append(row.raw)
        now = datetime.now(UTC)
        if row.status == "queued":
            await self.database.run(lambda sql: sql.outbox_sent(row.id, row.email_id, now, appended))
        elif appended:
            await self.database.run(lambda sql: sql.outbox_appended(row.id))
        if not appended:
            await self._retry_append(row, error or "")
        return "sent", None

    async def _failed(self, row: OutboxRow, error: str) -> tuple[str, str | None]:
        now = datetime.now(UTC)
        created = row.created_at or now
        if now - created > timedelta(hours=self.smtp.retry_hours):
            log.warning("mail.send_failed", outbox_id=row.id, email_id=row.email_id, error=error)
            await self.database.run(lambda sql: sql.outbox_failed(row.id, row.email_id, error))
            await self.database.run(lambda sql: sql.warn("smtp", None, None, "send_failed", error, row.email_id, now))
            return "failed", error
        delay = min(FIRST_RETRY_SECONDS * 2 ** row.attempts, LONGEST_RETRY_SECONDS)
        log.warning("mail.send_queued", outbox_id=row.id, error=error, retry_seconds=delay)
        await self.database.run(lambda sql: sql.outbox_retry(row.id, error, now + timedelta(seconds=delay)))
        return "queued", error

    async def _append(self, raw: bytes) -> tuple[bool, str | None]:
        if self.sent_box is None:
            return True, None
        try:
            async with imap_session(self.sent_box) as imap:
                await imap.append(self.smtp.sent_folder, raw)
        except (ImapError, OSError, TimeoutError) as exc:
            return False, str(exc)
        return True, None

    async def _retry_append(self, row: OutboxRow, error: str) -> None:
        now = datetime.now(UTC)
        if row.created_at and now - row.created_at > timedelta(hours=self.smtp.retry_hours):
            await self.database.run(lambda sql: sql.outbox_appended(row.id, f"not copied to Sent: {error}"))
            return
        delay = min(FIRST_RETRY_SECONDS * 2 ** row.attempts, LONGEST_RETRY_SECONDS)
        log.warning("mail.append_sent_failed", outbox_id=row.id, error=error, retry_seconds=delay)
        await self.database.run(lambda sql: sql.outbox_retry(row.id, error, now + timedelta(seconds=delay)))

    async def run_forever(self) -> None:
        backoff = Backoff(first=1.0, ceiling=300.0)
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), IDLE_CHECK_SECONDS)
            except TimeoutError:
                pass
            self.wake.clear()
            try:
                while await self.deliver_due():
                    pass
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the outbox keeps going; the rows keep the messages
                delay = backoff.next_delay()
                log.warning("mail.outbox_failed", error=f"{type(exc).__name__}: {exc}", retry_seconds=round(delay, 1))
                await asyncio.sleep(delay)
