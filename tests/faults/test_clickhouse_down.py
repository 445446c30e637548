"""ClickHouse down for 60 s, then back (a throwaway clickhouse-server; Kafka is the shared
broker with this test's own topics).

Measured and asserted: ``/metrics`` answers throughout; ``salewatch_clickhouse_write_errors_total``
grows while ClickHouse is down; after it is back every produced event is stored exactly once
(``FINAL`` counts and distinct ids = produced); counting goes on during the outage: every
event produced while ClickHouse is down is counted in ``salewatch_events_valid_total``
while it waits in the insert queue (``salewatch_insert_backlog_events`` > 0), and the
backlog is 0 once it is stored. (Before the batch reader, counting froze at the batch in
hand: ~100 of 3,000.)
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.faults.conftest import ThrowawayClickHouse, free_port, migrate, rss_kib
from tests.faults.support import Producer, carts_and_orders, raw_counts
from tests.integration.support import (
    WorkerProcess,
    isolated_settings,
    metric_value,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 60
N_BEFORE = 2000
N_DURING = 3000


def test_clickhouse_down_60s_loses_and_doubles_nothing(
    stack_settings: Settings, throwaway_clickhouse: ThrowawayClickHouse, tmp_path: Path
) -> None:
    settings = isolated_settings(
        stack_settings,
        clickhouse_port=throwaway_clickhouse.tcp_port,
        clickhouse_http_port=throwaway_clickhouse.http_port,
        metrics_port=free_port(),
    )
    migrate(settings)
    now = int(time.time() * 1000)
    before = carts_and_orders(N_BEFORE, now - 120_000, 60_000, tag="b")
    during = carts_and_orders(N_DURING, now - 60_000, 60_000, tag="d")
    produced = before + during
    n_orders = sum(1 for t, *_ in produced if t == "orders")
    n_carts = len(produced) - n_orders

    with running_worker(settings, tmp_path / "worker.log") as worker:
        Producer(settings, [(t, k, v) for t, k, v, _ in before], per_second=1e9)._run()
        wait_until(
            lambda: sum(c[0] for c in raw_counts(settings).values()),
            lambda n: n == N_BEFORE,
            60,
            "the first events stored",
        )
        valid_at_outage = metric_value(worker.metrics_text(), "salewatch_events_valid_total")

        throwaway_clickhouse.stop(signal.SIGKILL)
        down_at = time.monotonic()
        producer = Producer(
            settings, [(t, k, v) for t, k, v, _ in during], per_second=N_DURING / 30
        )
        producer.start()
        samples = []
        while time.monotonic() - down_at < OUTAGE_S:
            text = worker.metrics_text()  # raises if /metrics stops answering
            samples.append(
                (
                    round(time.monotonic() - down_at, 1),
                    metric_value(text, "salewatch_clickhouse_write_errors_total"),
                    metric_value(text, "salewatch_events_valid_total"),
                    rss_kib(worker.proc.pid) if worker.proc else 0,
                    metric_value(text, "salewatch_insert_backlog_events"),
                )
            )
            time.sleep(1)
        producer.join(30)
        assert worker.proc is not None and worker.proc.poll() is None, "worker died"

        throwaway_clickhouse.start()
        up_at = time.monotonic()
        counts = wait_until(
            lambda: raw_counts(settings),
            lambda c: c["orders_raw"][0] == n_orders and c["carts_raw"][0] == n_carts,
            120,
            "every event stored after ClickHouse is back",
        )
        recovery_s = time.monotonic() - up_at
        text = worker.metrics_text()
        valid_after = metric_value(text, "salewatch_events_valid_total")
        backlog_after = metric_value(text, "salewatch_insert_backlog_events")
        errors_after = metric_value(text, "salewatch_clickhouse_write_errors_total")
        log = worker.log_text()

    errors = [e for _, e, *_ in samples]
    rss = [r // 1024 for *_, r, _ in samples]
    backlog = [b for *_, b in samples]
    counted_during = samples[-1][2] - valid_at_outage
    print(
        f"\nClickHouse down {OUTAGE_S}s: /metrics answered {len(samples)} times; write errors "
        f"{errors[0]:.0f} -> {errors[-1]:.0f} (after: {errors_after:.0f}); events counted during "
        f"the outage {counted_during:.0f} of {N_DURING} produced; all stored {recovery_s:.1f}s "
        f"after ClickHouse was back; raw (FINAL, distinct, physical) {counts}; "
        f"valid_total after {valid_after:.0f}; RSS during the outage {min(rss)}-{max(rss)} MiB; "
        f"insert backlog max {max(backlog):.0f}, after {backlog_after:.0f}"
    )
    assert counted_during == N_DURING, samples  # counting did not wait for ClickHouse
    assert max(backlog) >= N_DURING and backlog_after == 0, backlog
    assert errors[-1] > errors[0] >= 0 and errors[-1] >= 3, samples
    assert "insert into" in log and "retrying in" in log
    assert counts["orders_raw"][:2] == (n_orders, n_orders)
    assert counts["carts_raw"][:2] == (n_carts, n_carts)
    assert recovery_s < 60
    assert max(rss) - min(rss) < 100, rss  # the outage does not pile events up in memory


def test_a_rebalance_during_a_clickhouse_outage_neither_hangs_nor_counts_twice(
    stack_settings: Settings, throwaway_clickhouse: ThrowawayClickHouse, tmp_path: Path
) -> None:
    """Two workers; ClickHouse killed; 1,000 events counted but not storable; one worker
    leaves (SIGTERM): the other's revocation waits at most SALEWATCH_REVOKE_DRAIN_TIMEOUT_S
    for its insert queue (before issue 15: until ClickHouse came back, past the rebalance
    timeout, so Kafka evicted it and both counted the partitions), gives the partitions up
    and takes all of them; its rebuild retries until ClickHouse is back. Asserted: the
    survivor stays up and releases within the bound, every event is stored exactly once,
    and counted once in Prometheus across both workers: the leaving worker and the
    survivor each recorded a handover (``streams.worker.handover``: up to where they
    counted), so the survivor reads the unstored backlog again into windows and sessions
    only (before: the whole backlog, 1,000 events, counted twice)."""
    a_settings = isolated_settings(
        stack_settings,
        clickhouse_port=throwaway_clickhouse.tcp_port,
        clickhouse_http_port=throwaway_clickhouse.http_port,
        metrics_port=free_port(),
    )
    b_settings = a_settings.model_copy(update={"metrics_port": free_port()})
    migrate(a_settings)
    now = int(time.time() * 1000)
    before = carts_and_orders(1000, now - 60_000, 20_000, tag="b")
    during = carts_and_orders(1000, now - 40_000, 20_000, tag="d")
    n_orders = sum(1 for t, *_ in before + during if t == "orders")
    n_carts = 2000 - n_orders

    def valid(w: WorkerProcess) -> float:
        return metric_value(w.metrics_text(), "salewatch_events_valid_total")

    with running_worker(a_settings, tmp_path / "a.log") as a:
        b = WorkerProcess(b_settings, tmp_path / "b.log")
        b.start()
        try:
            Producer(a_settings, [(t, k, v) for t, k, v, _ in before], per_second=1e9)._run()
            wait_until(
                lambda: sum(c[0] for c in raw_counts(a_settings).values()),
                lambda n: n == 1000,
                60,
                "the first events stored",
            )
            throwaway_clickhouse.stop(signal.SIGKILL)
            Producer(a_settings, [(t, k, v) for t, k, v, _ in during], per_second=1e9)._run()
            wait_until(lambda: valid(a) + valid(b), lambda n: n >= 2000, 60, "all counted")
            counted_by_b = valid(b)
            left_at = time.monotonic()
            b.stop(signal.SIGTERM)
            b_stop_s = time.monotonic() - left_at
        finally:
            b.stop(signal.SIGKILL)
        released = wait_until(
            a.log_text,
            lambda text: "counted events not stored in ClickHouse" in text,
            30,
            "the survivor to release its partitions",
        )
        release_s = time.monotonic() - left_at
        time.sleep(10)  # the survivor's rebuild retries meanwhile
        assert a.proc is not None and a.proc.poll() is None, a.log_text()[-2000:]
        throwaway_clickhouse.start()
        up_at = time.monotonic()
        counts = wait_until(
            lambda: raw_counts(a_settings),
            lambda c: c["orders_raw"][0] == n_orders and c["carts_raw"][0] == n_carts,
            120,
            "every event stored after ClickHouse is back",
        )
        stored_s = time.monotonic() - up_at
        counted_by_a = valid(a)
        text = a.metrics_text()
        handed_over = metric_value(text, "salewatch_events_handed_over_total")
        applied = metric_value(text, "salewatch_handovers_total", outcome="applied")
        log = a.log_text()
    twice = counted_by_a + counted_by_b - 2000
    line = [x for x in released.splitlines() if "counted events not stored" in x][-1]
    print(
        f"\nrebalance during the outage: worker b stopped in {b_stop_s:.1f}s; the survivor's "
        f"release line {release_s:.1f}s after b's SIGTERM: {line.split('] ')[-1]}; all stored "
        f"{stored_s:.1f}s after ClickHouse was back; raw {counts}; counted in Prometheus "
        f"a {counted_by_a:.0f} + b {counted_by_b:.0f} = {twice:.0f} more than produced; "
        f"handed over: {handed_over:.0f} events read again, {applied:.0f} partitions applied"
    )
    assert counts["orders_raw"][:2] == (n_orders, n_orders)
    assert counts["carts_raw"][:2] == (n_carts, n_carts)
    assert "Traceback" not in log, log[-2000:]
    assert "handed over" in b.log_text() and "handed over" in log  # both released unstored
    assert twice == 0, log[-3000:]
    assert handed_over >= 1000  # the backlog, read again by the survivor (not counted)
