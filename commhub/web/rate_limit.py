"""Failed credentials counted per client address: after too many, that client waits (429).

Only failures are counted, in memory, per process: a good request costs one dictionary lookup and
is never slowed. Blocking every request of the blocked kind from that address, the right
credentials included, is deliberate: otherwise a guesser would learn from a 2xx that it had guessed
right while blocked. Behind a NAT one misconfigured phone or browser can block its neighbours for
`block_seconds`; the log says which address and why.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from commhub.errors import TooManyRequests


@dataclass(slots=True)
class _Client:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class FailureLimiter:
    def __init__(self, *, limit: int, window_s: float, block_s: float,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000) -> None:
        self._limit = limit
        self._window = window_s
        self._block = block_s
        self._clock = clock
        self._max_clients = max_clients
        # Oldest-touched first, so a flood of new addresses evicts the quietest ones, never a blocked
        # client that keeps trying (each try touches it again).
        self._clients: OrderedDict[tuple[str, str], _Client] = OrderedDict()

    def check(self, kind: str, address: str) -> None:
        """Raise TooManyRequests while this client is blocked for `kind`."""
        client = self._clients.get((kind, address))
        if client is None:
            return
        wait = client.blocked_until - self._clock()
        if wait > 0:
            self._clients.move_to_end((kind, address))
            raise TooManyRequests(f"too many failed attempts from this address; retry in {math.ceil(wait)} s",
                                  retry_after=math.ceil(wait))

    def failed(self, kind: str, address: str) -> bool:
        """Count one failure; True when it blocks the client from now on."""
        now = self._clock()
        key = (kind, address)
        client = self._clients.pop(key, None) or _Client()
        self._clients[key] = client
        while client.failures and client.failures[0] <= now - self._window:
            client.failures.popleft()
        client.failures.append(now)
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        if len(client.failures) >= self._limit:
            client.failures.clear()
            client.blocked_until = now + self._block
            return True
        return False
