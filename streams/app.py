"""The Faust application: one agent per source topic, each a thin loop around the chain.

An agent takes batches (``stream.take_events``), hands them to ``BatchProcessor.handle``
and lets Faust acknowledge the batch only after ``handle`` returned, i.e. after ClickHouse
accepted the raw rows. Topics are raw bytes (``value_serializer="raw"``): decoding and
validation are ours, so a malformed message becomes a dead letter, never a crashed agent.

Broker timeouts follow ``../shared/STACK.md``: the local tansu broker makes group joins
wait about half the session timeout, so a short session timeout keeps start-up near 3 s.

At every assignment the counting state of the assigned partitions is rebuilt from
ClickHouse (``add_recovery``, ``streams.recovery``) before their events are counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import TP

from streams.clickhouse_client import make_client
from streams.clickhouse_sink import ClickHouseSink
from streams.clock import WindowClock
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import ROLLUP_COLUMNS, RollupRow
from streams.events import DEAD_LETTER_TOPIC, ORDERS_BY_SESSION_TOPIC, TOPICS, Topic
from streams.ingest import BatchProcessor, InMessage
from streams.recovery import Query, Recovery
from streams.settings import Settings
from streams.totals import Totals

log = logging.getLogger(__name__)

WINDOW_TIMER_INTERVAL_S = 1.0


def broker_url(bootstrap: str) -> str:
    """Faust's broker URL for a Kafka bootstrap list ``h1:p1,h2:p2``."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def create_app(settings: Settings) -> faust.App:
    """A configured, agent-less Faust app."""
    datadir = Path(settings.state_dir) / "faust" / f"{settings.app_id}-{settings.metrics_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=broker_url(settings.kafka_bootstrap),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topic_partitions,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=6,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(datadir),
        store="memory://",
    )


class CountLocally:
    """Counts batches with this worker's counting pipeline, on the window clock."""

    def __init__(self, pipeline: Pipeline, window_clock: WindowClock) -> None:
        self.pipeline = pipeline
        self.window_clock = window_clock

    async def __call__(self, topic: Topic, events: list[dict[str, Any]]) -> None:
        self.window_clock.observe(max(e["ts"] for e in events))
        self.pipeline.process(topic, events, self.window_clock.now_ms())


def add_agents(
    app: faust.App,
    settings: Settings,
    totals: Totals,
    pipeline: Pipeline,
    window_clock: WindowClock,
) -> None:
    """Register the agents: one per source topic, plus the re-keyed orders counter.

    Sessions live with the worker that owns their partition of ``clicks``/``carts`` (keyed
    by ``session_id``). Orders arrive keyed by ``order_id``, so their agent stores them raw
    and forwards the valid ones, keyed by ``session_id``, to ``orders_by_session``; that
    topic has the same partition count, so Faust assigns its partition p to the worker
    that owns partition p of ``clicks`` and ``carts`` (co-partitioning), which counts them.
    """
    dead_letters = _raw_topic(app, settings, DEAD_LETTER_TOPIC)
    by_session = _raw_topic(app, settings, ORDERS_BY_SESSION_TOPIC)
    count_locally = CountLocally(pipeline, window_clock)

    async def send(topic_name: str, items: list[tuple[bytes | None, bytes]]) -> None:
        producer = app.producer
        futures = [
            await producer.send(topic_name, key, value, None, None, None) for key, value in items
        ]
        await asyncio.gather(*futures)

    async def send_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
        await send(dead_letters.get_topic_name(), items)

    async def forward_by_session(topic: Topic, events: list[dict[str, Any]]) -> None:
        items = [(e["session_id"].encode(), orjson.dumps(e)) for e in events]
        await send(by_session.get_topic_name(), items)

    for topic in TOPICS:
        processor = BatchProcessor(
            settings,
            totals,
            ClickHouseSink(settings, totals, name=f"salewatch-{topic}"),
            send_dead_letters,
            count=forward_by_session if topic == "orders" else count_locally,
        )
        body = _agent_body(topic, processor.handle, settings)
        app.agent(_raw_topic(app, settings, topic), name=f"consume_{topic}")(body)

    async def count_orders(topic: Topic, messages: Sequence[InMessage]) -> None:
        # produced by this app from validated events: trusted, no second validation
        await count_locally("orders", [orjson.loads(m.value) for m in messages])

    body = _agent_body("orders", count_orders, settings, name="count_orders_by_session")
    app.agent(by_session, name="count_orders_by_session")(body)


