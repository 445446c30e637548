"""streams.worker.handover.HandoverLog on the real broker: written records are read back to
the topic's end, the newest per partition of the reader's group; a missing topic reads as
no handover, at once. (Its use by two workers in a ClickHouse outage:
``tests/faults/test_clickhouse_down.py``.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition

from streams.kafka.producer import ensure_topics
from streams.settings import Settings
from streams.worker.handover import HANDOVER_READ_S, HANDOVER_TOPIC, Handover, HandoverLog
from tests.integration.support import isolated_settings

pytestmark = pytest.mark.integration


def test_handovers_written_are_read_back_to_the_end(stack_settings: Settings) -> None:
    settings = isolated_settings(stack_settings)
    topic = settings.kafka_topic(HANDOVER_TOPIC)
    ensure_topics(settings.kafka_bootstrap, 1, [topic])
    clicks = [TopicPartition(settings.kafka_topic("clicks"), p) for p in range(3)]
    mine = HandoverLog(settings.kafka_bootstrap, topic, settings.app_id)
    other_group = HandoverLog(settings.kafka_bootstrap, topic, "another-app")

    async def scenario() -> tuple[dict[TopicPartition, Handover], ...]:
        empty = await mine.read()
        await mine.write({clicks[0]: Handover(10, "a"), clicks[1]: Handover(5, "b")})
        await other_group.write({clicks[0]: Handover(99, "z")})
        # the last record decides: tansu's end offset is right only for single-record batches
        await mine.write({clicks[0]: Handover(20, "c")})
        return empty, await mine.read(), await other_group.read()

    empty, latest, others = asyncio.run(scenario())
    assert empty == {}
    assert latest == {clicks[0]: Handover(20, "c"), clicks[1]: Handover(5, "b")}
    assert others == {clicks[0]: Handover(99, "z")}


def test_a_missing_handover_topic_reads_as_none_at_once(stack_settings: Settings) -> None:
    settings = isolated_settings(stack_settings)
    log = HandoverLog(
        settings.kafka_bootstrap, settings.kafka_topic(HANDOVER_TOPIC), settings.app_id
    )
    started = time.monotonic()
    assert asyncio.run(log.read()) == {}
    assert time.monotonic() - started < HANDOVER_READ_S
