"""The Faust application: the batch reader, the window timer, the producer.

Source topics are read by ``streams.worker.reader.SourceReader`` (an ``app.task``): whole
fetches go through ``BatchProcessor`` (decode, validate, dead letters, count), then their
raw rows through a bounded queue into ClickHouse, and offsets are committed only after
ClickHouse accepted the rows. Topics carry raw bytes: decoding and validation are ours, so
a malformed message becomes a dead letter, never a crashed worker. Faust runs the app: the
1-second window timer, the producer (dead letters, ``orders_by_session``), start and stop.

At every assignment the counting state of the assigned partitions is rebuilt from
ClickHouse (``streams.worker.recovery``) before their events are counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import faust
import orjson
from faust.app.base import BootStrategy

from streams.clickhouse.client import make_client
from streams.clickhouse.sink import ClickHouseSink
from streams.counting.clock import WindowClock
from streams.counting.pipeline import NO_WINDOW, Pipeline
from streams.counting.rollups import RollupRow, insert_batches
from streams.events.contract import DEAD_LETTER_TOPIC, ORDERS_BY_SESSION_TOPIC, TOPICS, Topic
from streams.kafka.partitioner import murmur2
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker import window_emitters
from streams.worker.handover import HANDOVER_TOPIC, HandoverLog
from streams.worker.ingest import BatchProcessor, Message
from streams.worker.insert_queue import InsertQueueFailed
from streams.worker.reader import Prepare, Route, SourceReader, TaskDied
from streams.worker.recovery.rebuild import Query
from streams.worker.recovery.service import Recovery
from streams.worker.reforwards import forwarded_again, source_header
from streams.worker.window_emitters import Mark, marks_for

log = logging.getLogger(__name__)

WINDOW_TIMER_INTERVAL_S = 1.0
# exit status of a worker whose reader, inserter or window timer died (a supervisor restarts
# it; 1 and 2 are start-up failures)
EXIT_TASK_DIED = 3


def why(exc: BaseException) -> str:
    """One line: what ``exc`` says (the inserter's error, behind a failed insert queue)."""
    while isinstance(exc, InsertQueueFailed | TaskDied) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = " ".join(str(exc).split("Stack trace:", 1)[0].split())
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


def exit_because(task: str, exc: BaseException) -> NoReturn:
    """Print one line saying which task died and why, then exit ``EXIT_TASK_DIED`` at once.

    A worker whose reader, inserter or window timer died counts nothing while looking
    alive; it must exit so that a supervisor restarts it. The exit is immediate (no drain,
    no group leave: the group notices after its session timeout, 6 s): what was counted
    but not stored is read again by the next owner (at least once). The traceback is
    logged at DEBUG (``--loglevel debug``).
    """
    log.debug("%s died", task, exc_info=exc)
    print(
        f"salewatch worker: {task} died ({why(exc)}); exiting with status {EXIT_TASK_DIED} "
        "so that a supervisor restarts it",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(EXIT_TASK_DIED)


def broker_url(bootstrap: str) -> str:
    """Faust's broker URL for a Kafka bootstrap list ``h1:p1,h2:p2``."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def create_app(settings: Settings) -> faust.App:
    """A configured Faust app without agents or a Kafka consumer (add the reader)."""
    datadir = Path(settings.state_dir) / "faust" / f"{settings.app_id}-{settings.metrics_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=broker_url(settings.kafka_bootstrap),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        datadir=str(datadir),
        store="memory://",
        # dead letters and orders_by_session (SALEWATCH_KAFKA_COMPRESSION)
        producer_compression_type=settings.kafka_compression_type,
        # Faust's default is 1,200 s: a send to a broker that stopped answering would hold
        # the batch (and revocations) for 20 minutes; see also sender()
        producer_request_timeout=settings.kafka_send_timeout_s,
    )
    # the reader (streams.worker.reader) is the only consumer: Faust's own consumer would
    # join the same group with another assignor; its sensors keep per-event statistics
    # for Faust's web views, which the worker does not serve
    app.boot_strategy = BootStrategy(app, enable_kafka_consumer=False, enable_sensors=False)
    return app


class CountLocally:
    """Counts batches with this worker's counting pipeline, on the window clock, each
    partition's events into that partition's tallies (``into_totals=False``: events a
    previous owner counted into its totals, see ``Pipeline.process``)."""

    def __init__(
        self, pipeline: Pipeline, window_clock: WindowClock, into_totals: bool = True
    ) -> None:
        self.pipeline = pipeline
        self.window_clock = window_clock
        self.into_totals = into_totals

    async def __call__(self, topic: Topic, runs: list[tuple[int, list[dict[str, Any]]]]) -> None:
        clock = self.window_clock
        for _partition, events in runs:
            clock.observe(max(e["ts"] for e in events))
        now_ms = clock.now_ms()
        for partition, events in runs:
            self.pipeline.process(topic, events, now_ms, partition, self.into_totals)


Send = Callable[[str, list[tuple[bytes | None, bytes]]], Awaitable[None]]


def sender(app: faust.App, settings: Settings) -> Send:
    """Produces ``(key, value)`` pairs to a topic with the app's producer; returns once the
    broker acknowledged them, or raises after ``SALEWATCH_KAFKA_SEND_TIMEOUT_S``."""

    async def send(topic_name: str, items: list[tuple[bytes | None, bytes]]) -> None:
        async def all_sent() -> None:
            producer = app.producer
            futures = [
                await producer.send(topic_name, key, value, None, None, None)
                for key, value in items
            ]
            await asyncio.gather(*futures)

        await asyncio.wait_for(all_sent(), settings.kafka_send_timeout_s)

    return send


# a record to send: key, value, headers
Keyed = tuple[bytes, bytes, list[tuple[str, bytes]]]
SendKeyed = Callable[[str, list[Keyed]], Awaitable[None]]


def partitioned_sender(app: faust.App, settings: Settings) -> SendKeyed:
    """Like :func:`sender`, but one record batch (one future) per partition, placed as
    Kafka's default partitioner places keys (``streams.kafka.partitioner``).

    For the orders re-keyed by session (one send and one future per record cost ~80 µs
    an order, issue 18).
    """

    async def send(topic_name: str, items: list[Keyed]) -> None:
        async def all_sent() -> None:
            # the aiokafka producer under Faust's (same settings), for its batch API, which
            # Faust does not wrap
            producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
            partitions = sorted(await producer.partitions_for(topic_name))
            by_partition: dict[int, list[Keyed]] = defaultdict(list)
            for item in items:
                index = (murmur2(item[0]) & 0x7FFFFFFF) % len(partitions)
                by_partition[partitions[index]].append(item)
            futures = []
            for partition, records in by_partition.items():
                batch = producer.create_batch()
                for key, value, headers in records:
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        # full: an empty batch takes any record
                        futures.append(
                            await producer.send_batch(batch, topic_name, partition=partition)
                        )
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None, headers=headers)
                futures.append(await producer.send_batch(batch, topic_name, partition=partition))
            await asyncio.gather(*futures)

        await asyncio.wait_for(all_sent(), settings.kafka_send_timeout_s)

    return send


def dead_letter_sender(
    app: faust.App, settings: Settings
) -> Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]]:
    """Sends dead letters (``(key, value)`` pairs) to the ``dead_letters`` topic."""
    send = sender(app, settings)

    async def send_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
        await send(settings.kafka_topic(DEAD_LETTER_TOPIC), items)

    return send_dead_letters


def add_reader(
    app: faust.App,
    settings: Settings,
    totals: Totals,
    pipeline: Pipeline,
    window_clock: WindowClock,
    recovery: Recovery,
) -> SourceReader:
    """Register the reader task: the four source topics and the re-keyed orders.

    Sessions live with the worker that owns their partition of ``clicks``/``carts`` (keyed
    by ``session_id``). Orders arrive keyed by ``order_id``, so their chain stores them raw
    and forwards the valid ones, keyed by ``session_id``, to ``orders_by_session``; that
    topic has the same partition count and the reader's assignor gives its partition p to
    the worker that owns partition p of ``clicks`` and ``carts``, which counts them.
    """
    count_locally = CountLocally(pipeline, window_clock)
    recount_locally = CountLocally(pipeline, window_clock, into_totals=False)
    send_by_session = partitioned_sender(app, settings)
    send_dead_letters = dead_letter_sender(app, settings)

    async def forward_by_session(runs: list[tuple[int, list[dict[str, Any]], list[int]]]) -> None:
        items = [
            (e["session_id"].encode(), orjson.dumps(e), [source_header(partition, offset)])
            for partition, events, offsets in runs
            for e, offset in zip(events, offsets, strict=True)
        ]
        await send_by_session(settings.kafka_topic(ORDERS_BY_SESSION_TOPIC), items)

    routes: dict[str, Route] = {}
    for topic in TOPICS:
        processor = BatchProcessor(
            settings,
            totals,
            ClickHouseSink(
                settings,
                totals,
                name=f"salewatch-{topic}",
                send_dead_letters=send_dead_letters,
                source_topic=topic,
            ),
            send_dead_letters,
            count=None if topic == "orders" else count_locally,
            forward=forward_by_session if topic == "orders" else None,
            # handed-over orders were forwarded by their previous owner already
            recount=None if topic == "orders" else recount_locally,
        )
        routes[settings.kafka_topic(topic)] = Route(
            topic, processor.prepare, processor.store, processor.prepare_counted
        )

    def orders_by_session(count: CountLocally) -> Prepare:
        async def count_orders(topic: Topic, messages: Sequence[Message]) -> None:
            # produced by this app from validated events: trusted, no second validation (a
            # tombstone there is skipped); an order counts under its orders_by_session
            # partition (its session's); a second forward of one source record is skipped
            # (streams.worker.reforwards)
            runs: dict[int, list[dict[str, Any]]] = defaultdict(list)
            again = 0
            for m in messages:
                if m.value:
                    event = orjson.loads(m.value)
                    # aiokafka's ConsumerRecord has headers; a hand-built message may not;
                    # the memory is the current state's (a rebuild replaces it)
                    headers = getattr(m, "headers", ())
                    if forwarded_again(pipeline.forwarded, headers, event["event_id"]):
                        again += 1
                    else:
                        runs[m.partition].append(event)
            if again:
                log.info("skipped %d order(s) forwarded again after a worker died", again)
            if runs:
                await count("orders", list(runs.items()))
            if not count.into_totals:
                handed = sum(len(events) for events in runs.values())
                totals.inc("salewatch_events_handed_over_total", ("orders",), handed)

        return count_orders

    routes[settings.kafka_topic(ORDERS_BY_SESSION_TOPIC)] = Route(
        "orders", orders_by_session(count_locally), None, orders_by_session(recount_locally)
    )

    async def send_dead_letter(key: bytes | None, value: bytes) -> None:
        await send_dead_letters([(key, value)])

    handover = HandoverLog(
        settings.kafka_bootstrap, settings.kafka_topic(HANDOVER_TOPIC), settings.app_id
    )
    reader = SourceReader(
        settings, totals, routes, recovery.on_assigned, send_dead_letter, handover=handover
    )

    @app.task  # type: ignore[untyped-decorator]
    async def read_sources() -> None:
        try:
            await reader.run()
        except TaskDied as exc:
            exit_because(exc.task, exc.__cause__ or exc)
        except Exception as exc:
            exit_because("the reader", exc)

    return reader


class StoreClosedWindows:
    """Stores the rollup rows of closed windows, then their marks (``window_emitters``).

    One sink for the window timer and for a rebuild's catch-up windows. Rows are inserted
    table by table, the marks last: a mark promises its windows' rows are stored. An insert
    that fails is retried (the sink blocks), so rows are held in memory, never dropped,
    while ClickHouse is down.
    """

    def __init__(
        self,
        settings: Settings,
        totals: Totals,
        wall: Callable[[], float],
        send_dead_letters: Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]]
        | None = None,
    ) -> None:
        self.sink = ClickHouseSink(
            settings, totals, name="salewatch-rollups", send_dead_letters=send_dead_letters
        )
        self.wall = wall

    async def __call__(self, rows: list[RollupRow], marks: list[Mark]) -> None:
        for batch in insert_batches(rows):
            await self.sink.insert(batch.table, batch.columns, batch.rows)
        version = int(self.wall() * 1000)
        await self.sink.insert(
            window_emitters.TABLE, window_emitters.COLUMNS, [m.row(version) for m in marks]
        )


class CloseWindows:
    """One timer tick: close the due windows, store their rows, then one mark per held
    partition: its windows up to the newest closed one are emitted
    (``streams.worker.window_emitters``).

    Skipped while partitions are being reassigned (from revoke until the new assignment's
    state is rebuilt: a window closed then would hold partitions the worker has just
    released) and once the reader stops; a tick holds ``reader.closing`` while it stores,
    so that a revocation waits for it and the next owner plans from the marks it wrote.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        window_clock: WindowClock,
        reader: SourceReader,
        recovery: Recovery,
    ) -> None:
        self.pipeline = pipeline
        self.window_clock = window_clock
        self.reader = reader
        self.recovery = recovery
        self.marked_through = NO_WINDOW  # newest window start marked
        self.marked_for: tuple[int, ...] = ()

    async def __call__(self) -> None:
        reader = self.reader
        if not reader.assignment_ready.is_set():
            return
        async with reader.closing:
            if not reader.assignment_ready.is_set():
                return
            pipeline = self.pipeline
            rows = pipeline.close_windows(self.window_clock.now_ms())
            newest = pipeline.windows.newest_closed()
            held = self.recovery.held
            marks: list[Mark] = []
            if held and newest >= 0 and (newest > self.marked_through or held != self.marked_for):
                marks = marks_for(newest, held)
            await self.recovery.store_closed(rows, marks)
            if marks:
                self.marked_through, self.marked_for = newest, held


def add_window_timer(
    app: faust.App,
    pipeline: Pipeline,
    window_clock: WindowClock,
    reader: SourceReader,
    recovery: Recovery,
) -> None:
    """Close due windows every second, also when no event arrives (:class:`CloseWindows`)."""
    tick = CloseWindows(pipeline, window_clock, reader, recovery)

    @app.timer(interval=WINDOW_TIMER_INTERVAL_S, name="close_windows")  # type: ignore[untyped-decorator]
    async def close_windows() -> None:
        try:
            await tick()
        except Exception as exc:
            exit_because("the window timer", exc)


def make_recovery(
    settings: Settings,
    totals: Totals,
    pipeline: Pipeline,
    window_clock: WindowClock,
    app: faust.App | None = None,
) -> Recovery:
    """Rebuilds the counting state from ClickHouse at each assignment (``streams.worker.recovery``).

    The reader awaits it before the assigned partitions are read, then seeks each source
    partition to the offset after the newest one ClickHouse holds (forward only), so stored
    events are not read again. The rebuild runs in a thread; ``/metrics`` and the window
    timer keep running. Its ``store_closed`` is the one the window timer stores with.
    """

    def make_query() -> tuple[Query, Callable[[], None]]:
        client = make_client(settings, client_name="salewatch-recovery")
        return client.execute, client.disconnect

    return Recovery(
        pipeline,
        window_clock,
        new_pipeline=lambda: Pipeline.from_settings(settings, Totals()),
        make_query=make_query,
        database=settings.clickhouse_database,
        partition_count=settings.topic_partitions,
        clock_kind=settings.window_clock,
        totals=totals,
        store_closed=StoreClosedWindows(
            settings,
            totals,
            time.time,
            dead_letter_sender(app, settings) if app is not None else None,
        ),
    )
