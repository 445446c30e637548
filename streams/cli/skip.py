"""``salewatch skip``: tell the workers to read past a record batch they cannot decode.

A worker that meets an unreadable batch (``streams.worker.unreadable``) stops reading that one
partition and logs the command to run, e.g.
``salewatch skip --topic clicks --partition 2 --offset 1234``. This command writes that
instruction to the control topic (``<prefix>salewatch_control``, one partition) and
returns; the worker holding the partition applies it within a few seconds (it logs
``skipped clicks[2] offsets 1234-1333``, writes a dead letter with reason
``skipped_unreadable_batch`` and reads on). Instructions stay in the topic, so a worker
that meets the batch again (after a restart or a rebalance) skips it too. Workers need not
be running: the next one to reach the batch applies it.

The instruction goes through Kafka, not through a commit of the group's offset: Kafka
refuses offset commits from outside a group that has members.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from streams.events.contract import TOPICS
from streams.kafka.producer import EventProducer, ProducerError, ensure_topics
from streams.settings import load_settings
from streams.worker.unreadable import CONTROL_TOPIC


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "skip", help="read past a record batch the workers cannot decode (they log the command)"
    )
    parser.add_argument("--topic", required=True, choices=TOPICS, help="the topic, no prefix")
    parser.add_argument("--partition", required=True, type=int)
    parser.add_argument(
        "--offset", required=True, type=int, help="the offset the worker's log line names"
    )
    parser.set_defaults(func=run)


def instruction(kafka_topic: str, partition: int, offset: int, now_ms: int) -> bytes:
    """The control record: which partition, at which unreadable offset."""
    return orjson.dumps(
        {"topic": kafka_topic, "partition": partition, "offset": offset, "requested_at": now_ms}
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.partition < 0 or args.offset < 0:
        print("salewatch skip: --partition and --offset must be >= 0", file=sys.stderr)
        return 2
    control = settings.kafka_topic(CONTROL_TOPIC)
    topic = settings.kafka_topic(args.topic)
    try:
        ensure_topics(settings.kafka_bootstrap, 1, [control])
        producer = EventProducer(settings.kafka_bootstrap, client_id="salewatch-skip")
        try:
            value = instruction(topic, args.partition, args.offset, int(time.time() * 1000))
            producer.send(control, f"{topic}/{args.partition}", value)
            producer.flush()
        finally:
            producer.close()
    except ProducerError as exc:
        print(f"salewatch skip: {exc}", file=sys.stderr)
        return 1
    print(
        f"salewatch skip: asked the workers to skip the unreadable batch of {topic}"
        f"[{args.partition}] at offset {args.offset}; the worker holding it logs"
        " 'skipped ...' and writes a dead letter (reason skipped_unreadable_batch)"
    )
    return 0
