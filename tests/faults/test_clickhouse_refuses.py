"""ClickHouse refuses rows, or refuses everything: the real worker on the shared stack.

* A valid event whose value ClickHouse cannot take (a cart ``quantity`` of 5,000,000,000:
  validation allows any positive integer, the column is ``UInt32``; clickhouse-driver
  refuses the whole insert with code 53). Before issue 15 the sink retried that batch
  forever: the worker looked alive and stored nothing more. Now the batch is bisected, the
  one row goes to ``dead_letters`` and everything else is stored.
* The table is gone (``DROP TABLE carts_raw``, code 60): nothing can be stored, so the
  worker exits within seconds, status 3, one line naming the table, for a supervisor to
  restart it (whose start-up check then says to run ``salewatch migrate``).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from tests.faults.support import carts_and_orders, produce_all, raw_counts
from tests.integration.support import (
    clickhouse,
    metric_value,
    read_dead_letters,
    running_worker,
    wait_until,
)
from tests.unit.events_factory import make_event

pytestmark = pytest.mark.integration


def test_a_row_clickhouse_refuses_is_dead_lettered_and_the_rest_stored(
    isolated: Settings, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    good = carts_and_orders(400, now - 20_000, 10_000, tag="g")
    bad = make_event("carts", event_id="too-many", ts=now - 15_000, quantity=5_000_000_000)
    items = [(t, k, v) for t, k, v, _ in good[:200]]
    items.append(("carts", bad["session_id"].encode(), orjson.dumps(bad)))
    items += [(t, k, v) for t, k, v, _ in good[200:]]
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        started = time.monotonic()
        produce_all(isolated, items)
        counts = wait_until(
            lambda: raw_counts(isolated),
            lambda c: c["carts_raw"][0] == 200 and c["orders_raw"][0] == 200,
            60,
            "every event ClickHouse can take",
        )
        stored_s = time.monotonic() - started
        letters = read_dead_letters(isolated, 1)
        metrics = worker.metrics_text()
        log = worker.log_text()
        assert worker.proc is not None and worker.proc.poll() is None
    print(f"\nall 400 others stored {stored_s:.1f}s after producing; raw {counts}")
    assert [(e["reason"], orjson.loads(e["original"])["event_id"]) for e in letters] == [
        ("clickhouse_rejected", "too-many")
    ]
    assert letters[0]["detail"].startswith("type_mismatch: Code: 53"), letters[0]
    assert letters[0]["source_topic"] == "carts"
    rejected = metric_value(
        metrics, "salewatch_clickhouse_rows_rejected_total", table="carts_raw",
        reason="type_mismatch",
    )  # fmt: skip
    assert rejected == 1
    assert "ClickHouse refused 1 of" in log and "Traceback" not in log, log[-2000:]


def test_a_missing_table_stops_the_worker_with_one_line(isolated: Settings, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    events = carts_and_orders(200, now - 20_000, 10_000, tag="d")
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        client = clickhouse(isolated)
        try:
            client.execute("DROP TABLE carts_raw")
        finally:
            client.disconnect()
        dropped = time.monotonic()
        produce_all(isolated, [(t, k, v) for t, k, v, _ in events])
        assert worker.proc is not None
        status = wait_until(worker.proc.poll, lambda rc: rc is not None, 60, "the worker to exit")
        exit_s = time.monotonic() - dropped
        log = worker.log_text()
    print(f"\nworker exited {exit_s:.1f}s after the table was dropped, status {status}")
    last = [line for line in log.splitlines() if "salewatch worker:" in line][-1]
    print(last)
    assert status == 3, log[-2000:]
    assert "the inserter died (ClickHouseFatalError: cannot insert into" in last, last
    assert "carts_raw" in last and "Code: 60" in last, last
    assert "Traceback" not in log, log[-2000:]
