"""The running mail side of `commhub serve`: one archiver task per watched folder, and the outbox.

Each folder has its own connection and task, so IDLE can watch it (IDLE watches one folder per
connection) and one broken mailbox or folder never holds up the others.
"""

from __future__ import annotations

import asyncio
from typing import Any

from commhub.mail.archiver import FolderArchiver
from commhub.mail.filing import own_addresses
from commhub.mail.outbox import Outbox
from commhub.settings import Settings
from commhub.store.mail_db import MailDatabase


class MailService:
    def __init__(self, settings: Settings, database: MailDatabase) -> None:
        self.database = database
        own = own_addresses(settings)
        self.archivers = [FolderArchiver(mailbox, folder, database, own)
                          for mailbox in settings.mailboxes for folder in mailbox.folders]
        self.outbox = Outbox(settings, database)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(archiver.run_forever(), name=f"mail:{archiver.settings.name}:{archiver.folder}")
                       for archiver in self.archivers]
        self._tasks.append(asyncio.create_task(self.outbox.run_forever(), name="mail:outbox"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def status(self) -> list[dict[str, Any]]:
        return [{"mailbox": a.settings.name, "folder": a.folder, "connected": a.connected,
                 "last_sync": a.last_sync.isoformat() if a.last_sync else None, "error": a.last_error}
                for a in self.archivers]
