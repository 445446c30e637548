"""Offsets fenced to a partition's incarnation: seek past what ClickHouse holds only when the
log is the one ClickHouse stored.

Why: at every assignment the reader seeks each source partition to the offset after the
newest one ClickHouse holds (``streams.worker.recovery``), so stored events are not read again. An
offset means something only within one *incarnation* of a partition: a broker that lost its
data (tansu keeps topics in memory), a topic deleted and recreated, or a failover to another
cluster starts the partition again at 0 with other records. Seeking there by number skips
the new incarnation's first records (measured: 2,000 events stored, broker restarted, 6,000
produced, 4,000 stored: 2,000 skipped).

The fingerprint: with the newest stored offset ClickHouse also returns an ``event_id``
stored at it. The fence reads the record at that offset back from Kafka and compares:

* the record is there and one of its events (a message may hold an array) has that
  ``event_id`` → **same** incarnation: the seek is allowed;
* otherwise — no record at that offset (beyond the log's end, before its start, or not
  returned within ``timeout_s``), a record without that ``event_id``, a record that is not
  JSON, a fetch that failed — the seek is **refused**: the reader reads from the group's
  committed offset, or the log start when there is none. Re-reading is safe (the raw tables
  collapse repeats by ``event_id``, read with ``FINAL``); skipping never is.

One short-lived consumer without a group reads all checked partitions at once, so a check
costs one fetch round trip when the records are there (every normal restart), and at most
``timeout_s`` when some are not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from streams.events.contract import TOPICS, Topic
from streams.metrics import labels

if TYPE_CHECKING:  # streams.metrics.defs reads this module's REFUSAL_REASONS
    from streams.metrics.totals import Totals

log = logging.getLogger(__name__)

# how long a fence check waits for the records it reads back (a record beyond the log's
# end is not an error on every broker: tansu returns nothing, so only time tells)
FENCE_TIMEOUT_S = 3.0

Verdict = Literal["same", "record_missing", "event_id_differs", "unreadable_record", "fetch_failed"]
# the reasons a fence refuses a seek (the ``reason`` label of salewatch_offset_fence_refusals_total)
REFUSAL_REASONS = frozenset(
    {"record_missing", "event_id_differs", "unreadable_record", "fetch_failed", "other"}
)
TOPIC_LABELS = frozenset(TOPICS) | {labels.OTHER}


@dataclass(frozen=True, slots=True)
class StoredPosition:
    """Where ClickHouse says a partition was stored up to: the newest stored ``offset`` and
    one ``event_id`` stored at it (the fingerprint of that offset's record)."""

    offset: int
    event_id: str

    @property
    def next_offset(self) -> int:
        return self.offset + 1


def event_ids(value: bytes | None) -> frozenset[str]:
    """The ``event_id`` strings of a message value: one JSON event or an array of them.
    Empty for anything else (not JSON, a tombstone, no ids)."""
    if not value:
        return frozenset()
    try:
        decoded: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return frozenset()
    items = decoded if isinstance(decoded, list) else [decoded]
    return frozenset(
        e["event_id"] for e in items if isinstance(e, dict) and isinstance(e.get("event_id"), str)
    )


def judge(stored: StoredPosition, offset: int, value: bytes | None) -> Verdict:
    """Whether the first record Kafka returned from ``stored.offset`` on (at ``offset``,
    holding ``value``) is the record ClickHouse stored there."""
    if offset != stored.offset:
        return "record_missing"  # no record at that offset (compacted, or another log)
    ids = event_ids(value)
    if not ids:
        return "unreadable_record"
    return "same" if stored.event_id in ids else "event_id_differs"


MakeConsumer = Callable[[], AIOKafkaConsumer]


class OffsetFence:
    """Checks stored positions against the records in Kafka; see the module docstring.

    :meth:`verify` never raises for Kafka trouble: what it cannot check is a refusal
    (``fetch_failed`` or ``record_missing``), so the caller re-reads rather than skips.
    """

    def __init__(self, make_consumer: MakeConsumer, timeout_s: float = FENCE_TIMEOUT_S) -> None:
        self.make_consumer = make_consumer
        self.timeout_s = timeout_s

    async def verify(
        self, positions: Mapping[TopicPartition, StoredPosition]
    ) -> dict[TopicPartition, Verdict]:
        """The verdict of each position (``same``: the seek past it is safe)."""
        if not positions:
            return {}
        verdicts: dict[TopicPartition, Verdict] = {}
        consumer = self.make_consumer()
        try:
            await asyncio.wait_for(
                self._read_back(consumer, positions, verdicts), self.timeout_s + 2.0
            )
        except Exception as exc:  # a broker that cannot answer: refuse what is unchecked
            log.warning("checking stored offsets against Kafka failed: %r", exc)
            for tp in positions:
                verdicts.setdefault(tp, "fetch_failed")
        finally:
            try:
                await asyncio.wait_for(consumer.stop(), 5.0)
            except Exception as exc:
                log.debug("stopping the fence consumer: %r", exc)
        return verdicts

    async def _read_back(
        self,
        consumer: AIOKafkaConsumer,
        positions: Mapping[TopicPartition, StoredPosition],
        verdicts: dict[TopicPartition, Verdict],
    ) -> None:
        await consumer.start()
        consumer.assign(list(positions))
        for tp, stored in positions.items():
            consumer.seek(tp, stored.offset)
        pending = set(positions)
        deadline = time.monotonic() + self.timeout_s
        while pending:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            try:
                polled = await consumer.getmany(*pending, timeout_ms=min(left_ms, 500))
            except OffsetOutOfRangeError as exc:  # Kafka says so at once (tansu does not)
                gone = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                for tp in gone:
                    if tp in pending:
                        verdicts[tp] = "record_missing"
                        pending.discard(tp)
                        consumer.pause(tp)
                if not gone:
                    raise
                continue
            for tp, records in polled.items():
                if tp in pending and records:
                    verdicts[tp] = judge(positions[tp], records[0].offset, records[0].value)
                    pending.discard(tp)
                    consumer.pause(tp)
        for tp in pending:
            verdicts[tp] = "record_missing"  # nothing at or after that offset within the time


async def seek_past_stored(
    consumer: AIOKafkaConsumer,
    wanted: dict[TopicPartition, StoredPosition],
    fence: OffsetFence,
    totals: Totals,
    counting_topic: Mapping[str, Topic],
) -> dict[TopicPartition, int]:
    """Seek each partition to the offset after the newest one ClickHouse holds.

    Only forward of the group's committed offset, and only when the fence
    (:class:`OffsetFence`) found the stored record at that offset in this log: a
    broker that lost its data, a recreated topic or another cluster holds another
    incarnation of the partition, whose records at those offsets are not stored. A
    refused seek leaves the partition at the group's committed offset (or the log
    start), logged once per assignment and counted in
    ``salewatch_offset_fence_refusals_total`` (by ``counting_topic``: Kafka topic name →
    the counting topic). Returns the seeks made.
    """
    committed = {tp: await consumer.committed(tp) for tp in wanted}
    ahead = {
        tp: stored
        for tp, stored in wanted.items()
        if committed[tp] is None or stored.next_offset > int(committed[tp] or 0)
    }
    verdicts = await fence.verify(ahead)
    sought: dict[TopicPartition, int] = {}
    refused: list[str] = []
    for tp, stored in sorted(ahead.items()):
        verdict = verdicts.get(tp, "fetch_failed")
        if verdict == "same":
            consumer.seek(tp, stored.next_offset)
            sought[tp] = stored.next_offset
            continue
        topic = counting_topic.get(tp.topic, "other")
        totals.inc(
            "salewatch_offset_fence_refusals_total",
            (labels.closed(topic, TOPIC_LABELS), labels.closed(verdict, REFUSAL_REASONS)),
        )
        start = "its committed offset" if committed[tp] is not None else "its start"
        refused.append(f"{tp.topic}[{tp.partition}] {verdict}, reading from {start}")
    if refused:
        log.warning(
            "not resuming %d partition(s) after the offsets stored in ClickHouse: the"
            " record stored at the newest offset is not in this log (a broker that lost"
            " its data, a recreated topic, another cluster?): %s",
            len(refused), "; ".join(refused),
        )  # fmt: skip
    if sought:
        log.info(
            "resuming %d partition(s) after the offsets stored in ClickHouse, past the"
            " group's committed offsets: %s",
            len(sought),
            ", ".join(
                f"{tp.topic}[{tp.partition}] {committed[tp]}→{off}"
                for tp, off in sorted(sought.items())
            ),
        )
    return sought
