"""A small kafka-python producer for salewatch topics: create them, send, flush, report.

Contract:

* ``ensure_topics`` creates the four event topics and ``dead_letters`` with
  ``settings.topic_partitions`` partitions when missing (existing topics are left alone,
  whatever their partition count);
* ``EventProducer.send`` takes ready bytes and a string key (``KEY_FIELD`` of the topic),
  batches them (``linger_ms``/``batch_size``, compressed with ``compression``:
  ``SALEWATCH_KAFKA_COMPRESSION``, default lz4) and counts delivery failures
  instead of raising per message; ``flush`` waits at most ``timeout_s`` and then raises
  ``ProducerError`` if anything was not delivered;
* every failure to reach the broker is a ``BrokerUnavailable`` within ``connect_timeout_s``,
  whose one-line message names the address and ``SALEWATCH_KAFKA_BOOTSTRAP``.

kafka-python's producer is pure Python: about 10–15k messages/s on one core here, whatever
the batch settings. Array messages (``salewatch simulate --batch N``) carry more events per
message when more is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from streams.events.contract import DEAD_LETTER_TOPIC, TOPICS
from streams.settings import ENV_PREFIX

ALL_TOPICS: tuple[str, ...] = (*TOPICS, DEAD_LETTER_TOPIC)
BOOTSTRAP_ENV = ENV_PREFIX + "KAFKA_BOOTSTRAP"
DEFAULT_LINGER_MS = 20
DEFAULT_BATCH_BYTES = 256 * 1024


class ProducerError(Exception):
    """Producing failed; the message is one line meant for the user."""


class BrokerUnavailable(ProducerError):
    """The Kafka bootstrap servers cannot be reached."""

    def __init__(self, bootstrap: str, cause: object) -> None:
        super().__init__(
            f"cannot reach Kafka at {bootstrap} ({cause}); is the broker running "
            f"(`salewatch stack up`), and is {BOOTSTRAP_ENV} right?"
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def ensure_topics(
    bootstrap: str,
    partitions: int,
    topics: Iterable[str] = ALL_TOPICS,
    connect_timeout_s: float = 10.0,
) -> list[str]:
    """Create the missing ``topics`` with ``partitions`` partitions; return those created."""
    timeout_ms = int(connect_timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="salewatch-simulate-admin",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(bootstrap, _one_line(exc)) from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            # another producer or worker may have created some of them meanwhile
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(t, partitions, 1) for t in missing], timeout_ms=timeout_ms
                )
        return missing
    except KafkaTimeoutError as exc:
        raise BrokerUnavailable(bootstrap, _one_line(exc)) from exc
    except KafkaError as exc:
        raise ProducerError(f"creating topics on {bootstrap} failed: {_one_line(exc)}") from exc
    finally:
        admin.close()


class EventProducer:
    """A batched kafka-python producer of ready message bytes with string keys."""

    def __init__(
        self,
        bootstrap: str,
        *,
        linger_ms: int = DEFAULT_LINGER_MS,
        batch_size: int = DEFAULT_BATCH_BYTES,
        connect_timeout_s: float = 10.0,
        client_id: str = "salewatch-simulate",
        compression: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.sent = 0
        self.failed = 0
        self.first_error: str | None = None
        timeout_ms = int(connect_timeout_s * 1000)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                linger_ms=linger_ms,
                batch_size=batch_size,
                compression_type=compression,
                # idempotence (needs acks=all): a retried batch is not written twice, so
                # topic counts equal what was sent, which the tests and drills rely on
                acks="all",
                enable_idempotence=True,
                bootstrap_timeout_ms=timeout_ms,
                max_block_ms=timeout_ms,
                request_timeout_ms=max(timeout_ms, 5000),
                delivery_timeout_ms=max(2 * timeout_ms, 30_000),
                metrics_enabled=False,
            )
        except KafkaError as exc:
            raise BrokerUnavailable(bootstrap, _one_line(exc)) from exc

    def send(self, topic: str, key: str, value: bytes) -> None:
        """Queue one message; raises ``ProducerError`` only if the producer cannot queue."""
        try:
            future = self._producer.send(topic, value=value, key=key.encode())
        except KafkaTimeoutError as exc:
            raise BrokerUnavailable(self.bootstrap, _one_line(exc)) from exc
        except KafkaError as exc:
            raise ProducerError(f"sending to {topic} failed: {_one_line(exc)}") from exc
        future.add_errback(self._on_error)
        self.sent += 1

    def _on_error(self, exc: Any) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = _one_line(exc)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued is delivered; raise if not all of it was."""
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError as exc:
            raise ProducerError(
                f"Kafka at {self.bootstrap} did not take the queued messages within"
                f" {timeout_s:g}s ({_one_line(exc)})"
            ) from exc
        if self.failed:
            raise ProducerError(
                f"{self.failed} of {self.sent} messages were not delivered to {self.bootstrap}:"
                f" {self.first_error}"
            )

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.close(timeout=timeout_s)
