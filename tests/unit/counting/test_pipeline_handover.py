"""A partition handed over with its events counted but not stored (``streams.worker.handover``).

Worker A counts the first part of a stream into its totals and releases the partition;
worker B reads that part again (``Pipeline.process(..., into_totals=False)``), then the
rest as usual. The sum of both workers' counters and histograms must be the counters and
histograms of one worker counting the whole stream, and B's rollup rows must be that
worker's rows: no event counted twice in Prometheus, none missing from the windows or the
sessions (a session that reached a funnel step in the first part does not reach it again).
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.counting.pipeline import Pipeline
from streams.metrics.totals import Totals
from tests.unit.counting.test_pipeline_batches import MIN, NOW, Batch, batches, stream


def counters_and_histograms(totals: list[Totals]) -> tuple[dict[Any, float], dict[Any, Any]]:
    """The counters (``*_total``) and histograms of ``totals``, summed over workers."""
    counters: dict[Any, float] = {}
    histograms: dict[Any, Any] = {}
    for t in totals:
        for name, series in t.values.items():
            if name.endswith("_total"):
                for labels, value in series.items():
                    key = (name, labels)
                    counters[key] = round(counters.get(key, 0.0) + value, 9)
        for name, hseries in t.histograms.items():
            for labels, h in hseries.items():
                key = (name, labels)
                buckets, total, count = histograms.get(key, ([0] * len(h.bucket_counts), 0.0, 0))
                histograms[key] = (
                    [a + b for a, b in zip(buckets, h.bucket_counts, strict=True)],
                    round(total + h.sum, 9),
                    count + h.count,
                )
    return {k: v for k, v in counters.items() if v}, histograms


def run(pipeline: Pipeline, work: list[Batch], into_totals: bool = True) -> None:
    for topic, events in work:
        pipeline.process(topic, events, NOW, partition=0, into_totals=into_totals)


def rows_of(pipeline: Pipeline) -> list[str]:
    return sorted(map(repr, pipeline.close_windows(NOW + 10 * MIN)))


@pytest.mark.parametrize(
    ("seed", "handed_over_share"),
    [(1, 0.0), (2, 0.3), (3, 0.5), (4, 0.9), (5, 1.0), (6, 0.5)],
)
def test_a_handover_counts_every_event_once_across_both_workers(
    seed: int, handed_over_share: float
) -> None:
    events = stream(seed, 300)
    cut = int(len(events) * handed_over_share)
    first, rest = batches(events[:cut], [cut // 2]), batches(events[cut:], [50, 120])

    one = Pipeline(Totals())
    run(one, first + rest)

    a, b = Pipeline(Totals()), Pipeline(Totals())
    run(a, first)  # A counted it, then released the partition unstored
    run(b, first, into_totals=False)  # B reads it again after the handover
    run(b, rest)

    assert counters_and_histograms([a.totals, b.totals]) == counters_and_histograms([one.totals])
    assert rows_of(b) == rows_of(one)


def test_without_the_handover_the_first_part_is_counted_twice() -> None:
    """Guards the test above: counting the first part into B's totals too is caught."""
    events = stream(2, 300)
    first, rest = batches(events[:150], []), batches(events[150:], [])
    one, a, b = Pipeline(Totals()), Pipeline(Totals()), Pipeline(Totals())
    run(one, first + rest)
    run(a, first)
    run(b, first + rest)
    assert counters_and_histograms([a.totals, b.totals]) != counters_and_histograms([one.totals])
    assert rows_of(b) == rows_of(one)
