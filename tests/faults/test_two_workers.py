"""Two workers in one consumer group, one SIGKILLed mid-stream: its partitions move to the
survivor, nothing is lost, nothing is counted twice in ClickHouse (raw tables ``FINAL``;
1-minute rollups of closed windows, ``FINAL`` and summed over workers, = ground truth).

The second worker has its own metrics port (a free one; the stack's Prometheus does not
scrape it, which this test does not need). Event-time windows as in test_sigkill_twice.
One scenario (module fixture), two tests on it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from streams.settings import Settings
from tests.faults.conftest import drop_database, free_port, migrate
from tests.faults.support import (
    MIN_MS,
    Producer,
    carts_and_orders,
    close_and_settle,
    raw_counts,
)
from tests.integration.support import WorkerProcess, isolated_settings, metric_value, wait_until

pytestmark = pytest.mark.integration

N = 10_000
SPAN_MS = 10 * MIN_MS
RATE = 300


@dataclass
class Outcome:
    before_kill: tuple[float, float]
    takeover_s: float
    counts: dict[str, tuple[int, int, int]]
    n_orders: int
    n_carts: int
    rollups: tuple[Counter, Counter]
    truth: tuple[Counter, Counter]
    diff: str


@pytest.fixture(scope="module")
def outcome(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    logs = tmp_path_factory.mktemp("two-workers")
    settings = isolated_settings(
        stack_settings, metrics_port=free_port(), window_clock="event", allowed_lateness_s=120
    )
    other = settings.model_copy(update={"metrics_port": free_port()})
    migrate(settings)
    now = int(time.time() * 1000)
    start = (now - 30 * MIN_MS) // MIN_MS * MIN_MS
    stream = carts_and_orders(N, start, SPAN_MS, tag="w")
    closers = carts_and_orders(40, start + SPAN_MS + 3 * MIN_MS, 10_000, tag="z")
    events = [e for *_, e in stream]
    n_orders = sum(1 for e in events if "amount" in e) + 20
    n_carts = N + 40 - n_orders
    a = WorkerProcess(settings, logs / "a.log")
    b = WorkerProcess(other, logs / "b.log")
    producer = Producer(settings, [(t, k, v) for t, k, v, _ in stream], per_second=RATE)
    try:
        a.start()
        b.start()
        time.sleep(8)  # the group rebalances to both (tansu joins take ~3 s each)
        producer.start()
        wait_until(lambda: producer.sent, lambda s: s >= N // 3, 60, "a third produced")
        got_a = metric_value(a.metrics_text(), "salewatch_events_received_total")
        got_b = metric_value(b.metrics_text(), "salewatch_events_received_total")
        b.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        producer.join(120)
        wait_until(
            lambda: sum(c[0] for c in raw_counts(settings).values()),
            lambda n: n >= N,
            90,
            "the stream stored by the survivor",
        )
        takeover_s = time.monotonic() - killed_at
        counts, rollups, want, diff = close_and_settle(
            settings, closers, events, start + SPAN_MS, n_orders, n_carts
        )
    finally:
        producer.running.set()
        b.stop()
        a.stop()
        drop_database(settings)
    print(
        f"\ntwo workers: before the kill a={got_a:.0f} b={got_b:.0f} events received; "
        f"stream stored {takeover_s:.1f}s after the kill "
        f"(producing continued ~{N * 2 / 3 / RATE:.0f}s "
        f"after it); raw (FINAL, distinct, physical) {counts}\n{diff}"
    )
    return Outcome((got_a, got_b), takeover_s, counts, n_orders, n_carts, rollups, want, diff)


def test_partitions_were_shared_then_moved(outcome: Outcome) -> None:
    assert outcome.before_kill[0] > 0 and outcome.before_kill[1] > 0, outcome.before_kill


def test_raw_tables_hold_every_event_exactly_once(outcome: Outcome) -> None:
    assert outcome.counts["orders_raw"][:2] == (outcome.n_orders, outcome.n_orders)
    assert outcome.counts["carts_raw"][:2] == (outcome.n_carts, outcome.n_carts)


@pytest.mark.xfail(
    strict=True,
    reason="streams/recovery.py:234-236 (plan_rebuild): the survivor replays the moved "
    "partitions only from max(its own newest emitted window, its live emitted window) + 1 "
    "window; the killed worker's still-open windows, which the survivor had already closed "
    "for its own partitions during the ~20 s takeover, are never counted for the moved "
    "partitions: measured ~half of 3 one-minute windows missing (carts 4361/5000, orders "
    "4346/5000). Fix: plan the replay per moved partition from the previous owner's newest "
    "emitted window and key rollup rows by partition (not worker) so a catch-up row replaces "
    "exactly the dead owner's share",
)
def test_rollups_of_closed_windows_match_ground_truth(outcome: Outcome) -> None:
    assert outcome.rollups == outcome.truth, outcome.diff
