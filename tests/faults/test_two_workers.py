"""Two workers in one consumer group, partitions moving between them mid-stream: nothing is
lost, nothing is counted twice in ClickHouse (raw tables ``FINAL``; 1-minute rollups of
closed windows, ``FINAL`` and summed over workers, = ground truth). Two scenarios (module
fixtures): one worker SIGKILLed (its partitions move to the survivor after Kafka's session
timeout), and a rolling restart (one worker stopped with SIGTERM, started again later under
the same name: its partitions move away and are shared again).

The second worker has its own metrics port (a free one; the stack's Prometheus does not
scrape it, which this test does not need). Event-time windows as in test_sigkill_twice.
Time runs ~11x faster than on the wall clock here (12 minutes of event time in ~67 s), so
the allowed lateness is scaled too: 5 minutes of event time (~28 s of the test's time,
what 120 s are to a live worker on the wall clock). Kafka notices the dead member after
its session timeout (~10 s: ~2 event-minutes), while the survivor's clock, driven by its
own partitions, runs on and closes windows the dead worker had open — windows the survivor
emits for the moved partitions from their newest marks (``streams.worker.window_emitters``; the
test checks it took exactly those partitions over). The dead worker's backlog must arrive
within the lateness; with the live default of 120 s (~11 s here) it is counted late
instead (measured at 18x: 296 of 10,000, exactly the shortfall of the one window they
belonged to).

No step waits a guessed time: the group is shared once ``a`` holds fewer than all
partitions, the move is done once ``a``'s log says it rebuilt all, and the last windows are
closed only once the group committed ``orders_by_session`` to its end (every forwarded
order counted). With a CPU-bound neighbour, 10 runs in a row: ``make two-workers-loop``.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# the worker's log line for a rebuild of every partition / of the partitions it was given
ALL_REBUILT = "counting state of partitions [0, 1, 2, 3] rebuilt"
HELD = re.compile(r"counting state of partitions \[([\d, ]+)\] rebuilt")
MOVED = re.compile(r"partitions \[([\d, ]+)\] moved here")
EMITTERS = {f"p{p}" for p in range(4)}


@dataclass
class Stream:
    """The scenario's settings, events and two workers (``a`` and ``b``)."""

    settings: Settings
    start: int
    events: list[dict[str, Any]]
    closers: list[tuple[str, bytes, bytes, dict[str, Any]]]
    n_orders: int
    n_carts: int
    a: WorkerProcess
    b: WorkerProcess
    producer: Producer
    a_log_at_move: int = 0  # length of a's log when b was stopped
    b_held_before_move: set[int] = field(default_factory=set)


@dataclass
class Outcome:
    before_move: tuple[float, float]
    moved_s: float
    late: float
    b_held: set[int]  # b's partitions at the end (rolling: after its restart)
    b_held_before_move: set[int]
    moved_to_a: set[int]  # partitions a's log says moved to it when b stopped
    marked: dict[str, set[int]]
    emitters: set[str]
    counts: dict[str, tuple[int, int, int]]
    n_orders: int
    n_carts: int
    rollups: tuple[Counter, Counter]
    truth: tuple[Counter, Counter]
    diff: str
    b_log: str
    a_log_from_move: str


def two_workers(stack_settings: Settings, logs: Path) -> Stream:
    settings = isolated_settings(
        stack_settings,
        metrics_port=free_port(),
        window_clock="event",
        allowed_lateness_s=LATENESS_MS // 1000,
    )
    migrate(settings)
    now = int(time.time() * 1000)
    start = (now - 30 * MIN_MS) // MIN_MS * MIN_MS
    stream = carts_and_orders(N, start, SPAN_MS, tag="w")
    events = [e for *_, e in stream]
    n_orders = sum(1 for e in events if "amount" in e) + 20
    return Stream(
        settings,
        start,
        events,
        carts_and_orders(40, start + SPAN_MS + LATENESS_MS + 2 * MIN_MS, 10_000, tag="z"),
        n_orders,
        N + 40 - n_orders,
        WorkerProcess(settings, logs / "a.log"),
        WorkerProcess(settings.model_copy(update={"metrics_port": free_port()}), logs / "b.log"),
        Producer(settings, [(t, k, v) for t, k, v, _ in stream], per_second=RATE),
    )


