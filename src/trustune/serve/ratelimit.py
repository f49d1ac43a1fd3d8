"""Request quotas: a token bucket per API key (rate and burst set when the key was made), and one
per client address for requests without a valid key."""

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
        wait = self.wait(now)
        if wait == 0.0:
            self.tokens -= 1.0
        return wait

    def wait(self, now: float) -> float:
        """The seconds until a token is available (0.0: one is), taking none."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            return 0.0
        if self.rate_per_s <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate_per_s

    def full(self, now: float) -> bool:
        """True when the bucket has refilled to ``burst`` (it is then the same as a new one)."""
        return self.tokens + (now - self.updated) * self.rate_per_s >= self.burst


class RateLimiter:
    """The buckets of every key (or address) seen; a change of rate or burst resets a bucket.

    At most ``max_buckets`` are kept: past that, full buckets (the same as new ones) are forgotten,
    so a flood of new keys or addresses cannot grow it without bound.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many buckets are kept."""
        return len(self._buckets)

    def acquire(self, key_id: str, *, rate_per_s: float, burst: int) -> float:
        """0.0 when the request may go ahead, else the seconds to wait (for ``Retry-After``)."""
        now = self._clock()
        with self._lock:
            return self._bucket(key_id, rate_per_s, burst, now).take(now)

    def wait(self, key_id: str, *, rate_per_s: float, burst: int) -> float:
        """Like :meth:`acquire`, but only looks: no token is taken."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
                return 0.0  # a new bucket is full
            return bucket.wait(now)

    def _bucket(self, key_id: str, rate_per_s: float, burst: int, now: float) -> TokenBucket:
        bucket = self._buckets.get(key_id)
        if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
            if bucket is None and len(self._buckets) >= self._max_buckets:
                self._forget_full(now)
            bucket = TokenBucket(rate_per_s, max(1, burst), float(max(1, burst)), now)
            self._buckets[key_id] = bucket
        return bucket

    def _forget_full(self, now: float) -> None:
        for name in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[name]
        if len(self._buckets) >= self._max_buckets:  # all busy: drop the oldest half
            for name in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[name]
