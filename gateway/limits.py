"""Per-client rate limits: a token bucket per client key, in memory (one gateway process).

``take(key)`` answers 0 when a request may pass, else the seconds until it may
(``Retry-After``). Buckets are kept for at most ``max_clients`` keys, least recently used
dropped first, so random client keys cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> int:
        """0 if allowed (a token taken), else whole seconds to wait (>= 1)."""
        if not self.enabled:
            return 0
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            allowed = 0
        else:
            self._buckets[key] = (tokens, now)
            allowed = max(1, math.ceil((1 - tokens) / self.rate))
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed
