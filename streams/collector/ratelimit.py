"""A token bucket per client: at most ``burst`` requests at once, ``rate`` per second after.

Contract: ``allow(key)`` takes one token from ``key``'s bucket and says whether there was
one. A new or long-idle client starts with a full bucket. Memory is bounded: at most
``max_clients`` buckets are kept, the least recently used is dropped first. Dropping a
bucket idle for ``burst / rate`` seconds or more loses nothing (it would be full again);
dropping a busier one hands that client a fresh burst, the price of the bound.

Keys are client addresses. Many real users can share one address (carrier-grade NAT,
office proxies), so the defaults are generous: the limit is there to stop floods, not to
police ordinary traffic (a page load sends one to three beacons).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by client; not thread-safe (one asyncio loop owns it)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate_per_s must be > 0, burst >= 1, max_clients >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        # key -> (tokens left, time they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str) -> bool:
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            tokens = self.burst
            if len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
        else:
            left, then = bucket
            tokens = min(self.burst, left + (now - then) * self.rate_per_s)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)  # re-inserted last: most recently used
        return allowed
