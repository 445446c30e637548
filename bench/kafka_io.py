"""Topics and fast production for the benchmarks (aiokafka).

``produce`` fills per-partition record batches itself (aiokafka's ``create_batch`` /
``send_batch``), ~150–180k small messages/s on one core here, so pre-producing 1M events
takes seconds, not the minutes of a per-message producer. Partitions come with the
messages (``bench.workload`` uses Kafka's default partitioner), keys are kept.

tansu keeps topics in memory and frees them on delete (checked: RSS back to its level
before a 300k-message topic), so every benchmark run deletes what it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from bench.workload import Message

BATCH_BYTES = 256 * 1024
MAX_IN_FLIGHT = 64

Progress = Callable[[int], None]


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


def make_producer(
    bootstrap: str, compression: str | None = None, linger_ms: int = 0
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_batch_size=BATCH_BYTES,
        linger_ms=linger_ms,
        compression_type=compression,
        acks=1,
    )


class BatchSender:
    """Appends messages to one open batch per (topic, partition); sends full ones.

    ``flush`` sends every open batch; ``drain`` also waits until the broker has all.
    """

    def __init__(self, producer: AIOKafkaProducer, topic_name: Callable[[str], str]) -> None:
        self.producer = producer
        self.topic_name = topic_name
        self._open: dict[tuple[str, int], Any] = {}
        self._in_flight: list[asyncio.Future[Any]] = []

    async def add(self, message: Message) -> None:
        slot = (message.topic, message.partition)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self.producer.create_batch()
        if batch.append(key=message.key, value=message.value, timestamp=None) is None:
            await self._send(slot, batch)
            batch = self._open[slot] = self.producer.create_batch()
            batch.append(key=message.key, value=message.value, timestamp=None)

    async def _send(self, slot: tuple[str, int], batch: Any) -> None:
        batch.close()
        topic, partition = slot
        future = await self.producer.send_batch(batch, self.topic_name(topic), partition=partition)
        self._in_flight.append(future)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            await asyncio.gather(*self._in_flight)
            self._in_flight.clear()

    async def flush(self) -> None:
        open_batches, self._open = self._open, {}
        for slot, batch in open_batches.items():
            await self._send(slot, batch)

    async def drain(self) -> None:
        await self.flush()
        await asyncio.gather(*self._in_flight)
        self._in_flight.clear()


async def produce(
    bootstrap: str,
    topic_name: Callable[[str], str],
    messages: Iterable[Message],
    *,
    compression: str | None = None,
    progress: Progress | None = None,
    progress_every: int = 250_000,
) -> tuple[int, int, float]:
    """Send ``messages``; return (messages, events, seconds) once the broker has them all."""
    producer = make_producer(bootstrap, compression)
    await producer.start()
    sender = BatchSender(producer, topic_name)
    started = time.perf_counter()
    count = events = 0
    next_report = progress_every
    try:
        for message in messages:
            await sender.add(message)
            count += 1
            events += message.events
            if progress is not None and events >= next_report:
                progress(events)
                next_report += progress_every
        await sender.drain()
    finally:
        await producer.stop()
    return count, events, time.perf_counter() - started
