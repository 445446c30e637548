"""Kafka messages from simulated events: one event per message, or SDK-style arrays.

EVENTS.md lets a message hold a JSON array of up to ``MAX_BATCH_EVENTS`` events of one
topic and key, the way browser and app SDKs flush what they buffered for a session. With
``max_events > 1`` the valid clicks of each session are buffered and sent as one array
when ``max_events`` are buffered or the oldest has waited ``max_wait_ms`` of simulated
time; everything else (carts, orders, tickets, invalid messages) goes out at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import orjson

from streams.events.contract import MAX_BATCH_EVENTS, Topic
from streams.simulation.model import SimEvent

SDK_FLUSH_MS = 5000


class Message(NamedTuple):
    """One Kafka message: ``value`` is the exact bytes, ``events`` how many it carries."""

    ts: int
    topic: Topic
    key: str
    value: bytes
    events: int


def to_messages(
    events: Iterable[SimEvent], max_events: int = 1, max_wait_ms: int = SDK_FLUSH_MS
) -> Iterator[Message]:
    """Serialise ``events`` into messages, batching each session's clicks if asked."""
    dumps = orjson.dumps
    if max_events <= 1:
        for ev in events:
            raw = ev.raw if ev.raw is not None else dumps(ev.event)
            yield Message(ev.ts, ev.topic, ev.key, raw, 1)
        return
    limit = min(max_events, MAX_BATCH_EVENTS)
    # session key -> (ts of its oldest buffered click, clicks); insertion order = age
    buffers: dict[str, tuple[int, list[SimEvent]]] = {}
    now = 0
    for ev in events:
        now = ev.ts
        while buffers:
            key = next(iter(buffers))
            first_ts, buffered = buffers[key]
            if ev.ts - first_ts < max_wait_ms:
                break
            del buffers[key]
            yield _array(ev.ts, key, buffered)
        if ev.topic != "clicks" or ev.raw is not None:
            raw = ev.raw if ev.raw is not None else dumps(ev.event)
            yield Message(ev.ts, ev.topic, ev.key, raw, 1)
            continue
        entry = buffers.get(ev.key)
        if entry is None:
            buffers[ev.key] = (ev.ts, [ev])
            continue
        entry[1].append(ev)
        if len(entry[1]) >= limit:
            del buffers[ev.key]
            yield _array(ev.ts, ev.key, entry[1])
    for key, (_, buffered) in buffers.items():
        yield _array(now, key, buffered)


def _array(ts: int, key: str, buffered: list[SimEvent]) -> Message:
    return Message(ts, "clicks", key, orjson.dumps([e.event for e in buffered]), len(buffered))
