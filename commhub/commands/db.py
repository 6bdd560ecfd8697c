"""`commhub db upgrade`."""

from __future__ import annotations

import argparse

from commhub.commands.common import open_database
from commhub.settings import Settings
from commhub.store.migrate import pending_revisions, upgrade


async def db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    async with open_database(settings, migrate=False) as db:
        pending = await pending_revisions(db.engine)
        await upgrade(db.engine)
    print(f"applied {len(pending)} migration(s): {', '.join(pending)}" if pending else "database is up to date")
    return 0