def holds(log: str) -> set[int]:
    """The partitions the newest rebuild in ``log`` was for."""
    found = HELD.findall(log)
    return {int(p) for p in found[-1].split(", ")} if found else set()


def start_both(run: Stream) -> None:
    """Start ``a``, then ``b``; produce once the group shares the partitions."""
    run.a.start()
    run.b.start()  # returns once b holds partitions: the group rebalanced to both
    wait_until(
        lambda: holds(run.a.log_text()),
        lambda held: 0 < len(held) < 4,
        60,
        "a to rebuild its share",
    )
    run.producer.start()


def received(worker: WorkerProcess) -> float:
    return metric_value(worker.metrics_text(), "salewatch_events_received_total")


def move_b_away(run: Stream, sig: int) -> float:
    """Stop ``b`` with ``sig``; seconds until ``a`` rebuilt every partition."""
    run.a_log_at_move = len(run.a.log_text())
    run.b_held_before_move = holds(run.b.log_text())
    all_rebuilt = run.a.log_text().count(ALL_REBUILT)
    run.b.stop(sig)
    stopped_at = time.monotonic()
    wait_until(
        lambda: run.a.log_text().count(ALL_REBUILT),
        lambda n: n > all_rebuilt,
        90,
        "a rebuilt every partition",
    )
    return time.monotonic() - stopped_at


def settle(run: Stream, before_move: tuple[float, float], moved_s: float) -> Outcome:
    """Wait until the stream is stored and the rollups settled; what the workers did."""
    run.producer.join(120)
    # before the closers: a backlog read after them would be late
    wait_until(
        lambda: sum(c[0] for c in raw_counts(run.settings).values()),
        lambda n: n >= N,
        90,
        "the stream stored",
    )
    counts, rollups, want, diff = close_and_settle(
        run.settings, run.closers, run.events, run.start + SPAN_MS, run.n_orders, run.n_carts
    )
    late = metric_value(run.a.metrics_text(), "salewatch_events_late_total")
    if run.b.proc is not None and run.b.proc.poll() is None:
        late += metric_value(run.b.metrics_text(), "salewatch_events_late_total")
    marked = {
        str(worker): {int(p) for p in partitions}
        for worker, partitions in ch_rows(
            run.settings,
            "SELECT worker, groupUniqArray(p) FROM window_emitters FINAL "
            "ARRAY JOIN partitions AS p GROUP BY worker",
        )
    }
    emitters = {
        str(w)
        for table in ("cart_events_1m", "orders_1m", "funnel_1m")
        for (w,) in ch_rows(run.settings, f"SELECT DISTINCT worker FROM {table}")
    }
    b_log = run.b.log_text()
    b_held = holds(b_log)
    a_log_from_move = run.a.log_text()[run.a_log_at_move :]
    moved = MOVED.findall(a_log_from_move)
    moved_to_a = {int(p) for p in moved[0].split(", ")} if moved else set()
    print(
        f"\nbefore the move a={before_move[0]:.0f} b={before_move[1]:.0f} events received; "
        f"a rebuilt every partition {moved_s:.1f}s after b stopped; {late:.0f} counted late; "
        f"marks {marked}; raw (FINAL, distinct, physical) {counts}\n{diff}"
    )
    return Outcome(
        before_move,
        moved_s,
        late,
        b_held,
        run.b_held_before_move,
        moved_to_a,
        marked,
        emitters,
        counts,
        run.n_orders,
        run.n_carts,
        rollups,
        want,
        diff,
        b_log,
        a_log_from_move,
    )


