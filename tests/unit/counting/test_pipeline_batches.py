"""Counting does not depend on where a stream is cut into batches.

Written for issue 18's per-batch counting lever (runs of one window per classifier call,
session activity per run; dropped: no gain measured, ``bench/RESULTS.md``), kept as the
guard any such change must pass: the counters, histograms and rollup rows of a stream cut
into batches anywhere must be those of the same events counted one at a time, in the same
order, for streams with sessions spanning windows, events out of order across windows,
late events and duplicates.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.counting.pipeline import Pipeline
from streams.events.contract import Topic
from streams.metrics.totals import Totals
from tests.unit.events_factory import make_event

T0 = 1_731_283_200_000  # a window start
MIN = 60_000
NOW = T0 + 4 * MIN  # windows before T0 + 2 min are closed at NOW (2-minute lateness)

TOPIC_TYPES: dict[Topic, list[str]] = {
    "clicks": ["page_view", "page_view", "click"],
    "carts": ["add_to_cart", "remove_from_cart"],
    "orders": ["order_created", "payment_succeeded", "payment_failed", "order_cancelled"],
}


def stream(seed: int, n: int) -> list[tuple[Topic, dict[str, Any]]]:
    rng = random.Random(seed)
    out: list[tuple[Topic, dict[str, Any]]] = []
    for i in range(n):
        topic = rng.choice(list(TOPIC_TYPES))
        # a few ids repeat (duplicates); ts over 5 windows, some late at NOW, any order
        event_id = f"e-{rng.randrange(n) if rng.random() < 0.1 else n + i}"
        fields: dict[str, Any] = {
            "event_id": event_id,
            "event_type": rng.choice(TOPIC_TYPES[topic]),
            "ts": T0 + rng.randrange(-MIN, 4 * MIN),
            "session_id": f"s-{rng.randrange(6)}",
            "user_id": f"u-{rng.randrange(4)}",
            "channel": rng.choice(["app", "web", "mini_program", "fax"]),
        }
        if topic == "clicks":
            fields["page_type"] = rng.choice(["home", "detail", "search"])
            fields["load_ms"] = rng.randrange(0, 9000)
            if rng.random() < 0.3:
                fields["inp_ms"] = rng.randrange(0, 900)
                fields["cls"] = rng.random()
        if topic == "orders":
            fields["order_id"] = f"o-{rng.randrange(5)}"
            fields["amount"] = rng.randrange(0, 100_000) / 100
            if rng.random() < 0.5:
                fields["items"] = []
        out.append((topic, make_event(topic, **fields)))
    return out


Batch = tuple[Topic, list[dict[str, Any]]]


def batches(events: list[tuple[Topic, dict[str, Any]]], cuts: list[int]) -> list[Batch]:
    """The stream cut at ``cuts``; each piece split by topic (a batch holds one topic),
    each topic's events in arrival order, as the worker's reader hands them over."""
    out: list[Batch] = []
    start = 0
    for end in [*sorted(c for c in cuts if c < len(events)), len(events)]:
        chunk, start = events[start:end], end
        for topic in TOPIC_TYPES:
            mine = [e for t, e in chunk if t == topic]
            if mine:
                out.append((topic, mine))
    return out


def count(work: list[Batch]) -> Any:
    """Totals (counters, gauges, histograms) and rollup rows of ``work``."""
    totals = Totals()
    pipeline = Pipeline(totals)
    for topic, events in work:
        pipeline.process(topic, events, NOW, partition=0)
    rows = pipeline.close_windows(NOW + 10 * MIN)
    # floats to 1e-9: a batch adds its sums (cents, ms) to the totals once, converted to
    # yuan or seconds, not event by event (float rounding, as before issue 18)
    histograms = {
        name: {labels: (h.bucket_counts, round(h.sum, 9), h.count) for labels, h in series.items()}
        for name, series in totals.histograms.items()
    }
    gauges_and_counters = {
        name: {labels: round(value, 9) for labels, value in series.items()}
        for name, series in totals.values.items()
        if name != "salewatch_window_closed_timestamp_seconds"
    }
    return gauges_and_counters, histograms, sorted(map(repr, rows))


def one_at_a_time(work: list[Batch]) -> list[Batch]:
    """The same events in the same order, one per batch."""
    return [(topic, [e]) for topic, events in work for e in events]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 120),
    cuts=st.lists(st.integers(0, 120), max_size=8),
)
def test_any_batching_counts_like_one_event_at_a_time(seed: int, n: int, cuts: list[int]) -> None:
    work = batches(stream(seed, n), cuts)
    assert count(work) == count(one_at_a_time(work))


def test_the_stream_exercises_what_it_claims() -> None:
    """Guards the generator: late events, duplicates, several windows and funnel steps."""
    work = batches(stream(7, 400), [100, 200, 300])
    assert max(len(events) for _, events in work) > 30
    totals, _, rows = count(work)
    assert sum(totals["salewatch_events_late_total"].values()) > 0
    assert sum(totals["salewatch_events_duplicate_total"].values()) > 0
    assert sum(totals["salewatch_funnel_sessions_total"].values()) > 0
    assert len({r for r in rows if "window_start" in r}) > 3
