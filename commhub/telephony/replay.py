"""Remembers signed requests for as long as their signature is accepted, so none is accepted twice."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import UTC, datetime


class MemoryReplayGuard:
    """Per process. A replay that reaches another node or outlives a restart is still stored once:
    call events are idempotent (`calls.apply`); this guard only refuses the request itself."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC), limit: int = 1_000_000) -> None:
        self._now = now
        self._limit = limit
        self._until: dict[str, datetime] = {}
        self._expiry: list[tuple[datetime, str]] = []

    def first_time(self, key: str, *, until: datetime) -> bool:
        self._forget_expired()
        if key in self._until:
            return False
        if len(self._until) >= self._limit:
            _, oldest = heapq.heappop(self._expiry)
            self._until.pop(oldest, None)
        self._until[key] = until
        heapq.heappush(self._expiry, (until, key))
        return True

    def _forget_expired(self) -> None:
        now = self._now()
        while self._expiry and self._expiry[0][0] < now:
            _, key = heapq.heappop(self._expiry)
            self._until.pop(key, None)
