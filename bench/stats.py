"""Arithmetic of the benchmark figures (pure functions, unit-tested).

* :func:`percentile` — linear interpolation between closest ranks (NumPy's default), so
  p50 of ``[1, 2, 3, 4]`` is 2.5 and p99 of a few hundred samples is not just the maximum;
  ``inf`` samples (a marker never seen) count as larger than everything;
* :func:`steady_rate` — events/s between the moments a run had consumed ``lo`` and ``hi``
  of its events, interpolated between progress samples: start-up (group join, first
  fetch) and the drain of the last batches do not count, only the steady middle;
* :func:`summarize` — count, p50/p95/p99 and max of latency samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 ≤ q ≤ 100) of ``values``; NaN when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    if math.isinf(ordered[low]) or (math.isinf(ordered[high]) and rank > low):
        return math.inf  # a sample never seen (inf) is above any interpolation
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """Latency samples summarised; seconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        count=len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        max=max(values) if values else math.nan,
    )


def time_reaching(samples: Sequence[tuple[float, float]], target: float) -> float:
    """When a non-decreasing count first reached ``target``, interpolated between samples.

    ``samples`` are ``(time, count)`` in time order; NaN if the count never got there.
    """
    previous: tuple[float, float] | None = None
    for t, count in samples:
        if count >= target:
            if previous is None or count == previous[1]:
                return t
            t0, c0 = previous
            return t0 + (t - t0) * (target - c0) / (count - c0)
        previous = (t, count)
    return math.nan


def steady_rate(
    samples: Sequence[tuple[float, float]], total: float, lo: float = 0.1, hi: float = 0.9
) -> float:
    """Events/s between the moments ``lo`` and ``hi`` of ``total`` had been consumed."""
    if not 0 <= lo < hi <= 1:
        raise ValueError("need 0 <= lo < hi <= 1")
    start = time_reaching(samples, lo * total)
    end = time_reaching(samples, hi * total)
    if math.isnan(start) or math.isnan(end) or end <= start:
        return math.nan
    return (hi - lo) * total / (end - start)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is 0 or NaN."""
    if not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def value_at(samples: Sequence[tuple[float, float]], t: float) -> float:
    """A sampled quantity (say CPU seconds) at time ``t``, interpolated; NaN outside."""
    previous: tuple[float, float] | None = None
    for ts, value in samples:
        if ts >= t:
            if previous is None:
                return value if ts == t else math.nan
            t0, v0 = previous
            return v0 + (value - v0) * (t - t0) / (ts - t0) if ts > t0 else value
        previous = (ts, value)
    return math.nan


def steady_cost(
    progress: Sequence[tuple[float, float]],
    usage: Sequence[tuple[float, float]],
    total: float,
    lo: float = 0.1,
    hi: float = 0.9,
) -> float:
    """``usage`` spent per event over the same steady window as :func:`steady_rate`.

    With ``usage`` in CPU seconds this is CPU seconds per event: a figure that depends far
    less than events/s on what else the shared machine is running.
    """
    start = time_reaching(progress, lo * total)
    end = time_reaching(progress, hi * total)
    spent = value_at(usage, end) - value_at(usage, start)
    return spent / ((hi - lo) * total)
