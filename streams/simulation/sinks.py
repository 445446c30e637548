"""Where ``salewatch simulate`` writes events: a JSON-lines file (``--out``) or Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import orjson

from streams.events.contract import TOPICS
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.simulation import SimEvent, to_messages


class FileSink:
    """JSON lines: each event with its ``topic`` first; invalid ones as ``{topic, raw}``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.messages = 0

    def write(self, events: Iterator[SimEvent]) -> None:
        write, dumps = self.stream.write, orjson.dumps
        prefixes = {t: b'{"topic":"%s",' % t.encode() for t in TOPICS}
        for ev in events:
            if ev.raw is None:
                write(prefixes[ev.topic] + dumps(ev.event)[1:] + b"\n")
            else:
                text = ev.raw.decode("utf-8", "replace")
                write(dumps({"topic": ev.topic, "raw": text}) + b"\n")
            self.messages += 1


class KafkaSink:
    """Sends events (or SDK-style arrays of clicks) with ``EventProducer`` to the Kafka
    topics the worker of the same settings reads (``SALEWATCH_TOPIC_PREFIX``)."""

    def __init__(self, producer: EventProducer, batch: int, settings: Settings) -> None:
        self.producer = producer
        self.batch = batch
        self.topic_names = {t: settings.kafka_topic(t) for t in TOPICS}
        self.messages = 0

    def write(self, events: Iterator[SimEvent]) -> None:
        send, names = self.producer.send, self.topic_names
        for msg in to_messages(events, self.batch):
            send(names[msg.topic], msg.key, msg.value)
            self.messages += 1
