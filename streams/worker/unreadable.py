"""Record batches the reader cannot decode: find them, stop at them, skip them on request.

A record batch that aiokafka cannot turn into records (a codec whose library is missing, a
codec Kafka does not define, a corrupt batch, a record larger than the fetch allows) makes
``getmany`` raise, on every fetch of that partition, from the same offset: a worker that
let it through crashed and, restarted, crashed again on the same batch (issue 20).

Contract:

* :func:`locate` names the partition, the first offset that cannot be read and, when the
  batch header is readable, the offset after the batch; ``None`` when the exception is not
  about a record batch (the caller re-raises it).
* :class:`Unreadables` keeps the partitions the reader stopped (``consumer.pause``) at
  such a batch, counts them (``salewatch_unreadable_batches_total{topic,reason}``, once
  per stop; ``salewatch_partitions_unreadable{topic,reason}``, while stopped) and logs one
  ERROR line per stop naming topic, partition, offsets and the command to skip the batch.
  Every other partition keeps being read.
* ``salewatch skip --topic T --partition P --offset O`` (``streams.cli.skip``) writes an
  instruction to the control topic (``salewatch_control``). While a partition is stopped,
  the worker reads that topic (``check_skips``, every ``SKIP_CHECK_S``); an instruction for
  the stopped partition at an offset inside the unreadable range moves the partition past
  the batch and resumes it, with one WARNING line and one dead letter (reason
  ``skipped_unreadable_batch``, the skipped offsets, no original bytes). Instructions are
  kept in the topic: a worker that meets the same batch again (restart, rebalance: pauses
  end with the assignment) skips it again without a new command. The offsets move past
  the batch in the group only when records after it are stored (at least once).

The batch is located from the exception's traceback: aiokafka raises from its
``PartitionRecords`` iterator, which holds the partition and the position, without naming
them in the exception (``tests/unit/worker/test_unreadable.py`` pins this on aiokafka's own
parser, so a client upgrade that changes it fails there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.errors import CorruptRecordException, RecordTooLargeError, UnsupportedCodecError

from streams.metrics.labels import closed

if TYPE_CHECKING:  # streams.metrics.totals imports the metric definitions, which import this module
    from streams.metrics.totals import Totals

log = logging.getLogger(__name__)

UnreadableReason = Literal[
    "missing_codec", "unknown_codec", "corrupt_batch", "record_too_large", "other"
]
UNREADABLE_REASONS: frozenset[str] = frozenset(UnreadableReason.__args__)  # type: ignore[attr-defined]
CONTROL_TOPIC = "salewatch_control"
SKIP_REASON = "skipped_unreadable_batch"
SKIP_CHECK_S = 2.0


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Where reading a partition stopped: ``offset`` is the first offset not read;
    ``next_offset`` the offset after the unreadable batch (None: header unreadable)."""

    topic: str
    partition: int
    offset: int
    next_offset: int | None
    reason: UnreadableReason
    detail: str

    @property
    def skip_to(self) -> int:
        """Where reading resumes after a skip: past the batch, or past one offset."""
        return self.next_offset if self.next_offset is not None else self.offset + 1

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def reason_of(exc: BaseException) -> UnreadableReason:
    if isinstance(exc, UnsupportedCodecError):
        return "missing_codec" if "Libraries for" in str(exc) else "unknown_codec"
    if isinstance(exc, RecordTooLargeError):
        return "record_too_large"
    # a bad CRC, or a decompressor refusing its input (zlib, cramjam, struct errors)
    return "corrupt_batch"


