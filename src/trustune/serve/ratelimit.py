"""Per-key request quotas: a token bucket per API key (rate and burst set when the key was made)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "TokenBucket"]


@dataclass
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; each request takes one."""

    rate_per_s: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        if self.rate_per_s <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate_per_s


class RateLimiter:
    """The buckets of every key seen; a key's rate or burst change resets its bucket."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str, *, rate_per_s: float, burst: int) -> float:
        """0.0 when the request may go ahead, else the seconds to wait (for ``Retry-After``)."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
                bucket = TokenBucket(rate_per_s, max(1, burst), float(max(1, burst)), now)
                self._buckets[key_id] = bucket
            return bucket.take(now)
