"""Which exceptions mean "the database is not there right now" rather than "this request is wrong".

Those become 503 with Retry-After, so a phone system retries the webhook later and an API client
knows to wait; nothing was stored (the transaction rolled back with the failure).
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

# SQLite's words for a file it cannot open, write or lock; never a constraint a request broke.
_SQLITE_OUTAGE = ("readonly", "read-only", "unable to open", "disk i/o", "locked", "busy", "disk is full",
                  "no such table")


def is_database_outage(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.OperationalError):
        return any(word in str(exc).lower() for word in _SQLITE_OUTAGE)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    # asyncpg's connection-level errors (server shut down, connection lost, cannot connect now).
    module = type(exc).__module__
    return module.startswith("asyncpg") and type(exc).__name__ in {
        "ConnectionDoesNotExistError", "CannotConnectNowError", "AdminShutdownError", "CrashShutdownError",
        "ConnectionFailureError", "InterfaceError", "InternalClientError", "TooManyConnectionsError"}
