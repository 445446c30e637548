"""Worker SIGKILLed twice at random points mid-stream (and a no-kill baseline).

One scenario per variant (module fixture), two tests on it: raw tables hold every valid
event exactly once (``FINAL``); the 1-minute rollups of closed windows match the ground
truth. Event-time window clock, 300 s lateness, 10 minutes of event time produced in ~40 s;
closing events 7 minutes later are produced only once the stream is stored, so every stream
window closes. At 15 s of event time per wall second the lateness is 20 s of wall time: a
hiccup longer than that (a second rebalance after a restart, a slow hop through
``orders_by_session`` on a loaded machine) would count orders late by design of the
compression, not by a fault of the worker. With 120 s (8 s of wall time) one CI run of a
clean clone counted 50 orders late after the second restart. While the worker is down the
producer pauses (events produced during the outage would be read as one backlog spanning
more than the lateness: the flood test's subject), so the kill points are random but the
stream stays within the lateness.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.faults.conftest import drop_database, free_port, migrate
from tests.faults.support import (
    MIN_MS,
    Producer,
    carts_and_orders,
    close_and_settle,
    stored_total,
)
from tests.integration.support import WorkerProcess, isolated_settings, metric_value, wait_until

pytestmark = pytest.mark.integration

N = 12_000
SPAN_MS = 10 * MIN_MS
RATE = 300  # events/s: 40 s of producing, 15 s of event time per wall second
LATENESS_S = 300  # 20 s of wall time at that rate


@dataclass
class Outcome:
    kills: list[int]
    recovery_s: list[float]
    counts: dict[str, tuple[int, int, int]]
    n_orders: int
    n_carts: int
    rollups: tuple[Counter, Counter]
    truth: tuple[Counter, Counter]
    diff: str
    late: float


def run_scenario(stack: Settings, log_dir: Path, kills: int) -> Outcome:
    settings = isolated_settings(
        stack, metrics_port=free_port(), window_clock="event", allowed_lateness_s=LATENESS_S
    )
    migrate(settings)
    now = int(time.time() * 1000)
    start = (now - 30 * MIN_MS) // MIN_MS * MIN_MS
    stream = carts_and_orders(N, start, SPAN_MS, tag="k")
    closers = carts_and_orders(40, start + SPAN_MS + 7 * MIN_MS, 10_000, tag="z")
    events = [e for *_, e in stream]
    n_orders = sum(1 for e in events if "amount" in e) + 20
    producer = Producer(settings, [(t, k, v) for t, k, v, _ in stream], per_second=RATE)
    rng = random.Random()
    kill_at = sorted(rng.sample(range(N // 8, N * 7 // 8), kills))
    worker = WorkerProcess(settings, log_dir / "worker.log")
    recovery_s: list[float] = []
    try:
        worker.start()
        producer.start()
        for target in kill_at:
            wait_until(
                lambda: producer.sent, lambda s, t=target: s >= t, 90, f"{target} events sent"
            )
            producer.running.clear()
            time.sleep(rng.uniform(0, 1.0))
            worker.stop(signal.SIGKILL)
            before = stored_total(settings)
            t0 = time.monotonic()
            worker.start()
            producer.running.set()
            wait_until(
                lambda: stored_total(settings),
                lambda n, b=before: n > b,
                60,
                "new rows after the restart",
            )
            recovery_s.append(time.monotonic() - t0)
        producer.join(120)
        # every stream event stored (and so counted) before the closers jump the event clock
        # 7 minutes ahead: an event counted after them would be late by design of the test
        wait_until(lambda: stored_total(settings), lambda n: n >= N, 90, "the stream stored")
        counts, rollups, want, diff = close_and_settle(
            settings, closers, events, start + SPAN_MS, n_orders, N + 40 - n_orders
        )
        late = metric_value(worker.metrics_text(), "salewatch_events_late_total")
    finally:
        producer.running.set()
        worker.stop()
        drop_database(settings)
    out = Outcome(
        kill_at, recovery_s, counts, n_orders, N + 40 - n_orders, rollups, want, diff, late
    )
    print(
        f"\n[{kills} kills] after {kill_at} events; restart -> first new row "
        f"{[round(r, 1) for r in recovery_s]} s; raw (FINAL, distinct, physical) {counts}; "
        f"late (last process) {late:.0f}\n{diff}"
    )
    return out


@pytest.fixture(scope="module", params=[0, 2], ids=["no-kill-baseline", "two-kills"])
def outcome(
    request: pytest.FixtureRequest,
    stack_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    return run_scenario(stack_settings, tmp_path_factory.mktemp("sigkill"), request.param)


def test_raw_tables_hold_every_event_exactly_once(outcome: Outcome) -> None:
    assert outcome.counts["orders_raw"][:2] == (outcome.n_orders, outcome.n_orders)
    assert outcome.counts["carts_raw"][:2] == (outcome.n_carts, outcome.n_carts)


def test_rollups_of_closed_windows_match_ground_truth(outcome: Outcome) -> None:
    # Once intermittent (3 of 4 two-kill runs short by up to ~1,100 events): records fetched
    # before the rebuild of an assignment were counted into the state the rebuild replaced.
    # The reader now waits for the rebuild (SourceReader.hand_back); 4 of 4 runs exact since.
    assert outcome.rollups == outcome.truth, outcome.diff
