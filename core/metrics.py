"""Prometheus-style aggregates kept in memory: fixed buckets, not lists that grow per job."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# Generation times, in seconds (the last bucket, +Inf, is implied by `count`).
DURATION_BUCKETS: tuple[float, ...] = (5, 15, 30, 60, 120, 300, 600, 900)


@dataclass
class Histogram:
    """Counts per bucket, a sum and a count: constant size however many values it sees."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose upper bound is ≥ it."""
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.bounds):
            self.counts[index] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count of values ≤ le) for every bucket, ending with `+Inf`."""
        found, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            found.append((f"{bound:g}", running))
        found.append(("+Inf", self.count))
        return found
