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
from pathlib import Path
from typing import Any

import faust

from streams.clickhouse_sink import ClickHouseSink
from streams.events import DEAD_LETTER_TOPIC, TOPICS, Topic
from streams.ingest import BatchProcessor, Counting, InMessage
from streams.settings import Settings
from streams.totals import Totals

log = logging.getLogger(__name__)


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
        )
        source = app.topic(
            settings.kafka_topic(topic), value_serializer="raw", key_serializer="raw"
        )
        app.agent(source, name=f"consume_{topic}")(_agent_body(topic, processor, settings))


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
