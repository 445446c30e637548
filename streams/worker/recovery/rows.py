"""Stored rows back into state (pure): replayed events, restored sessions, merged in time."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from streams.counting.funnel import Session
from streams.events.contract import TOPICS, Topic
from streams.metrics import labels as lv
from streams.worker.recovery.sql import CHANNEL_NAMES


def replay_event(topic: Topic, row: Sequence[Any]) -> dict[str, Any]:
    """A stored row of :data:`REPLAY_COLUMNS` as an event the classifier counts the same way
    as the original (absent optional strings are stored as ``''``, which also counts as
    ``other``; only an order's first item category is kept, the only one counted)."""
    if topic == "clicks":
        event_id, event_type, ts, user_id, session_id, channel, page_type, source, load = row
        return {
            "event_id": event_id,
            "event_type": event_type,
            "ts": int(ts),
            "user_id": user_id,
            "session_id": session_id,
            "channel": channel,
            "page_type": page_type,
            "traffic_source": source,
            "load_ms": None if load is None else int(load),
        }
    if topic == "carts":
        event_id, event_type, ts, session_id, channel = row
        return {
            "event_id": event_id,
            "event_type": event_type,
            "ts": int(ts),
            "session_id": session_id,
            "channel": channel,
        }
    if topic == "orders":
        (event_id, event_type, ts, session_id, channel, region, order_id, amount, method,
         coupon, reason, n_items, category) = row  # fmt: skip
        event = {
            "event_id": event_id,
            "event_type": event_type,
            "ts": int(ts),
            "session_id": session_id,
            "channel": channel,
            "region": region,
            "order_id": order_id,
            "amount": amount,
            "payment_method": method,
            "coupon_code": coupon,
            "failure_reason": reason,
        }
        if int(n_items):
            event["items"] = [{"category": category}]
        return event
    event_id, event_type, ts, ticket_id, kind, reason = row
    return {
        "event_id": event_id,
        "event_type": event_type,
        "ts": int(ts),
        "ticket_id": ticket_id,
        "kind": kind,
        "reason": reason,
    }


def session_from_row(row: Sequence[Any]) -> tuple[str, Session]:
    """A row of :func:`sessions_sql` as ``(session_id, Session)``."""
    session_id, first_seen, last_seen, step, channel, _ = row
    return session_id, Session(
        int(step), CHANNEL_NAMES.get(int(channel), lv.OTHER), int(first_seen), int(last_seen)
    )


def merge_by_time(
    streams: Mapping[Topic, Iterable[tuple[int, Mapping[str, Any]]]],
) -> Iterator[tuple[Topic, int, Mapping[str, Any]]]:
    """``(topic, partition, event)`` of several time-sorted streams of ``(partition, event)``,
    in event-time order (ties: in ``TOPICS`` order, so clicks before carts before orders),
    lazily: it holds one event of each stream at a time."""

    def tagged(rank: int, topic: Topic) -> Iterator[tuple[int, int, Topic, int, Mapping[str, Any]]]:
        return ((event["ts"], rank, topic, p, event) for p, event in streams[topic])

    lists = [tagged(rank, topic) for rank, topic in enumerate(TOPICS) if topic in streams]
    for _ts, _rank, topic, partition, event in heapq.merge(
        *lists, key=lambda item: (item[0], item[1])
    ):
        yield topic, partition, event
