"""Handovers: up to which offset a worker counted partitions it released with events unstored.

Why: a worker counts an event (Prometheus totals, windows, sessions) before ClickHouse
stores it, and commits its offset only after. When it releases partitions with events
counted but not stored — a revocation that gives up after its bound during a ClickHouse
outage, or a stop whose drain runs out — their next owner reads those events again from
the committed offset. Before handovers it counted them again, and the sum of the workers'
totals was off by the whole unstored backlog (``docs/reliability.md``, gap 12).

The record, one per give-up, on the one-partition topic ``salewatch_handover``::

    {"group": "<app id>", "written_at": <ms>,
     "partitions": [["<kafka topic>", <partition>, <counted through>, "<event_id>"], ...]}

``counted through`` is the newest offset whose events the writer's totals hold;
``event_id`` is one event id of the message at that offset: the fingerprint of the
partition's incarnation (``streams.worker.offset_fence``), "" when that message holds none.

Contract for the next owner (``streams.worker.reader``): at adoption it reads the topic
to its end and keeps, per partition of its own group, the newest record
(:func:`latest_handovers`). A handover applies only when the fence finds its fingerprint
at that offset in this log; then the messages up to ``counted through`` are stored and
counted into windows and sessions only (``Pipeline.process(..., into_totals=False)``), not
into the totals, not dead-lettered and not forwarded again. A handover that does not apply
(no record, another incarnation, the topic unreadable) leaves the old behaviour: counted
twice in Prometheus, never lost, ClickHouse exact.

Why a topic and not Kafka commit metadata: the local broker (tansu 0.6) drops commit
metadata; ClickHouse, the other durable store, is what is down. The topic is read to its end
with ``ListOffsets``, which tansu answers wrongly only when the last batch holds more than one
record (``../shared/STACK.md``): every record is produced alone, by a producer of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

log = logging.getLogger(__name__)

HANDOVER_TOPIC = "salewatch_handover"
# how long writing one handover may take (inside a revocation's bound)
HANDOVER_WRITE_S = 1.0
# how long reading the topic to its end may take at an adoption
HANDOVER_READ_S = 5.0


@dataclass(frozen=True, slots=True)
class Handover:
    """A partition's events through ``counted_through`` are in a previous owner's totals;
    ``event_id`` is one id of the message at that offset ("" if none)."""

    counted_through: int
    event_id: str


def handover_value(group: str, handovers: Mapping[TopicPartition, Handover], now_ms: int) -> bytes:
    """The record of one give-up (see the module docstring)."""
    partitions = [
        [tp.topic, tp.partition, h.counted_through, h.event_id]
        for tp, h in sorted(handovers.items())
    ]
    return orjson.dumps({"group": group, "written_at": now_ms, "partitions": partitions})


def latest_handovers(group: str, values: Iterable[bytes | None]) -> dict[TopicPartition, Handover]:
    """The newest handover per partition among ``values`` (records in log order) of
    ``group``; malformed records and other groups' records are skipped."""
    latest: dict[TopicPartition, Handover] = {}
    for value in values:
        try:
            record = orjson.loads(value or b"null")
            if record["group"] != group:
                continue
            found = {
                TopicPartition(str(topic), int(partition)): Handover(int(offset), str(event_id))
                for topic, partition, offset, event_id in record["partitions"]
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed handover record")
            continue
        latest.update(found)
    return latest


def describe(handovers: Mapping[TopicPartition, Handover]) -> str:
    """One log line's list: ``clicks[0]<=41, orders[2]<=17``."""
    return ", ".join(
        f"{tp.topic}[{tp.partition}]<={h.counted_through}" for tp, h in sorted(handovers.items())
    )


class HandoverLog:
    """Writes and reads the handover topic of one worker group."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.clock = clock
        self.tp = TopicPartition(topic, 0)

    async def write(self, handovers: Mapping[TopicPartition, Handover]) -> None:
        """Produce one record (alone in its batch); raises if the broker did not take it
        within ``HANDOVER_WRITE_S``."""
        value = handover_value(self.group, handovers, int(self.clock() * 1000))
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        try:
            await asyncio.wait_for(self._send(producer, value), HANDOVER_WRITE_S)
        finally:
            await asyncio.wait_for(producer.stop(), HANDOVER_WRITE_S)

    async def _send(self, producer: AIOKafkaProducer, value: bytes) -> None:
        await producer.start()
        await producer.send_and_wait(self.topic, value, partition=0)

    async def read(self) -> dict[TopicPartition, Handover]:
        """The newest handover per partition of this group: the whole topic, to its end
        (none if the topic does not exist). Raises if it cannot be read within
        ``HANDOVER_READ_S``."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="none"
        )
        try:
            return await asyncio.wait_for(self._read_to_end(consumer), HANDOVER_READ_S)
        finally:
            await asyncio.wait_for(consumer.stop(), HANDOVER_READ_S)

    async def _read_to_end(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, Handover]:
        await consumer.start()
        if self.topic not in await consumer.topics():
            # never written, or lost with the broker's data (tansu keeps topics in memory:
            # the unstored events it would speak of are gone with it)
            return {}
        consumer.assign([self.tp])
        start = (await consumer.beginning_offsets([self.tp]))[self.tp]
        end = (await consumer.end_offsets([self.tp]))[self.tp]
        values: list[bytes | None] = []
        if end > start:
            consumer.seek(self.tp, start)
            while await consumer.position(self.tp) < end:
                polled = await consumer.getmany(self.tp, timeout_ms=500)
                values.extend(r.value for r in polled.get(self.tp, ()))
        return latest_handovers(self.group, values)
