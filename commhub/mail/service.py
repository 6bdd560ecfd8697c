"""The running mail side of `commhub serve`: one archiver task per watched folder, and the outbox.

Each folder has its own connection and task, so IDLE can watch it (IDLE watches one folder per
connection) and one broken mailbox or folder never holds up the others.

With several nodes on one PostgreSQL, each mailbox and the outbox are duties (commhub/leases.py):
one node at a time runs a mailbox's archivers, or the outbox, and another takes over when it dies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from commhub.leases import Duty, LeaseKeeper
from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import own_addresses
from commhub.mail.outbox import Outbox
from commhub.settings import Settings
from commhub.store.locks import MAILBOX_LOCKS, OUTBOX_LOCK, mailbox_key
from commhub.store.mail_db import MailDatabase

KeeperFactory = Callable[[list[Duty]], LeaseKeeper]


class MailService:
    def __init__(self, settings: Settings, database: MailDatabase, *, leases: KeeperFactory | None = None) -> None:
        self.database = database
        own = own_addresses(settings)
        self.mailboxes = [mailbox.name for mailbox in settings.mailboxes]
        self.archivers = [FolderArchiver(mailbox, folder, database, own)
                          for mailbox in settings.mailboxes for folder in mailbox.folders]
        self.outbox = Outbox(settings, database)
        self._tasks: list[asyncio.Task[None]] = []
        self._leases = leases
        self.keeper: LeaseKeeper | None = None

    def start(self) -> None:
        if self._leases is None:
            self._tasks = [asyncio.create_task(archiver.run_forever(),
                                               name=f"mail:{archiver.settings.name}:{archiver.folder}")
                           for archiver in self.archivers]
            self._tasks.append(asyncio.create_task(self.outbox.run_forever(), name="mail:outbox"))
            return
        duties = [Duty(f"mailbox:{name}", MAILBOX_LOCKS, mailbox_key(name), lambda name=name: self._archive(name))
                  for name in self.mailboxes]
        duties.append(Duty("outbox", *OUTBOX_LOCK, self.outbox.run_forever))
        self.keeper = self._leases(duties)
        self.keeper.start()

    async def _archive(self, mailbox: str) -> None:
        """One mailbox's folders, for as long as this node holds the mailbox."""
        archivers = [archiver for archiver in self.archivers if archiver.settings.name == mailbox]
        for archiver in archivers:
            archiver.behind_since = time.time()  # what the previous holder left is not this node's lag
        tasks = [asyncio.create_task(archiver.run_forever(), name=f"mail:{mailbox}:{archiver.folder}")
                 for archiver in archivers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Shutdown: archivers finish the batch they are committing and log out; leases go to other nodes."""
        if self.keeper is not None:
            await self.keeper.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def holds(self, mailbox: str) -> bool:
        return self.keeper is None or self.keeper.holds(f"mailbox:{mailbox}")

    def problems(self) -> list[str]:
        """What keeps this node's mail side from working (for /readyz); an unreachable IMAP server is
        not one: it is retried, and taking the node out of service would not bring it back."""
        if self.keeper is not None:
            if not self.keeper.connected:
                return ["mail: no connection for the mailbox leases"]
            return [f"mail: {name} stopped" for name in self.keeper.broken()]
        return [f"mail: {task.get_name()} stopped" for task in self._tasks if task.done()]

    def status(self) -> list[dict[str, Any]]:
        return [{"mailbox": a.settings.name, "folder": a.folder, "held_here": self.holds(a.settings.name),
                 "connected": a.connected,
                 "last_sync": a.last_sync.isoformat() if a.last_sync else None, "error": a.last_error}
                for a in self.archivers]
