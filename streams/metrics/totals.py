"""In-memory metric values keyed by metric name and label values (pure, no I/O).

``Totals`` is what the counting code writes into. The worker exposes it on ``/metrics``
through ``streams.metrics.exporter``; the backtest samples it at each scrape interval. Keeping the
values in plain dicts makes an update a dict operation, not a prometheus_client call, and
lets both callers share the counting code exactly.

Contract: every name must be declared in ``streams.metrics.defs.METRICS`` and label tuples
must follow its label order; unknown names raise ``KeyError`` (a programming error, caught
by tests), label values are *not* re-checked here — callers normalise them with
``streams.metrics.labels.closed`` first.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import product

from streams.metrics.defs import METRICS

LabelValues = tuple[str, ...]


@dataclass(slots=True)
class HistogramValue:
    """Per-bucket (non-cumulative) counts, plus sum and count, for fixed bucket bounds."""

    bucket_counts: list[int]
    sum: float = 0.0
    count: int = 0

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for n in self.bucket_counts:
            running += n
            out.append(running)
        return out


@dataclass
class Totals:
    """Cumulative counters, last-value gauges and histograms for all declared metrics."""

    values: dict[str, dict[LabelValues, float]] = field(default_factory=dict)
    histograms: dict[str, dict[LabelValues, HistogramValue]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for metric in METRICS.values():
            if metric.starts_at_zero:
                series = self.values.setdefault(metric.name, {})
                for labels in product(*(sorted(values) for _, values in metric.labels)):
                    series.setdefault(labels, 0.0)

    def inc(self, name: str, labels: LabelValues = (), amount: float = 1.0) -> None:
        """Add ``amount`` (≥ 0) to a counter."""
        series = self.values.get(name)
        if series is None:
            if METRICS[name].kind != "counter":
                raise KeyError(f"{name} is not a counter")
            series = self.values[name] = {}
        series[labels] = series.get(labels, 0.0) + amount

    def set(self, name: str, labels: LabelValues, value: float) -> None:
        """Set a gauge."""
        series = self.values.get(name)
        if series is None:
            if METRICS[name].kind != "gauge":
                raise KeyError(f"{name} is not a gauge")
            series = self.values[name] = {}
        series[labels] = value

    def set_max(self, name: str, labels: LabelValues, value: float) -> None:
        """Set a gauge to ``value`` if it is larger than the current one."""
        current = self.values.get(name, {}).get(labels)
        if current is None or value > current:
            self.set(name, labels, value)

    def observe(self, name: str, labels: LabelValues, value: float, count: int = 1) -> None:
        """Record ``count`` observations of ``value`` in a histogram."""
        series = self.histograms.get(name)
        if series is None:
            if METRICS[name].kind != "histogram":
                raise KeyError(f"{name} is not a histogram")
            series = self.histograms[name] = {}
        hist = series.get(labels)
        buckets = METRICS[name].buckets
        if hist is None:
            hist = series[labels] = HistogramValue([0] * (len(buckets) + 1))
        hist.bucket_counts[bisect_left(buckets, value)] += count
        hist.sum += value * count
        hist.count += count

    def get(self, name: str, labels: LabelValues = ()) -> float:
        """Current value of a counter or gauge (0 when never touched)."""
        return self.values.get(name, {}).get(labels, 0.0)

    def total(self, name: str) -> float:
        """Sum of a counter over all label sets."""
        return sum(self.values.get(name, {}).values())
