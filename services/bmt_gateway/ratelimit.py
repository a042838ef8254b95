"""Token buckets per client: a steady rate with a burst, answered with 429 and Retry-After."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._last_prune = 0.0

    def take(self, key: str) -> float:
        """0 if the request may pass, else the seconds until it could."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        self._prune(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second

    def _prune(self, now: float) -> None:
        # Buckets refilled to the brim carry no state: drop them now and then.
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        full_after = self.burst / self.per_second
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
