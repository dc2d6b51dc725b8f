"""Per-user update rate limiting (a token bucket per user).

`UpdateRateLimiter` is the in-process limiter of a single instance; several instances
share `core.redis_shared.RedisRateLimiter` instead. Both are a `RateLimiter`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

# Inline mode (`@bot words`) sends a query per keystroke, each a database read: its own
# bucket per user, roomier than chat updates (typing a few words is ~20 queries at once),
# then 2 a second sustained.
INLINE_BURST = 20
INLINE_PER_SECOND = 2.0


class RateLimiter(Protocol):
    async def check(self, key: str) -> bool:
        """True when `key` may go on now (and counts it)."""
        ...


class UpdateRateLimiter:
    """Allows bursts of `burst` updates and `per_second` sustained, per key."""

    def __init__(self, burst: int = 12, per_second: float = 1.0, max_keys: int = 100_000) -> None:
        self.burst = burst
        self.per_second = per_second
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    async def check(self, key: str) -> bool:
        return self.allow(key)
