"""Exponential backoff with jitter, for every loop that retries an external service."""

from __future__ import annotations

import random


class Backoff:
    """1 s, 2 s, 4 s … up to `ceiling`, each drawn between half and all of its bound, so that many clients
    that lost the same server do not come back in step."""

    def __init__(self, first: float = 1.0, ceiling: float = 300.0) -> None:
        self.first = first
        self.ceiling = ceiling
        self.failures = 0

    def next_delay(self) -> float:
        bound = min(self.ceiling, self.first * 2 ** self.failures)
        self.failures += 1
        return random.uniform(bound / 2, bound)

    def reset(self) -> None:
        self.failures = 0
