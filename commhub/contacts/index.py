"""Where caller-ID candidates come from: one indexed query per lookup, never an ORM round trip.

The webhook hot path must answer in microseconds, so on SQLite the lookup runs on a read-only
`sqlite3` connection in the event-loop thread (p99 ≈ 20 µs, far below the ≈ 250 µs thread hop of
aiosqlite; WAL mode means it never waits for a writer, and each query sees the latest commit, so the
index is correct after every write by any process). On PostgreSQL it is one prepared Core query.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from commhub.contacts.matching import Candidate, Via
from commhub.contacts.names import display_name
from commhub.contacts.phone import prefixes_of

_SELECT = """
SELECT p.kind, p.contact_id, p.organization_id, p.e164, p.switchboard_prefix,
       c.salutation, c.title, c.first_name, c.last_name, c.customer_class, c.organization_id,
       co.name, o.name, o.customer_class
FROM phone_numbers p
LEFT JOIN contacts c ON c.id = p.contact_id
LEFT JOIN organizations co ON co.id = c.organization_id
LEFT JOIN organizations o ON o.id = p.organization_id
"""
EXACT_SQL = _SELECT + "WHERE p.e164 = :e164"


def prefix_sql(count: int) -> str:
    names = ", ".join(f":p{i}" for i in range(count))
    return _SELECT + f"WHERE p.switchboard_prefix IN ({names})"


def _candidate(row: tuple[Any, ...] | Any, via: Via, caller: str) -> Candidate:
    (kind, contact_id, org_id, e164, prefix, _salutation, title, first, last, contact_class,
     contact_org_id, contact_org_name, org_name, org_class) = tuple(row)
    if contact_id is not None:
        return Candidate(kind="contact", id=contact_id, name=display_name(first, last, title)
                         or contact_org_name or "?", company=contact_org_name, organization_id=contact_org_id,
                         customer_class=contact_class, via=via, number_kind=kind, matched_number=e164)
    direct_dial = caller[len(prefix):] if via == "switchboard" else None
    return Candidate(kind="organization", id=org_id, name=org_name, company=org_name, organization_id=org_id,
                     customer_class=org_class, via=via, number_kind=kind,
                     matched_number=prefix if via == "switchboard" else e164, direct_dial=direct_dial)


def _longest_prefix_only(rows: list[Any]) -> list[Any]:
    if not rows:
        return rows
    longest = max(len(row[4]) for row in rows)
    return [row for row in rows if len(row[4]) == longest]


class CallerIndex(ABC):
    """Candidates for an E.164 number; subclasses only say how a query reaches the database."""

    @abstractmethod
    async def _rows(self, sql: str, params: dict[str, str]) -> Sequence[Any]: ...

    @abstractmethod
    def close(self) -> None: ...

    async def exact(self, e164: str) -> list[Candidate]:
        rows = await self._rows(EXACT_SQL, {"e164": e164})
        return [_candidate(row, "exact", e164) for row in rows]

    async def via_switchboard(self, e164: str) -> list[Candidate]:
        prefixes = prefixes_of(e164)
        rows = await self._rows(prefix_sql(len(prefixes)), {f"p{i}": prefix for i, prefix in enumerate(prefixes)})
        return [_candidate(row, "switchboard", e164) for row in _longest_prefix_only(rows)]


class SqliteCallerIndex(CallerIndex):
    """Read-only sqlite3 connection used from the event-loop thread (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                           check_same_thread=False)
        self._connection.execute("PRAGMA busy_timeout=2000")
        # The default 2 MB page cache holds little of a large number index; 16 MB keeps its upper levels.
        self._connection.execute("PRAGMA cache_size=-16384")

    async def _rows(self, sql: str, params: dict[str, str]) -> Sequence[Any]:
        return self._connection.execute(sql, params).fetchall()

    def close(self) -> None:
        self._connection.close()


class SqlCallerIndex(CallerIndex):
    """The same queries through SQLAlchemy Core on any async engine (PostgreSQL in production)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, sql: str, params: dict[str, str]) -> Sequence[Any]:
        async with self._engine.connect() as connection:
            return (await connection.execute(text(sql), params)).all()

    def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""
