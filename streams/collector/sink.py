"""Where the collector's events go: a Kafka topic, through aiokafka.

Contract: ``send(key, value)`` hands one message to the producer and returns once it is
queued (not delivered); a delivery failure is reported to ``on_error`` (counted, logged),
never raised into the request path. ``stop()`` waits for everything queued to be delivered
(or to fail). ``start()`` creates the topic when missing, with the configured partition
count (the same the worker and ``salewatch simulate`` use), and raises ``SinkUnavailable``
with one line naming the address when the broker cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka.producer import ProducerError, ensure_topics

log = logging.getLogger(__name__)


class EventSink(Protocol):
    async def send(self, key: str, value: bytes) -> None: ...


class SinkUnavailable(Exception):
    """The Kafka broker cannot be reached; the message is one line for the user."""


class KafkaSink:
    """An aiokafka producer to one topic: acks from all replicas, small linger."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        on_error: Callable[[BaseException], None],
        connect_timeout_s: float = 10.0,
        compression: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.compression = compression
        self.topic = topic
        self.partitions = partitions
        self.connect_timeout_s = connect_timeout_s
        self._on_error = on_error
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        try:
            await asyncio.to_thread(
                ensure_topics, self.bootstrap, self.partitions, [self.topic], self.connect_timeout_s
            )
        except ProducerError as exc:
            raise SinkUnavailable(str(exc)) from exc
        # created here: aiokafka binds the producer to the running loop
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="salewatch-collector",
            acks="all",
            linger_ms=20,
            compression_type=self.compression,
            request_timeout_ms=int(max(self.connect_timeout_s, 5.0) * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self.connect_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            await producer.stop()
            raise SinkUnavailable(
                f"cannot reach Kafka at {self.bootstrap} ({exc or type(exc).__name__})"
            ) from exc
        self._producer = producer

    async def send(self, key: str, value: bytes) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaSink.send before start")
        try:
            delivery = await self._producer.send(self.topic, value=value, key=key.encode())
        except KafkaError as exc:
            self._on_error(exc)
            return
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future[object]) -> None:
        exc = None if delivery.cancelled() else delivery.exception()
        if delivery.cancelled() or exc is not None:
            self._on_error(exc or asyncio.CancelledError())

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
