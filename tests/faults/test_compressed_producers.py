"""Producers we do not control (issue 20): compressed batches, from librdkafka and
kafka-python, on the real stack.

1. Every codec Kafka defines (none, gzip, snappy, lz4, zstd), written by librdkafka
   (confluent-kafka) and by kafka-python to ``clicks`` and ``orders`` at once: every event
   is stored (ClickHouse ``FINAL``) and counted (``salewatch_events_valid_total``).
2. A worker whose codec library is missing (``cramjam`` hidden from it, as on the machine
   of the issue) meets snappy batches between gzip ones: it stores everything before them,
   keeps reading the other partitions, stops only that partition with one log line naming
   topic, partition and offsets and ``salewatch_partitions_unreadable`` = 1, and, after
   ``salewatch skip``, reads on past them with a dead letter per skipped batch.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import confluent_kafka
import orjson
import pytest
from kafka import KafkaProducer

from streams.settings import Settings
from tests.integration.support import (
    ch_scalar,
    metric_value,
    read_dead_letters,
    run_cli,
    running_worker,
    wait_until,
)
from tests.unit.events_factory import make_event

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PER_PRODUCER = 200  # events per (client, codec), half clicks, half orders


def events(tag: str, n: int, now: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value): ``n`` valid events alternating clicks and orders."""
    out = []
    for i in range(n):
        if i % 2:
            e = make_event("orders", event_id=f"{tag}-o{i}", order_id=f"{tag}-o{i}", ts=now - i)
            out.append(("orders", e["order_id"].encode(), orjson.dumps(e)))
        else:
            e = make_event("clicks", event_id=f"{tag}-c{i}", session_id=f"{tag}-s{i}", ts=now - i)
            out.append(("clicks", e["session_id"].encode(), orjson.dumps(e)))
    return out


def produce_librdkafka(
    settings: Settings, codec: str, items: list[tuple[str, bytes, bytes]], partition: int = -1
) -> None:
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "compression.type": codec,
            "linger.ms": 50,
        }
    )
    for topic, key, value in items:
        producer.produce(settings.kafka_topic(topic), value=value, key=key, partition=partition)
    assert producer.flush(30) == 0, "librdkafka did not deliver everything"


def produce_kafka_python(
    settings: Settings, codec: str, items: list[tuple[str, bytes, bytes]]
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=50,
    )
    for topic, key, value in items:
        producer.send(settings.kafka_topic(topic), key=key, value=value)
    producer.flush(30)
    producer.close()


def stored(settings: Settings) -> int:
    return int(
        ch_scalar(settings, "SELECT count() FROM clicks_raw FINAL")
        + ch_scalar(settings, "SELECT count() FROM orders_raw FINAL")
    )


def test_every_codec_from_librdkafka_and_kafka_python_is_stored_and_counted(
    isolated: Settings, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        total = 0
        for codec in CODECS:
            for client, produce in (("rdk", produce_librdkafka), ("kp", produce_kafka_python)):
                items = events(f"{client}-{codec}", PER_PRODUCER, now)
                produce(isolated, codec, items)
                total += len(items)
        wait_until(lambda: stored(isolated), lambda n: n >= total, 120, "every event stored")
        time.sleep(1)  # anything beyond would be a duplicate
        assert stored(isolated) == total
        metrics = worker.metrics_text()
        counted = metric_value(metrics, "salewatch_events_valid_total")
        assert counted == total
        assert metric_value(metrics, "salewatch_events_invalid_total") == 0
        assert metric_value(metrics, "salewatch_unreadable_batches_total") == 0
        assert worker.proc is not None and worker.proc.poll() is None


STOP_LINE = re.compile(
    r"cannot read (\S+)\[(\d+)\] at offset (\d+)(?:-(\d+))? \(missing_codec.*"
    r"salewatch skip --topic (\w+) --partition (\d+) --offset (\d+)"
)


def test_missing_codec_stops_one_partition_until_skipped(
    isolated: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hide cramjam (aiokafka's snappy/lz4/zstd) from the worker only: `import cramjam` fails
    shim = tmp_path / "nocodec"
    shim.mkdir()
    (shim / "cramjam.py").write_text("raise ImportError('hidden by the test')\n")
    monkeypatch.setenv("PYTHONPATH", str(shim))
    # its own producer (dead letters) must not need cramjam either: gzip is in the stdlib
    isolated = isolated.model_copy(update={"kafka_compression": "gzip"})
    now = int(time.time() * 1000)
    before = [i for i in events("gz1", 100, now) if i[0] == "clicks"]
    snappy = [i for i in events("sn", 100, now) if i[0] == "clicks"]
    after = [i for i in events("gz2", 100, now) if i[0] == "clicks"]
    # orders on every partition, clicks on the partitions after 0 (behind the batch, a
    # click waits for the skip)
    elsewhere = events("other", 200, now)
    produce_librdkafka(isolated, "gzip", before, partition=0)
    produce_librdkafka(isolated, "snappy", snappy, partition=0)
    produce_librdkafka(isolated, "gzip", after, partition=0)
    log_path = tmp_path / "worker.log"
    with running_worker(isolated, log_path) as worker:
        produce_librdkafka(isolated, "gzip", [i for i in elsewhere if i[0] == "orders"])
        for p in (1, 2, 3):
            clicks = [i for i in elsewhere if i[0] == "clicks"][p - 1 :: 3]
            produce_librdkafka(isolated, "gzip", clicks, partition=p)
        good = len(before) + len(elsewhere)
        wait_until(lambda: stored(isolated), lambda n: n >= good, 90, "events around the batch")
        stops = wait_until(
            lambda: STOP_LINE.findall(worker.log_text()), bool, 30, "the stop log line"
        )
        time.sleep(2)  # the partition stays stopped: nothing after the batch is stored
        assert stored(isolated) == good
        metrics = worker.metrics_text()
        assert (
            metric_value(
                metrics, "salewatch_partitions_unreadable", topic="clicks", reason="missing_codec"
            )
            == 1
        )
        assert metric_value(metrics, "salewatch_unreadable_batches_total", topic="clicks") >= 1

        skipped: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 90
        while stored(isolated) < good + len(after):
            assert time.monotonic() < deadline, worker.log_text()[-3000:]
            for kafka_topic, part, first, last, topic, p, offset in STOP_LINE.findall(
                worker.log_text()
            ):
                assert (kafka_topic, part, topic, p) == (
                    isolated.kafka_topic("clicks"),
                    "0",
                    "clicks",
                    "0",
                )
                if (int(first), int(last or first)) not in skipped:
                    result = run_cli(
                        isolated, "skip", "--topic", topic, "--partition", p, "--offset", offset
                    )
                    assert result.returncode == 0, result.stderr
                    skipped.add((int(first), int(last or first)))
            time.sleep(0.5)
        assert stored(isolated) == good + len(after)
        # the skipped offsets are exactly the snappy batches
        assert sum(last - first + 1 for first, last in skipped) == len(snappy)
        letters = [
            d
            for d in read_dead_letters(isolated, len(skipped))
            if d["reason"] == "skipped_unreadable_batch"
        ]
        assert sorted((d["offset"], d["skipped_to"] - 1) for d in letters) == sorted(skipped)
        metrics = worker.metrics_text()
        assert metric_value(metrics, "salewatch_partitions_unreadable") == 0
        assert worker.proc is not None and worker.proc.poll() is None
        assert "Traceback" not in worker.log_text()
        assert stops