def stop_all(run: Stream) -> None:
    run.producer.running.set()
    run.b.stop()
    run.a.stop()
    drop_database(run.settings)


@pytest.fixture(scope="module")
def killed(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """``b`` SIGKILLed at two thirds of the stream."""
    run = two_workers(stack_settings, tmp_path_factory.mktemp("two-workers-kill"))
    try:
        start_both(run)
        wait_until(lambda: run.producer.sent, lambda s: s >= 2 * N // 3, 90, "2/3 produced")
        before = (received(run.a), received(run.b))
        moved_s = move_b_away(run, signal.SIGKILL)
        return settle(run, before, moved_s)
    finally:
        stop_all(run)


@pytest.fixture(scope="module")
def rolling(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """``b`` stopped with SIGTERM at 55 % of the stream (it has emitted a window), started
    again at 85 % under the same name (a rolling restart): its partitions go to ``a``,
    which emits ~4 windows for them, and are shared again (b may get the other half)."""
    run = two_workers(stack_settings, tmp_path_factory.mktemp("two-workers-rolling"))
    try:
        start_both(run)
        wait_until(lambda: run.producer.sent, lambda s: s >= N * 55 // 100, 90, "55 % produced")
        before = (received(run.a), received(run.b))
        moved_s = move_b_away(run, signal.SIGTERM)
        wait_until(lambda: run.producer.sent, lambda s: s >= N * 85 // 100, 90, "85 % produced")
        run.b.start()
        return settle(run, before, moved_s)
    finally:
        stop_all(run)


@pytest.fixture(params=["killed", "rolling"])
def outcome(request: pytest.FixtureRequest) -> Outcome:
    result: Outcome = request.getfixturevalue(request.param)
    return result


def test_partitions_were_shared_then_moved(outcome: Outcome) -> None:
    assert outcome.before_move[0] > 0 and outcome.before_move[1] > 0, outcome.before_move


def test_raw_tables_hold_every_event_exactly_once(outcome: Outcome) -> None:
    assert outcome.counts["orders_raw"][:2] == (outcome.n_orders, outcome.n_orders)
    assert outcome.counts["carts_raw"][:2] == (outcome.n_carts, outcome.n_carts)


def test_rollups_of_closed_windows_match_ground_truth(outcome: Outcome) -> None:
    """Summed over the workers' and the catch-up rows (``streams.worker.window_emitters``)."""
    assert outcome.rollups == outcome.truth, outcome.diff


def test_nothing_was_counted_late(outcome: Outcome) -> None:
    assert outcome.late == 0


def test_rollup_rows_are_named_by_partition(outcome: Outcome) -> None:
    """Whoever emitted them: a window of a partition emitted again replaces its rows."""
    assert outcome.emitters == EMITTERS, outcome.emitters
    assert outcome.marked == {f"p{p}": {p} for p in range(4)}, outcome.marked


def test_the_survivor_took_over_exactly_the_dead_workers_partitions(killed: Outcome) -> None:
    """Each from the window after its newest mark: the windows the dead worker had open,
    which the survivor's clock may have closed already, are emitted at its next tick."""
    assert killed.moved_to_a == killed.b_held_before_move, killed.a_log_from_move[-3000:]


def test_the_restarted_worker_starts_after_the_others_marks(rolling: Outcome) -> None:
    """``a`` took b's partitions over when b stopped; back, ``b`` is given partitions ``a``
    emitted meanwhile: its log says they moved to it, each from the window after ``a``'s
    newest mark."""
    assert rolling.moved_to_a == rolling.b_held_before_move, rolling.a_log_from_move[-3000:]
    moved = MOVED.findall(rolling.b_log)
    assert moved and {int(p) for p in moved[-1].split(", ")} == rolling.b_held, rolling.b_log[
        -3000:
    ]
