"""PostgreSQL advisory lock key spaces (the two-integer form: space, key).

Several nodes share one database; these locks are how they take turns. Each space is one kind of
thing, so a mailbox's lock can never be mistaken for an agent's.
"""

from __future__ import annotations

import hashlib

AGENT_SEQ_LOCKS = 7101  # key: agent id. Held by a transaction while it numbers that agent's messages.
MAILBOX_LOCKS = 7102  # key: mailbox_key(name). Held by the node archiving that mailbox.
CALLBACK_LOCKS = 7105  # key: hashtext(number). Held while a missed call finds or opens its callback task.
MIGRATION_LOCK = (7103, 0)  # held while one node applies migrations; the others wait, then find none to do


def mailbox_key(name: str) -> int:
    """A stable signed 32-bit key for a mailbox's configured name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)
OUTBOX_LOCK = (7104, 0)  # held by the node that sends the outbox
