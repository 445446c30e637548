"""Prototype (bench only): the worker's chain fed by batches instead of Faust streams.

The profile of ``salewatch worker`` shows Faust's per-message machinery (fetch loop,
conductor, stream iterator, take buffer, per-event acks) costing several times the whole
salewatch chain. This prototype keeps everything of the worker except that path: the
same Faust app (``streams.app.create_app``), window timer (``add_window_timer``), counting
pipeline, ``BatchProcessor`` chains and ClickHouse sinks, but the source topics are read
by one aiokafka consumer inside the app (an ``app.task``) with ``getmany`` and explicit
commits after ``handle`` returned, i.e. after ClickHouse accepted the rows (the same
at-least-once contract as the agents). Topics of one poll are handled concurrently.

Co-partitioning of ``orders_by_session``: the consumer subscribes to all source topics
and ``orders_by_session`` (all with the same partition count) with aiokafka's default
range assignor, which gives partition p of every topic to the same member.

Not ported (so this is a measurement, not a replacement): the rebuild of the counting
state at assignment (``streams.recovery``), and the group's rebalance handling beyond
committing what was handled.

    python -m bench.batch_worker [--uvloop]   (SALEWATCH_* settings as for the worker)
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson


def main() -> int:
    if "--uvloop" in sys.argv[1:]:
        import mode.loop

        mode.loop.use("uvloop")
    import faust
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

    from streams.app import CountLocally, add_window_timer, create_app
    from streams.clickhouse_client import quiet_driver_logging
    from streams.clickhouse_sink import ClickHouseSink
    from streams.clock import make_clock
    from streams.counting.pipeline import Pipeline
    from streams.events import DEAD_LETTER_TOPIC, ORDERS_BY_SESSION_TOPIC, TOPICS, Topic
    from streams.exporter import serve_metrics
    from streams.ingest import BatchProcessor, InMessage
    from streams.settings import load_settings
    from streams.totals import Totals

    settings = load_settings()
    quiet_driver_logging()
    totals = Totals()
    serve_metrics(totals, settings.metrics_host, settings.metrics_port)
    app = create_app(settings)
    worker_name = f"{socket.gethostname()}:{settings.metrics_port}"
    pipeline = Pipeline.from_settings(settings, totals, sessions=None, worker=worker_name)
    window_clock = make_clock(settings.window_clock)
    add_window_timer(app, settings, totals, pipeline, window_clock)
    count_locally = CountLocally(pipeline, window_clock)

    Handle = Callable[[Topic, Sequence[InMessage]], Awaitable[Any]]

    class Ready(ConsumerRebalanceListener):  # type: ignore[misc]
        said = False

        async def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        async def on_partitions_assigned(self, assigned: Any) -> None:
            if not self.said:
                print("[bench batch Worker]: Ready", flush=True)
                self.said = True

    @app.task  # type: ignore[untyped-decorator]
    async def consume() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
        await producer.start()

        async def send(topic_name: str, items: list[tuple[bytes | None, bytes]]) -> None:
            futures = [await producer.send(topic_name, value, key=key) for key, value in items]
            await asyncio.gather(*futures)

        async def send_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
            await send(settings.kafka_topic(DEAD_LETTER_TOPIC), items)

        async def forward_by_session(topic: Topic, events: list[dict[str, Any]]) -> None:
            items = [(e["session_id"].encode(), orjson.dumps(e)) for e in events]
            await send(settings.kafka_topic(ORDERS_BY_SESSION_TOPIC), items)

        async def count_orders(topic: Topic, messages: Sequence[InMessage]) -> None:
            await count_locally("orders", [orjson.loads(m.value) for m in messages])

        handlers: dict[str, tuple[Topic, Handle]] = {}
        for topic in TOPICS:
            processor = BatchProcessor(
                settings,
                totals,
                ClickHouseSink(settings, totals, name=f"salewatch-batch-{topic}"),
                send_dead_letters,
                count=forward_by_session if topic == "orders" else count_locally,
            )
            handlers[settings.kafka_topic(topic)] = (topic, processor.handle)
        handlers[settings.kafka_topic(ORDERS_BY_SESSION_TOPIC)] = ("orders", count_orders)

        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.app_id}-batch",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            rebalance_timeout_ms=6000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        consumer.subscribe(list(handlers), listener=Ready())
        await consumer.start()
        within_ms = int(settings.batch_within_s * 1000)
        max_records = 4 * settings.batch_size
        try:
            while True:
                polled = await consumer.getmany(timeout_ms=within_ms, max_records=max_records)
                if not polled:
                    continue
                by_topic: dict[str, list[InMessage]] = defaultdict(list)
                for tp, records in polled.items():
                    by_topic[tp.topic].extend(
                        InMessage(r.value, r.key, r.partition, r.offset) for r in records
                    )
                await asyncio.gather(
                    *(handlers[name][1](handlers[name][0], ms) for name, ms in by_topic.items())
                )
                await consumer.commit(
                    {tp: records[-1].offset + 1 for tp, records in polled.items()}
                )
        finally:
            await consumer.stop()
            await producer.stop()

    faust.Worker(app, loglevel="info").execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