def locate(exc: BaseException) -> Unreadable | None:
    """The batch ``exc`` (raised by ``getmany``) is about, or None if it is not about one."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, RecordTooLargeError) and len(exc.args) >= 3:
        tp, offset = exc.args[1], exc.args[2]
        if isinstance(tp, TopicPartition) and isinstance(offset, int):
            return Unreadable(tp.topic, tp.partition, offset, None, "record_too_large", detail)
    # the innermost frame of the PartitionRecords iterator: its batch loop (_unpack_records)
    # holds the batch being decoded
    found: tuple[PartitionRecords, object] | None = None
    tb = exc.__traceback__
    while tb is not None:
        frame_locals = tb.tb_frame.f_locals
        records = frame_locals.get("self")
        if isinstance(records, PartitionRecords):
            found = (records, frame_locals.get("next_batch"))
        tb = tb.tb_next
    if found is not None:
        records, batch = found
        tp = records._tp
        offset = int(records.next_fetch_offset)
        next_offset: int | None = None
        try:
            next_offset = int(batch.next_offset) if batch is not None else None  # type: ignore[attr-defined]
        except Exception:  # the header itself is unreadable
            next_offset = None
        if next_offset is not None and next_offset <= offset:
            next_offset = None
        return Unreadable(tp.topic, tp.partition, offset, next_offset, reason_of(exc), detail)
    if isinstance(exc, UnsupportedCodecError | CorruptRecordException):
        log.error("unreadable record batch, partition unknown: %s", detail)
    return None


# (kafka topic → logical topic name) and dead-letter sending, from the reader's routes
LogicalTopic = Callable[[str], str]
SendDeadLetter = Callable[[bytes | None, bytes], Awaitable[None]]


class Unreadables:
    """The partitions stopped at an unreadable batch, their metrics and their skips."""

    def __init__(
        self,
        totals: Totals,
        logical_topic: LogicalTopic,
        control_topic: str,
        make_control_consumer: Callable[[], AIOKafkaConsumer],
        send_dead_letter: SendDeadLetter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.totals = totals
        self.logical_topic = logical_topic
        self.control_topic = control_topic
        self.make_control_consumer = make_control_consumer
        self.send_dead_letter = send_dead_letter
        self.clock = clock
        self.stopped: dict[TopicPartition, Unreadable] = {}
        self.skips: set[tuple[str, int, int]] = set()  # (kafka topic, partition, offset)
        self.control: AIOKafkaConsumer | None = None
        self.checked_at = float("-inf")
        self.generation = 0  # the reader's assignment the pauses belong to

    def labels(self, found: Unreadable) -> tuple[str, str]:
        return (self.logical_topic(found.topic), closed(found.reason, UNREADABLE_REASONS))

    def _gauge(self, found: Unreadable) -> None:
        labels = self.labels(found)
        n = sum(1 for u in self.stopped.values() if self.labels(u) == labels)
        self.totals.set("salewatch_partitions_unreadable", labels, n)

    def stop(self, consumer: AIOKafkaConsumer, found: Unreadable, generation: int) -> None:
        """Pause ``found``'s partition at its unreadable offset; log, count."""
        self.generation = generation
        consumer.seek(found.tp, found.offset)
        consumer.pause(found.tp)
        self.stopped[found.tp] = found
        self.totals.inc("salewatch_unreadable_batches_total", self.labels(found))
        self._gauge(found)
        until = f"-{found.next_offset - 1}" if found.next_offset is not None else ""
        log.error(
            "cannot read %s[%d] at offset %d%s (%s: %s); stopped reading that partition, the"
            " others go on. To skip it: salewatch skip --topic %s --partition %d --offset %d",
            found.topic, found.partition, found.offset, until, found.reason, found.detail,
            self.logical_topic(found.topic), found.partition, found.offset,
        )  # fmt: skip

    def forget(self) -> None:
        """A new assignment ended every pause: reset the gauges (re-detected on fetch)."""
        for found in list(self.stopped.values()):
            del self.stopped[found.tp]
            self._gauge(found)

    async def check_skips(self, consumer: AIOKafkaConsumer) -> None:
        """Apply skip instructions to stopped partitions (at most every ``SKIP_CHECK_S``)."""
        if not self.stopped or self.clock() - self.checked_at < SKIP_CHECK_S:
            return
        self.checked_at = self.clock()
        await self._read_instructions()
        for found in list(self.stopped.values()):
            if any(
                topic == found.topic
                and partition == found.partition
                and found.offset <= offset < found.skip_to
                for topic, partition, offset in self.skips
            ):
                await self._skip(consumer, found)

    async def _read_instructions(self) -> None:
        if self.control is None:
            control = self.make_control_consumer()
            await control.start()
            tp = TopicPartition(self.control_topic, 0)
            control.assign([tp])
            await control.seek_to_beginning(tp)
            self.control = control
        polled = await self.control.getmany(timeout_ms=200)
        for records in polled.values():
            for record in records:
                try:
                    skip = orjson.loads(record.value or b"null")
                    self.skips.add((skip["topic"], int(skip["partition"]), int(skip["offset"])))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.warning("ignoring a malformed skip instruction at offset %d", record.offset)

    async def _skip(self, consumer: AIOKafkaConsumer, found: Unreadable) -> None:
        del self.stopped[found.tp]
        self._gauge(found)
        consumer.seek(found.tp, found.skip_to)
        consumer.resume(found.tp)
        log.warning(
            "skipped %s[%d] offsets %d-%d on request (%s); reading it again from %d",
            found.topic, found.partition, found.offset, found.skip_to - 1, found.reason,
            found.skip_to,
        )  # fmt: skip
        if self.send_dead_letter is not None:
            await self.send_dead_letter(None, skip_letter(found, int(time.time() * 1000)))

    async def close(self) -> None:
        if self.control is not None:
            await self.control.stop()


def skip_letter(found: Unreadable, now_ms: int) -> bytes:
    """The dead letter of a skipped batch: the envelope of ``streams.kafka.dead_letters`` with
    the skipped range and no original bytes (the client could not decode them)."""
    envelope: dict[str, Any] = {
        "reason": SKIP_REASON,
        "detail": f"{found.reason}: {found.detail}",
        "source_topic": found.topic,
        "partition": found.partition,
        "offset": found.offset,
        "skipped_to": found.skip_to,
        "dead_lettered_at": now_ms,
        "original_size": 0,
        "truncated": False,
        "original": "",
    }
    return orjson.dumps(envelope)
