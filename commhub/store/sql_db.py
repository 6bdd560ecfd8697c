"""One small interface for hand-written SQL on either backend: sqlite3 directly, or a SQLAlchemy session.

The call path runs about ten statements per event. Through SQLAlchemy (ORM or Core) each costs
0.2–0.3 ms of Python here; through sqlite3 0.02 ms. So the call path's SQL is written once, with
`:name` parameters both drivers understand, and run by `SqliteDb` on SQLite and by `SessionDb`
(SQLAlchemy `text()`) on PostgreSQL. The two differ only in how times and JSON travel: SQLite keeps
the text SQLAlchemy's SQLite types write (`2026-11-24 09:00:00.000000`, UTC; JSON text), PostgreSQL
takes and gives `datetime` objects and decoded JSON.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
T = TypeVar("T")


class SqlDb(Protocol):
    # PostgreSQL: other nodes write at the same time, so a row read to be changed is locked (FOR UPDATE).
    # SQLite has one writer at a time anyway (and no FOR UPDATE).
    row_locks: bool

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]: ...
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None: ...
    def many(self, sql: str, params: list[dict[str, Any]]) -> None: ...
    def time(self, value: datetime | None) -> Any: ...
    def read_time(self, value: Any) -> datetime | None: ...


def read_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def write_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def expand(sql: str, name: str, values: Sequence[Any], params: dict[str, Any]) -> str:
    """`IN :name` with a list: one named parameter per value (neither driver expands lists)."""
    names = [f"{name}_{index}" for index in range(len(values))]
    params.update(zip(names, values, strict=True))
    return sql.replace(f":{name}", "(" + ", ".join(f":{n}" for n in names) + ")" if names else "(NULL)")


class SqliteDb:
    row_locks = False

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self.connection.execute(sql, params or {}).fetchall()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.connection.execute(sql, params or {})

    def many(self, sql: str, params: list[dict[str, Any]]) -> None:
        self.connection.executemany(sql, params)

    def time(self, value: datetime | None) -> Any:
        return value.astimezone(UTC).strftime(SQLITE_TIME) if value is not None else None

    def read_time(self, value: Any) -> datetime | None:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def in_write_transaction(connection: sqlite3.Connection, work: Callable[[SqliteDb], T]) -> T:
    """`work` between BEGIN IMMEDIATE (the write lock taken now, not halfway through) and COMMIT, rolled
    back when it raises. A database another writer holds raises sqlite3.OperationalError ("locked")."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(SqliteDb(connection))
        connection.execute("COMMIT")
    except BaseException:
        # A write that fails in COMMIT (an I/O error, a full disk) has already rolled the transaction
        # back; a second ROLLBACK would replace that error with "no transaction is active".
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


class SessionDb:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._sqlite = session.get_bind().dialect.name == "sqlite"
        self.row_locks = not self._sqlite

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self.session.execute(text(sql), params or {}).all()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.session.execute(text(sql), params or {})

    def many(self, sql: str, params: list[dict[str, Any]]) -> None:
        if params:
            self.session.execute(text(sql), params)

    def time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).strftime(SQLITE_TIME) if self._sqlite else value.astimezone(UTC)

    def read_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
