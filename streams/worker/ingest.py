"""The consumer chain for one batch of Kafka messages, read top to bottom:

decode → validate → dead-letter the bad → count the good → insert raw rows → return.

Contract: ``await BatchProcessor.handle(topic, messages)`` returns once every refused event
is on ``dead_letters`` and every valid event's raw row is accepted by ClickHouse; only then
may the caller acknowledge the messages' offsets. It never raises for bad input (bad input
is dead-lettered and counted); it blocks and retries while ClickHouse is down (see
``streams.clickhouse.sink``). ``handle`` is :meth:`~BatchProcessor.prepare` (everything but
the insert: counting happens first, so live metrics keep moving while ClickHouse is
unavailable) then :meth:`~BatchProcessor.store` (the insert); the worker calls the two
apart, through a bounded queue (``streams.worker.reader``).

Nothing here knows about Faust or Kafka: the worker's reader, the benchmarks and the tests
all call the same chain.

Speed (issue 8): a message whose events the compiled checks prove valid
(``streams.events.decode.valid_events``) skips the general decoder; the per-batch metrics are
computed with C-level counting (``Counter(map(...))``), not Python loops per event.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from streams.clickhouse.raw_rows import RAW_COLUMNS, RAW_TABLE, raw_row
from streams.events.contract import Topic
from streams.events.decode import Limits, decode_message, valid_events
from streams.kafka.dead_letters import dead_letter_value
from streams.metrics import labels
from streams.metrics.defs import ALL_EVENT_TYPES
from streams.metrics.totals import Totals
from streams.settings import Settings

T = TypeVar("T")


class Message(Protocol):
    """What the chain reads of a Kafka message (``value`` None: a tombstone). aiokafka's
    ``ConsumerRecord`` is one: the reader passes fetched records as they are, without a
    copy per record (issue 18)."""

    @property
    def value(self) -> bytes | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class InMessage:
    """A :class:`Message` built by hand (tests, benchmarks)."""

    value: bytes | None
    key: bytes | None
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    valid: int
    invalid: int


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A batch decoded: valid events and their raw rows, dead letters, runs per partition."""

    events: list[dict[str, Any]]
    offsets: list[int]  # each event's message offset
    rows: list[tuple[Any, ...]]
    dead: list[tuple[bytes | None, bytes]]
    invalid_reasons: Counter[str]
    runs: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch after decode, dead letters and counting: its raw rows still to be stored."""

    topic: Topic
    rows: list[tuple[Any, ...]]
    result: BatchResult


# counts a batch of valid events, as ``(kafka partition, events)`` runs in message order:
# locally (``streams.counting``, whose windows are per partition) or by forwarding them to
# the worker that owns their sessions; returns once they are counted or handed over
CountBatch = Callable[[Topic, list[tuple[int, list[dict[str, Any]]]]], Awaitable[None]]
# hands a batch of valid events to the worker that counts them (orders, to the owner of their
# session), as ``(kafka partition, events, their message offsets)`` runs in message order;
# returns once they are handed over
ForwardBatch = Callable[[list[tuple[int, list[dict[str, Any]], list[int]]]], Awaitable[None]]


class RawSink(Protocol):
    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None: ...


# (key, value) pairs to write to dead_letters; returns once the broker has them
SendDeadLetters = Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]]


_EVENT_TYPE = itemgetter("event_type")
_TS = itemgetter("ts")


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_future_ms=settings.max_future_s * 1000,
        max_age_ms=settings.max_event_age_days * 24 * 3600 * 1000,
    )


class BatchProcessor:
    """Runs the chain for batches of one or more topics; one instance per source topic.

    ``count`` counts the valid events of :meth:`prepare`, or ``forward`` hands them to the
    worker that counts them (orders); ``recount`` counts those of :meth:`prepare_counted`,
    into windows and sessions only (None: nothing to do, e.g. for orders, which the
    previous owner forwarded already).
    """

    def __init__(
        self,
        settings: Settings,
        totals: Totals,
        sink: RawSink,
        send_dead_letters: SendDeadLetters,
        count: CountBatch | None = None,
        clock: Callable[[], float] = time.time,
        recount: CountBatch | None = None,
        forward: ForwardBatch | None = None,
    ) -> None:
        if count is not None and forward is not None:
            raise ValueError("a batch is counted here or forwarded, not both")
        self.totals = totals
        self.sink = sink
        self.send_dead_letters = send_dead_letters
        self.count = count
        self.forward = forward
        self.recount = recount
        self.clock = clock
        self.limits = limits_from(settings)

    async def handle(self, topic: Topic, messages: Sequence[Message]) -> BatchResult:
        """The whole chain: :meth:`prepare`, then :meth:`store`."""
        prepared = await self.prepare(topic, messages)
        await self.store(topic, prepared.rows)
        return prepared.result

    async def prepare(self, topic: Topic, messages: Sequence[Message]) -> PreparedBatch:
        """Decode, dead-letter the bad, count the good; return the raw rows to store.

        Returns once the dead letters are on Kafka and the valid events are counted (or
        handed over); nothing is stored yet.
        """
        now = self.clock()
        now_ms = int(now * 1000)
        decoded = self._decode(topic, messages, now_ms, int(now))
        events, dead = decoded.events, decoded.dead
        self._count_pipeline(topic, events, decoded.invalid_reasons, now_ms)
        if dead:
            await self.send_dead_letters(dead)
            self.totals.inc("salewatch_dead_letters_total", (topic,), len(dead))
        if self.count is not None and events:
            await self.count(topic, _split(events, decoded.runs))
        if self.forward is not None and events:
            runs = decoded.runs
            by_partition = zip(_split(events, runs), _split(decoded.offsets, runs), strict=True)
            await self.forward([(p, es, os) for (p, es), (_, os) in by_partition])
        return PreparedBatch(topic, decoded.rows, BatchResult(valid=len(events), invalid=len(dead)))

    async def prepare_counted(self, topic: Topic, messages: Sequence[Message]) -> PreparedBatch:
        """Like :meth:`prepare`, for messages a previous owner of their partitions already
        counted (``streams.worker.handover``): their raw rows to store, their valid events
        through ``recount`` (windows and sessions only); no total, no dead letter (sent
        already), nothing forwarded again."""
        now = self.clock()
        decoded = self._decode(topic, messages, int(now * 1000), int(now))
        events = decoded.events
        received = len(events) + sum(decoded.invalid_reasons.values())
        self.totals.inc("salewatch_events_handed_over_total", (topic,), received)
        if self.recount is not None and events:
            await self.recount(topic, _split(events, decoded.runs))
        return PreparedBatch(
            topic, decoded.rows, BatchResult(valid=len(events), invalid=len(decoded.dead))
        )

    def _decode(
        self, topic: Topic, messages: Sequence[Message], now_ms: int, now_s: int
    ) -> _Decoded:
        events: list[dict[str, Any]] = []
        offsets: list[int] = []
        rows: list[tuple[Any, ...]] = []
        dead: list[tuple[bytes | None, bytes]] = []
        invalid_reasons: Counter[str] = Counter()
        limits = self.limits
        # (partition, index in events where its run ends): messages come partition by partition
        runs: list[tuple[int, int]] = []
        for msg in messages:
            if runs and runs[-1][0] != msg.partition:
                runs[-1] = (runs[-1][0], len(events))
            if not runs or runs[-1][0] != msg.partition:
                runs.append((msg.partition, -1))
            proven = valid_events(msg.value, topic, now_ms, limits)
            if proven is not None:
                partition, offset = msg.partition, msg.offset
                for event in proven:
                    events.append(event)
                    offsets.append(offset)
                    rows.append(raw_row(topic, event, partition, offset, now_s))
                continue
            decoded = decode_message(msg.value, topic, now_ms, limits)
            for event in decoded.events:
                events.append(event)
                offsets.append(msg.offset)
                rows.append(raw_row(topic, event, msg.partition, msg.offset, now_s))
            for rejected in decoded.rejected:
                invalid_reasons[rejected.reason] += 1
                value = dead_letter_value(rejected, topic, msg.partition, msg.offset, now_ms)
                dead.append((msg.key, value))
        return _Decoded(events, offsets, rows, dead, invalid_reasons, runs)

    async def store(self, topic: Topic, rows: list[tuple[Any, ...]]) -> None:
        """Insert raw rows of ``topic``; returns once ClickHouse accepted them (retries)."""
        await self.sink.insert(RAW_TABLE[topic], RAW_COLUMNS[topic], rows)

    def _count_pipeline(
        self,
        topic: Topic,
        events: list[dict[str, Any]],
        invalid_reasons: Counter[str],
        now_ms: int,
    ) -> None:
        totals = self.totals
        received = len(events) + sum(invalid_reasons.values())
        totals.inc("salewatch_events_received_total", (topic,), received)
        for reason, n in invalid_reasons.items():
            totals.inc("salewatch_events_invalid_total", (topic, reason), n)
        if not events:
            return
        by_type = Counter(map(_EVENT_TYPE, events))
        for event_type, n in by_type.items():
            label = labels.closed(event_type, ALL_EVENT_TYPES)
            totals.inc("salewatch_events_valid_total", (topic, label), n)
        by_ts = Counter(map(_TS, events))
        newest = max(by_ts)
        totals.set_max("salewatch_last_event_timestamp_seconds", (topic,), newest / 1000)
        # lag in 100 ms steps: one histogram update per distinct step, not per event
        lag_steps: Counter[int] = Counter()
        for ts, n in by_ts.items():
            lag_steps[max(now_ms - ts, 0) // 100] += n
        for step, n in lag_steps.items():
            totals.observe("salewatch_event_lag_seconds", (topic,), step / 10, n)


def _split(items: list[T], runs: list[tuple[int, int]]) -> list[tuple[int, list[T]]]:
    """``items`` (events, or their offsets) cut into ``(partition, items)`` at the run ends
    (-1: the last run)."""
    if len(runs) == 1:
        return [(runs[0][0], items)]
    out = []
    begin = 0
    for partition, end in runs:
        stop = len(items) if end < 0 else end
        if stop > begin:
            out.append((partition, items[begin:stop]))
        begin = stop
    return out
