"""Filing stored mail again when a contact or organization gains an address or a domain.

Called in the same transaction that saves the contact (API, import), so the file and its mail
appear together: a message from an unknown sender, waiting in "unassigned", lands in the history
of the contact created for that sender.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from commhub.mail.filing import OwnAddresses
from commhub.store.mail_sql import MailSql
from commhub.store.sql_db import SessionDb


async def refile(session: AsyncSession, own: OwnAddresses, *, addresses: Iterable[str] = (),
                 domains: Iterable[str] = ()) -> int:
    """Link the mail naming these addresses or domains to the files that have them; count of emails."""
    wanted, wanted_domains = list(addresses), [d for d in domains if d]
    if not wanted and not wanted_domains:
        return 0

    def work(sync: Session) -> int:
        sql = MailSql(SessionDb(sync))
        return sql.refile(wanted, own) + sql.refile_domains(wanted_domains, own)
    return await session.run_sync(work)