def _raw_topic(app: faust.App, settings: Settings, topic: str) -> Any:
    return app.topic(settings.kafka_topic(topic), value_serializer="raw", key_serializer="raw")


def add_window_timer(
    app: faust.App,
    settings: Settings,
    totals: Totals,
    pipeline: Pipeline,
    window_clock: WindowClock,
) -> None:
    """Close due windows every second — also when no event arrives — and store their rows.

    Rows of one closing are inserted table by table; an insert that fails is retried (the
    sink blocks), so rows are held in memory, never dropped, while ClickHouse is down.
    """
    sink = ClickHouseSink(settings, totals, name="salewatch-rollups")

    @app.timer(interval=WINDOW_TIMER_INTERVAL_S, name="close_windows")  # type: ignore[untyped-decorator]
    async def close_windows() -> None:
        rows = pipeline.close_windows(window_clock.now_ms())
        for table, table_rows in group_rollup_rows(rows).items():
            await sink.insert(table, ROLLUP_COLUMNS[table], table_rows)


def add_recovery(
    app: faust.App,
    settings: Settings,
    pipeline: Pipeline,
    window_clock: WindowClock,
    worker: str,
) -> Recovery:
    """Rebuild the counting state from ClickHouse at every assignment (``streams.recovery``).

    Hook: Faust's ``on_rebalance_complete`` signal. Faust sends it once the new assignment's
    partitions are assigned and paused, and awaits it before it seeks them to their
    committed offsets and resumes the flow, so no event of an assigned partition reaches
    an agent before the state is rebuilt (the rebuild runs in a thread; ``/metrics`` and
    the window timer keep running). The handler then commits, for each source topic
    partition, the offset after the newest one ClickHouse holds (forward only), so the
    seek that follows does not read stored events again.
    """

    def make_query() -> tuple[Query, Callable[[], None]]:
        client = make_client(settings, client_name="salewatch-recovery")
        return client.execute, client.disconnect

    recovery = Recovery(
        pipeline,
        window_clock,
        new_pipeline=lambda: Pipeline.from_settings(settings, Totals(), None, worker),
        make_query=make_query,
        database=settings.clickhouse_database,
        worker=worker,
        partition_count=settings.topic_partitions,
        clock_kind=settings.window_clock,
    )
    counted = {settings.kafka_topic(t) for t in (*TOPICS, ORDERS_BY_SESSION_TOPIC)}

    async def rebuild_counting_state(
        sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        # the aiokafka consumer (ThreadDelegateConsumer), beyond Faust's ConsumerT protocol
        consumer: Any = app.consumer
        assignment = consumer.assignment()
        partitions = {tp.partition for tp in assignment if tp.topic in counted}
        next_offsets = await recovery.on_assigned(sorted(partitions))
        wanted = {
            TP(settings.kafka_topic(topic), partition): offset
            for (topic, partition), offset in next_offsets.items()
        }
        wanted = {tp: offset for tp, offset in wanted.items() if tp in assignment}
        if not wanted:
            return
        committed = await consumer.seek_to_committed()
        ahead = {tp: off for tp, off in wanted.items() if off > (committed.get(tp) or 0)}
        if ahead:
            # Consumer._commit: commits exactly these offsets (Consumer.commit only commits
            # what agents acknowledged); Faust's following seek then starts there
            await consumer._commit(ahead)
            log.info("resuming %d partition(s) after the offsets stored in ClickHouse", len(ahead))

    app.on_rebalance_complete.connect(rebuild_counting_state)
    return recovery


def group_rollup_rows(rows: list[RollupRow]) -> dict[str, list[tuple[Any, ...]]]:
    """Rollup rows as insert tuples per table, columns in ``ROLLUP_COLUMNS`` order."""
    grouped: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for table, row in rows:
        grouped[table].append(tuple(row[c] for c in ROLLUP_COLUMNS[table]))
    return grouped


def _agent_body(
    topic: Topic,
    handle: Callable[[Topic, Sequence[InMessage]], Awaitable[Any]],
    settings: Settings,
    name: str = "",
) -> Any:
    async def consume(stream: Any) -> None:
        batches = stream.take_events(settings.batch_size, within=settings.batch_within_s)
        async for batch in batches:
            messages = [
                InMessage(e.value, e.message.key, e.message.partition, e.message.offset)
                for e in batch
            ]
            await handle(topic, messages)

    consume.__name__ = consume.__qualname__ = name or f"consume_{topic}"
    return consume
