"""The Faust application: one agent per source topic, each a thin loop around the chain.

An agent takes batches (``stream.take_events``), hands them to ``BatchProcessor.handle``
and lets Faust acknowledge the batch only after ``handle`` returned, i.e. after ClickHouse
accepted the raw rows. Topics are raw bytes (``value_serializer="raw"``): decoding and
validation are ours, so a malformed message becomes a dead letter, never a crashed agent.

Broker timeouts follow ``../shared/STACK.md``: the local tansu broker makes group joins
wait about half the session timeout, so a short session timeout keeps start-up near 3 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import faust

from streams.clickhouse_sink import ClickHouseSink
from streams.clock import WindowClock
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import ROLLUP_COLUMNS, RollupRow
from streams.events import DEAD_LETTER_TOPIC, TOPICS, Topic
from streams.ingest import BatchProcessor, Counting, InMessage
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


def add_agents(
    app: faust.App,
    settings: Settings,
    totals: Totals,
    counting: Counting | None = None,
    window_clock: WindowClock | None = None,
    topics: tuple[Topic, ...] = TOPICS,
) -> None:
    """Register one consuming agent per topic, each with its own ClickHouse connection."""
    dead_letters = app.topic(
        settings.kafka_topic(DEAD_LETTER_TOPIC), value_serializer="raw", key_serializer="raw"
    )

    async def send_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
        producer = app.producer
        futures = [
            await producer.send(dead_letters.get_topic_name(), key, value, None, None, None)
            for key, value in items
        ]
        await asyncio.gather(*futures)

    for topic in topics:
        processor = BatchProcessor(
            settings,
            totals,
            ClickHouseSink(settings, totals, name=f"salewatch-{topic}"),
            send_dead_letters,
            counting,
            window_clock=window_clock,
        )
        source = app.topic(
            settings.kafka_topic(topic), value_serializer="raw", key_serializer="raw"
        )
        app.agent(source, name=f"consume_{topic}")(_agent_body(topic, processor, settings))


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


def group_rollup_rows(rows: list[RollupRow]) -> dict[str, list[tuple[Any, ...]]]:
    """Rollup rows as insert tuples per table, columns in ``ROLLUP_COLUMNS`` order."""
    grouped: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for table, row in rows:
        grouped[table].append(tuple(row[c] for c in ROLLUP_COLUMNS[table]))
    return grouped


def _agent_body(topic: Topic, processor: BatchProcessor, settings: Settings) -> Any:
    async def consume(stream: Any) -> None:
        batches = stream.take_events(settings.batch_size, within=settings.batch_within_s)
        async for batch in batches:
            messages = [
                InMessage(e.value, e.message.key, e.message.partition, e.message.offset)
                for e in batch
            ]
            await processor.handle(topic, messages)

    consume.__name__ = consume.__qualname__ = f"consume_{topic}"
    return consume
