"""Poison input mixed with valid events on the real stack.

Every valid event is stored once in ClickHouse; every bad one is on ``dead_letters`` with a
reason (valid-but-unknown dimensions, e.g. 100k distinct channels, are stored and counted
as ``other``); the worker stays healthy and every metric's series count stays within its
declared bound (``streams.metrics.defs.METRICS[name].max_series``).

Kafka limits: Apache Kafka refuses a 10 MB message by default (message.max.bytes 1 MB), but
tansu accepted it (checked): so here the blob does reach the worker, which must dead-letter
it (reason ``too_large``, original truncated to 64 KiB in the dead letter).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics.defs import METRICS
from streams.settings import Settings
from tests.faults.support import produce_all
from tests.integration.support import (
    ch_scalar,
    metric_value,
    read_dead_letters,
    running_worker,
    wait_until,
)
from tests.unit.events_factory import make_event

pytestmark = pytest.mark.integration

N_VALID_ORDERS = 2000
N_UNKNOWN_CHANNELS = 100_000


def order(i: int, now: int, **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"ts": now - 5000, **kw}
    return make_event(
        "orders", event_id=f"po-{i}", order_id=f"po-{i}", session_id=f"ps-{i % 50}", **fields
    )


def corpus(now: int) -> tuple[list[tuple[str, bytes]], int, list[str], int]:
    """(topic, value) items, number of valid events, expected dead letter reasons, valid clicks."""
    items: list[tuple[str, bytes]] = []
    valid = 0
    bad: list[str] = []
    for i in range(N_VALID_ORDERS):
        items.append(("orders", orjson.dumps(order(i, now))))
        valid += 1
        if i % 100 == 0:  # poison sprinkled through the valid stream
            j = i // 100
            good = orjson.dumps(order(10_000 + j, now))
            cases: list[tuple[bytes, str]] = [
                (good[: len(good) // 2], "malformed_json"),
                (bytes((j * 37 + k) % 256 for k in range(300)), "malformed_json"),
                (good.replace(b'"amount":', b'"amount":NaN,"x":', 1), "malformed_json"),
                (good.replace(b'"amount":', b'"amount":Infinity,"x":', 1), "malformed_json"),
                (orjson.dumps(order(20_000 + j, now, amount="12.50")), "wrong_type"),
                (orjson.dumps(order(21_000 + j, now, ts="yesterday")), "wrong_type"),
                (orjson.dumps(order(22_000 + j, now, amount=-5)), "out_of_range"),
                (orjson.dumps({**order(23_000 + j, now), "ts": 0}), "ts_too_old"),
                (orjson.dumps({**order(24_000 + j, now), "ts": 4_102_444_800_000}), "ts_in_future"),
                (
                    orjson.dumps(order(25_000 + j, now, event_type="order_teleported")),
                    "unknown_event_type",
                ),
                (b"null", "not_an_object"),
                (b"[]", "empty_batch"),
            ]
            for value, reason in cases:
                items.append(("orders", value))
                bad.append(reason)
    # a 10 MB blob (valid JSON, far too large) and raw 10 MB garbage
    items.append(("orders", orjson.dumps({**order(30_000, now), "pad": "x" * 10_000_000})))
    bad.append("too_large")
    items.append(("orders", b"\xff" * 10_000_000))
    bad.append("too_large")
    # a huge event inside an array: the valid neighbours survive
    huge = {**order(30_001, now), "pad": "y" * 200_000}
    items.append(("orders", orjson.dumps([order(30_002, now), huge, order(30_003, now)])))
    valid += 2
    bad.append("too_large")
    # unicode in ids: valid
    for k, ident in enumerate(["订单-🎉-1", "заказ-2", "طلب-3", "e\u0301-4", "🛒" * 30]):
        items.append(
            (
                "orders",
                orjson.dumps(
                    make_event(
                        "orders",
                        event_id=f"u-{ident}",
                        order_id=ident,
                        session_id=f"сессия-{k}",
                        user_id=ident,
                        ts=now - 5000,
                    )
                ),
            )
        )
        valid += 1
    # 100k distinct unknown channels: valid page views, counted under channel "other"
    clicks = [
        make_event(
            "clicks",
            event_id=f"ch-{i}",
            session_id=f"cs-{i % 500}",
            user_id=f"cu-{i}",
            channel=f"channel-{i}",
            ts=now - 5000,
        )
        for i in range(N_UNKNOWN_CHANNELS)
    ]
    for i in range(0, N_UNKNOWN_CHANNELS, 1000):
        items.append(("clicks", orjson.dumps(clicks[i : i + 1000])))
    return items, valid, bad, N_UNKNOWN_CHANNELS


def series_per_metric(text: str) -> dict[str, int]:
    series: dict[str, set[tuple[tuple[str, str], ...]]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if k not in ("le", "quantile"))
            )
            name = family.name if family.name in METRICS else family.name + "_total"
            series[name].add(labels)
    return {name: len(s) for name, s in series.items()}


def test_poison_corpus_is_dead_lettered_and_valid_events_stored_once(
    isolated: Settings, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    items, n_valid_orders, bad_reasons, n_clicks = corpus(now)
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        started = time.monotonic()
        produce_all(isolated, [(topic, b"k", value) for topic, value in items])
        wait_until(
            lambda: (
                ch_scalar(isolated, "SELECT count() FROM orders_raw FINAL"),
                ch_scalar(isolated, "SELECT count() FROM clicks_raw FINAL"),
            ),
            lambda v: v == (n_valid_orders, n_clicks),
            120,
            "every valid event in ClickHouse",
        )
        elapsed = time.monotonic() - started
        letters = read_dead_letters(isolated, len(bad_reasons))
        assert worker.proc is not None and worker.proc.poll() is None, "worker died"
        text = worker.metrics_text()

        assert ch_scalar(isolated, "SELECT uniqExact(event_id) FROM orders_raw") == n_valid_orders
        assert (
            ch_scalar(isolated, "SELECT count() FROM orders_raw FINAL WHERE order_id = '订单-🎉-1'")
            == 1
        )
        assert Counter(letter["reason"] for letter in letters) == Counter(bad_reasons)
        assert all(letter["source_topic"] == "orders" and letter["detail"] for letter in letters)
        blobs = [letter for letter in letters if letter["original_size"] >= 10_000_000]
        assert len(blobs) == 2 and all(b["truncated"] for b in blobs)

        assert metric_value(text, "salewatch_dead_letters_total", topic="orders") == len(
            bad_reasons
        )
        assert metric_value(text, "salewatch_events_valid_total", topic="clicks") == n_clicks
        # unknown channels counted as other (series exist only if the metric has a channel label)
        page_views = [
            (s.labels, s.value)
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if "channel" in s.labels
        ]
        assert not any(str(labels["channel"]).startswith("channel-") for labels, _ in page_views)
        counts = series_per_metric(text)
        assert set(counts) & set(METRICS), counts
        too_many = {
            n: (c, METRICS[n].max_series)
            for n, c in counts.items()
            if n in METRICS and c > METRICS[n].max_series
        }
        assert not too_many, too_many
        assert len(text) < 1_000_000, f"/metrics is {len(text)} bytes"
        status = Path(f"/proc/{worker.proc.pid}/status").read_text()
        rss_mib = int(status.split("VmRSS:")[1].split()[0]) // 1024
    print(
        f"\npoison: {len(items)} messages, {n_valid_orders + n_clicks} valid events, "
        f"{len(bad_reasons)} dead letters, all stored in {elapsed:.1f}s; "
        f"max series {max(counts.values())}; /metrics {len(text)} bytes; worker RSS {rss_mib} MiB"
    )


def test_kafka_level_shapes_never_stop_the_worker(isolated: Settings, tmp_path: Path) -> None:
    """Tombstones, empty values, null and non-UTF-8 keys, headers (one of 512 KiB): each
    tombstone and empty value is one dead letter with its reason; every valid event is
    stored whatever its key or headers."""
    import confluent_kafka
    from kafka import KafkaProducer

    now = int(time.time() * 1000)
    topic = isolated.kafka_topic("clicks")
    valid: list[tuple[bytes | None, list[tuple[str, bytes]]]] = [
        (None, []),
        (b"\xff\xfe\xfd", []),
        (b"k", [("trace", b"abc"), ("empty", b"")]),
        (b"k", [("big", b"h" * 512 * 1024)]),
        (None, [("x", b"\x00\xff")] * 50),
    ]
    producer = KafkaProducer(
        bootstrap_servers=isolated.kafka_bootstrap, max_request_size=4 * 1024 * 1024
    )
    n_valid = 0
    for round_ in range(40):
        for i, (key, headers) in enumerate(valid):
            event = make_event("clicks", event_id=f"kl-{round_}-{i}", ts=now - 5000)
            producer.send(topic, value=orjson.dumps(event), key=key, headers=headers)
            n_valid += 1
        producer.send(topic, value=None, key=f"gone-{round_}".encode())  # tombstone
        producer.send(topic, value=b"", key=b"\xff", headers=[("h", b"1")])  # empty value
    producer.flush(30)
    producer.close()
    # a tombstone without a key: kafka-python refuses to send one, librdkafka does
    rdk = confluent_kafka.Producer({"bootstrap.servers": isolated.kafka_bootstrap})
    for _ in range(40):
        rdk.produce(topic, value=None, key=None)
    assert rdk.flush(30) == 0
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        wait_until(
            lambda: ch_scalar(isolated, "SELECT count() FROM clicks_raw FINAL"),
            lambda n: n >= n_valid,
            90,
            "every valid event stored",
        )
        letters = read_dead_letters(isolated, 120)
        reasons = Counter(d["reason"] for d in letters)
        assert reasons == {"null_value": 80, "empty_value": 40}
        assert ch_scalar(isolated, "SELECT count() FROM clicks_raw FINAL") == n_valid
        metrics = worker.metrics_text()
        assert metric_value(metrics, "salewatch_events_invalid_total", reason="null_value") == 80
        assert metric_value(metrics, "salewatch_events_invalid_total", reason="empty_value") == 40
        assert worker.proc is not None and worker.proc.poll() is None
        assert "Traceback" not in worker.log_text()
