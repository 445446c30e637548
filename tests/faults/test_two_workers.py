"""Two workers in one consumer group, one SIGKILLed mid-stream: its partitions move to the
survivor, nothing is lost, nothing is counted twice in ClickHouse (raw tables ``FINAL``;
1-minute rollups of closed windows, ``FINAL`` and summed over workers, = ground truth).

The second worker has its own metrics port (a free one; the stack's Prometheus does not
scrape it, which this test does not need). Event-time windows as in test_sigkill_twice.
One scenario (module fixture), three tests on it.

Time runs ~11x faster than on the wall clock here (12 minutes of event time in ~67 s), so
the allowed lateness is scaled too: 5 minutes of event time (~28 s of the test's time,
what 120 s are to a live worker on the wall clock). Kafka notices the dead member after
its session timeout (~10 s: ~2 event-minutes), while the survivor's clock, driven by its
own partitions, runs on and closes windows the dead worker had open — the windows the
survivor must emit for the moved partitions as catch-up rows (``streams.window_emitters``;
the test checks it did). The dead worker's backlog must arrive within the lateness; with
the live default of 120 s (~11 s here) it is counted late instead (measured at 18x: 296
of 10,000, exactly the shortfall of the one window they belonged to).
"""

from __future__ import annotations

import re
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
from tests.integration.support import (
    WorkerProcess,
    ch_rows,
    isolated_settings,
    metric_value,
    wait_until,
)

pytestmark = pytest.mark.integration

N = 10_000
SPAN_MS = 12 * MIN_MS
RATE = 150
LATENESS_MS = 5 * MIN_MS
KILL_AFTER = 2 * N // 3
# the worker's log line for a rebuild of every partition / of the partitions it was given
ALL_REBUILT = "counting state of partitions [0, 1, 2, 3] rebuilt"
HELD = re.compile(r"counting state of partitions \[([\d, ]+)\] rebuilt")


@dataclass
class Outcome:
    before_kill: tuple[float, float]
    takeover_s: float
    moved_s: float
    late: float
    dead_held: set[int]
    marked: dict[str, set[int]]
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
        stack_settings,
        metrics_port=free_port(),
        window_clock="event",
        allowed_lateness_s=LATENESS_MS // 1000,
    )
    other = settings.model_copy(update={"metrics_port": free_port()})
    migrate(settings)
    now = int(time.time() * 1000)
    start = (now - 30 * MIN_MS) // MIN_MS * MIN_MS
    stream = carts_and_orders(N, start, SPAN_MS, tag="w")
    closers = carts_and_orders(40, start + SPAN_MS + LATENESS_MS + 2 * MIN_MS, 10_000, tag="z")
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
        wait_until(lambda: producer.sent, lambda s: s >= KILL_AFTER, 90, "two thirds produced")
        got_a = metric_value(a.metrics_text(), "salewatch_events_received_total")
        got_b = metric_value(b.metrics_text(), "salewatch_events_received_total")
        all_rebuilt = a.log_text().count(ALL_REBUILT)
        b.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: a.log_text().count(ALL_REBUILT),
            lambda n: n > all_rebuilt,
            90,
            "the survivor rebuilt every partition",
        )
        moved_s = time.monotonic() - killed_at
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
        late = metric_value(a.metrics_text(), "salewatch_events_late_total")
        dead_held = {int(p) for p in HELD.findall(b.log_text())[-1].split(", ")}
        marked = {
            str(worker): {int(p) for p in partitions}
            for worker, partitions in ch_rows(
                settings,
                "SELECT worker, groupUniqArray(p) FROM window_emitters FINAL "
                "ARRAY JOIN partitions AS p GROUP BY worker",
            )
        }
    finally:
        producer.running.set()
        b.stop()
        a.stop()
        drop_database(settings)
    print(
        f"\ntwo workers: before the kill a={got_a:.0f} b={got_b:.0f} events received; "
        f"partitions {sorted(dead_held)} rebuilt by the survivor {moved_s:.1f}s after the kill; "
        f"marks {marked}; stream stored {takeover_s:.1f}s after the kill "
        f"(producing continued ~{(N - KILL_AFTER) / RATE:.0f}s "
        f"after it); {late:.0f} counted late by the survivor; "
        f"raw (FINAL, distinct, physical) {counts}\n{diff}"
    )
    return Outcome(
        (got_a, got_b),
        takeover_s,
        moved_s,
        late,
        dead_held,
        marked,
        counts,
        n_orders,
        n_carts,
        rollups,
        want,
        diff,
    )


def test_partitions_were_shared_then_moved(outcome: Outcome) -> None:
    assert outcome.before_kill[0] > 0 and outcome.before_kill[1] > 0, outcome.before_kill


def test_raw_tables_hold_every_event_exactly_once(outcome: Outcome) -> None:
    assert outcome.counts["orders_raw"][:2] == (outcome.n_orders, outcome.n_orders)
    assert outcome.counts["carts_raw"][:2] == (outcome.n_carts, outcome.n_carts)


def test_rollups_of_closed_windows_match_ground_truth(outcome: Outcome) -> None:
    """Summed over the workers' and the catch-up rows (``streams.window_emitters``)."""
    assert outcome.rollups == outcome.truth, outcome.diff


def test_the_survivor_counted_nothing_late(outcome: Outcome) -> None:
    assert outcome.late == 0


def test_the_survivor_caught_up_the_dead_workers_partitions(outcome: Outcome) -> None:
    """Windows the survivor had closed for its own partitions while the dead worker's were
    unowned were emitted for them as catch-up rows, and only for them."""
    caught_up = {
        p for worker, held in outcome.marked.items() if worker.startswith("catch-up/") for p in held
    }
    assert caught_up == outcome.dead_held, outcome.marked
