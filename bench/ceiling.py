"""The ceiling: a raw aiokafka ``getmany`` loop that only decodes JSON (orjson).

No consumer group (partitions assigned directly, read from the beginning), so there is
no join wait; the rate is taken over the steady middle of the run (``bench.stats``), like
every other consumer's. An array message counts each of its events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.stats import steady_cost, steady_rate

Samples = list[tuple[float, float]]


async def consume(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int,
    expected_events: int,
    timeout_s: float = 300.0,
    max_records: int = 5000,
) -> tuple[Samples, Samples]:
    """Read ``topics`` from the start until ``expected_events``.

    Returns (time, events) and (time, CPU seconds of this process) samples.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(partitions)])
        await consumer.seek_to_beginning()
        loads = orjson.loads
        events = 0
        samples: Samples = [(time.perf_counter(), 0.0)]
        usage: Samples = [(samples[0][0], time.process_time())]
        deadline = time.monotonic() + timeout_s
        while events < expected_events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            for records in batches.values():
                for record in records:
                    try:
                        value = loads(record.value)
                    except orjson.JSONDecodeError:
                        events += 1
                        continue
                    events += len(value) if isinstance(value, list) else 1
            samples.append((time.perf_counter(), float(events)))
            usage.append((samples[-1][0], time.process_time()))
        return samples, usage
    finally:
        await consumer.stop()


def run(
    bootstrap: str, topics: Sequence[str], partitions: int, expected_events: int
) -> tuple[float, float]:
    """Events/s and CPU seconds per event of the ceiling loop over its steady middle."""
    samples, usage = asyncio.run(consume(bootstrap, topics, partitions, expected_events))
    return steady_rate(samples, expected_events), steady_cost(samples, usage, expected_events)
