"""Walking skeleton on the real stack: orders flow Kafka → worker → ClickHouse + Prometheus."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.settings import Settings
from tests.integration.support import (
    WorkerProcess,
    ch_scalar,
    clickhouse,
    metric_value,
    prometheus_query,
    read_dead_letters,
    running_worker,
    wait_until,
)
from tests.unit.events_factory import make_event

pytestmark = pytest.mark.integration

N_ORDERS = 5000
INVALID_KINDS: list[bytes] = [
    b'{"event_id": "x", "ts": 17',  # truncated JSON
    bytes(range(200)),  # binary garbage
    b'"just a string"',
    b"[]",
    orjson.dumps({"schema_version": 1, "event_type": "order_created"}),  # missing fields
    orjson.dumps(make_event("orders", amount="12.5")),  # wrong type
    orjson.dumps(make_event("orders", amount=-3)),  # negative amount
    orjson.dumps(make_event("orders", event_type="order_teleported")),
    orjson.dumps(make_event("orders", ts=4_102_444_800_000)),  # year 2100
    orjson.dumps(make_event("orders", ts=0)),  # 1970
]
N_INVALID = 50


def order(i: int, now_ms: int) -> dict[str, Any]:
    return make_event(
        "orders", event_id=f"ev-{i}", order_id=f"o-{i}", session_id=f"s-{i % 700}", ts=now_ms
    )


def produce(settings: Settings, values: list[tuple[bytes, bytes]], pace_s: float = 0.0) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    topic = settings.kafka_topic("orders")
    for i, (key, value) in enumerate(values):
        producer.send(topic, key=key, value=value)
        if pace_s and i % 100 == 99:
            producer.flush()
            time.sleep(pace_s)
    producer.flush(timeout=30)
    producer.close()


def valid_orders(n: int) -> list[tuple[bytes, bytes]]:
    now_ms = int(time.time() * 1000)
    return [(f"o-{i}".encode(), orjson.dumps(order(i, now_ms))) for i in range(n)]


def stored_orders(settings: Settings) -> tuple[int, int]:
    """(rows after dedupe, distinct event ids) in orders_raw."""
    return (
        ch_scalar(settings, "SELECT count() FROM orders_raw FINAL"),
        ch_scalar(settings, "SELECT uniqExact(event_id) FROM orders_raw"),
    )


def test_orders_are_stored_counted_scraped_and_bad_ones_dead_lettered(
    isolated: Settings, tmp_path: Path
) -> None:
    invalid = [(b"bad", INVALID_KINDS[i % len(INVALID_KINDS)]) for i in range(N_INVALID)]
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        started = time.monotonic()
        produce(isolated, valid_orders(N_ORDERS) + invalid)
        wait_until(
            lambda: stored_orders(isolated),
            lambda v: v == (N_ORDERS, N_ORDERS),
            30,
            "5,000 orders in ClickHouse",
        )
        assert time.monotonic() - started < 30

        # the invalid messages were produced last: they may be in a batch still in flight
        text = wait_until(
            worker.metrics_text,
            lambda t: metric_value(t, "salewatch_dead_letters_total", topic="orders") >= N_INVALID,
            15,
            "the dead letters to be counted",
        )
        assert metric_value(text, "salewatch_events_valid_total", topic="orders") == N_ORDERS
        assert metric_value(text, "salewatch_events_invalid_total", topic="orders") == N_INVALID
        assert metric_value(text, "salewatch_dead_letters_total", topic="orders") == N_INVALID

        letters = read_dead_letters(isolated, N_INVALID)
        assert len(letters) == N_INVALID
        reasons = {letter["reason"] for letter in letters}
        assert reasons >= {
            "malformed_json",
            "not_an_object",
            "empty_batch",
            "missing_field",
            "wrong_type",
            "out_of_range",
            "unknown_event_type",
            "ts_in_future",
            "ts_too_old",
        }
        assert all(letter["source_topic"] == "orders" for letter in letters)

        instance = f"127.0.0.1:{isolated.metrics_port}"
        promql = f'sum(salewatch_events_valid_total{{instance="{instance}",topic="orders"}})'
        result = wait_until(
            lambda: prometheus_query(isolated, promql),
            lambda r: bool(r) and float(r[0]["value"][1]) == N_ORDERS,
            30,
            "Prometheus to scrape the orders counter",
        )
        assert float(result[0]["value"][1]) == N_ORDERS


def stop_mid_stream(
    settings: Settings, worker: WorkerProcess, values: list[tuple[bytes, bytes]], sig: int
) -> None:
    """Produce ``values`` slowly; once the first 500 are stored, stop ``worker`` with
    ``sig``; return when everything is produced."""
    producer = threading.Thread(target=produce, args=(settings, values, 0.05))
    producer.start()
    wait_until(
        lambda: stored_orders(settings)[0],
        lambda n: n > 500,
        30,
        "the first orders in ClickHouse",
    )
    worker.stop(sig)
    producer.join(60)


def test_worker_killed_mid_stream_loses_and_doubles_nothing(
    isolated: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    values = valid_orders(N_ORDERS)
    with running_worker(isolated, log) as worker:
        stop_mid_stream(isolated, worker, values, signal.SIGKILL)
        assert stored_orders(isolated)[0] < N_ORDERS, "the kill came too late to test anything"
        worker.start()
        wait_until(
            lambda: stored_orders(isolated),
            lambda v: v == (N_ORDERS, N_ORDERS),
            90,
            "all orders after the restart",
        )
        total_rows = ch_scalar(isolated, "SELECT count() FROM orders_raw")
    # rows read twice after the kill collapse to one per event_id (FINAL)
    assert total_rows >= N_ORDERS
    assert stored_orders(isolated) == (N_ORDERS, N_ORDERS)


def test_sigterm_mid_stream_stores_and_commits_what_was_counted(
    isolated: Settings, tmp_path: Path
) -> None:
    """A graceful stop drains the insert queue: every partition's committed offset is the
    one after the newest order stored in ClickHouse, so the next owner reads nothing twice."""
    log = tmp_path / "worker.log"
    with running_worker(isolated, log) as worker:
        stop_mid_stream(isolated, worker, valid_orders(N_ORDERS), signal.SIGTERM)
        stored = stored_orders(isolated)[0]
    assert stored < N_ORDERS, "the stop came too late to test anything"
    assert "stopped reading; everything counted is stored and committed" in log.read_text()
    client = clickhouse(isolated)
    try:
        newest = dict(
            client.execute(
                "SELECT kafka_partition, max(kafka_offset) FROM orders_raw GROUP BY kafka_partition"
            )
        )
    finally:
        client.disconnect()
    consumer = KafkaConsumer(
        bootstrap_servers=isolated.kafka_bootstrap,
        group_id=isolated.app_id,
        enable_auto_commit=False,
    )
    try:
        topic = isolated.kafka_topic("orders")
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in newest}
    finally:
        consumer.close()
    assert committed == {p: offset + 1 for p, offset in newest.items()}
