"""Turning fetched bytes into what the store files: parsed, hashed, keyed.

Parsing is most of an import's CPU (about half a millisecond per message, IMAP-NOTES.md and
docs/benchmarks.md). A large import therefore parses in worker processes, on the cores the event
loop and the database thread do not use; a few new messages are parsed on the mail thread, where
starting a process would cost more than it saves. Either way the result is the same `Prepared`.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field

from commhub.mail.parse import ParsedMail, message_key, parse_headers, parse_message

# From this many new messages in a folder on, parsing moves to worker processes.
POOL_FROM_MESSAGES = 300


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(slots=True)
class Prepared:
    """One fetched message, parsed (or not), hashed, ready to store."""

    uid: int
    size: int
    raw: bytes
    raw_sha256: str
    key: str
    key_sha256: str
    parsed: ParsedMail | None
    header_only: bool = False
    problem: str | None = None  # why it could not be parsed
    attachment_sha256: list[str] = field(default_factory=list)  # in the order of parsed.attachments


@dataclass(frozen=True, slots=True)
class _Result:
    """What a worker sends back: everything but the raw bytes, which the caller still has."""

    raw_sha256: str
    key: str
    parsed: ParsedMail | None
    problem: str | None
    attachment_sha256: list[str]


def _prepare_one(raw: bytes, header_only: bool) -> _Result:
    raw_sha256 = sha256(raw)
    try:
        parsed = parse_headers(raw) if header_only else parse_message(raw)
    except Exception as exc:  # noqa: BLE001 - a poison message is kept raw and flagged, never blocks the folder
        return _Result(raw_sha256, f"sha256:{raw_sha256}", None, f"{type(exc).__name__}: {exc}"[:500], [])
    return _Result(raw_sha256, message_key(parsed, raw), parsed, None,
                   [sha256(attachment.data) for attachment in parsed.attachments])


def _prepare_many(messages: Sequence[tuple[bytes, bool]]) -> list[_Result]:
    return [_prepare_one(raw, header_only) for raw, header_only in messages]


def _assemble(uid: int, size: int, raw: bytes, header_only: bool, result: _Result) -> Prepared:
    return Prepared(uid, size, raw, result.raw_sha256, result.key, sha256(result.key.encode("utf-8", "surrogatepass")),
                    result.parsed, header_only, result.problem, result.attachment_sha256)


def prepare(uid: int, size: int, raw: bytes, header_only: bool) -> Prepared:
    return _assemble(uid, size, raw, header_only, _prepare_one(raw, header_only))


def prepare_batch(messages: dict[int, bytes], sizes: dict[int, int], header_only: bool) -> list[Prepared]:
    return [prepare(uid, sizes.get(uid, len(raw)), raw, header_only) for uid, raw in sorted(messages.items())]


def parse_pool() -> Executor:
    """Worker processes for a large import: one per core the loop and the database thread leave free."""
    workers = max(1, min((os.cpu_count() or 2) - 1, 4))
    # spawn, never fork: the parent runs threads (the database, the call path).
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """A worker whose commhub was killed (SIGKILL, OOM) would wait for work forever, holding the
    parent's stdout and stderr open: it watches its parent and leaves with it."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)
    threading.Thread(target=watch, name="commhub-parent-watch", daemon=True).start()


async def prepare_in(pool: Executor, messages: dict[int, bytes], sizes: dict[int, int],
                     header_only: bool) -> list[Prepared]:
    """`prepare_batch` in a worker process."""
    ordered = sorted(messages.items())
    results = await asyncio.wrap_future(pool.submit(_prepare_many, [(raw, header_only) for _, raw in ordered]))
    return [_assemble(uid, sizes.get(uid, len(raw)), raw, header_only, result)
            for (uid, raw), result in zip(ordered, results, strict=True)]
