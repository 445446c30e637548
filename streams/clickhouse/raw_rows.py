"""Map valid events to rows of the raw ClickHouse tables (pure functions).

``RAW_COLUMNS[topic]`` lists the insert columns of ``<topic>_raw`` in the order that
``raw_row`` returns values; the DDL is ``schemas/clickhouse/000N_<topic>_raw.sql``.
Optional strings absent from an event are stored as ``''``; absent timings (``load_ms``
and the Core Web Vitals ``lcp_ms``, ``inp_ms``, ``cls``, ``ttfb_ms``) as NULL: 0 is a real
CLS, so it cannot mean "not measured" (``0005_clicks_raw_web_vitals.sql``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.events.contract import Topic

COMMON_COLUMNS = (
    "event_id",
    "event_type",
    "event_time",
    "ts_ms",
    "user_id",
    "session_id",
    "channel",
    "region",
    "schema_version",
    "kafka_partition",
    "kafka_offset",
    "ingested_at",
)

RAW_TABLE: dict[Topic, str] = {
    "clicks": "clicks_raw",
    "carts": "carts_raw",
    "orders": "orders_raw",
    "tickets": "tickets_raw",
}

RAW_COLUMNS: dict[Topic, tuple[str, ...]] = {
    "clicks": (
        *COMMON_COLUMNS,
        "page_type",
        "item_id",
        "category",
        "traffic_source",
        "load_ms",
        "lcp_ms",
        "inp_ms",
        "cls",
        "ttfb_ms",
    ),
    "carts": (*COMMON_COLUMNS, "item_id", "category", "quantity", "price"),
    "orders": (
        *COMMON_COLUMNS,
        "order_id",
        "amount",
        "currency",
        "payment_method",
        "coupon_code",
        "failure_reason",
        "items.item_id",
        "items.category",
        "items.quantity",
        "items.price",
    ),
    "tickets": (*COMMON_COLUMNS, "ticket_id", "order_id", "kind", "reason"),
}

Row = tuple[Any, ...]


def _clicks(e: dict[str, Any]) -> Row:
    return (
        e["page_type"],
        e.get("item_id", ""),
        e.get("category", ""),
        e.get("traffic_source", ""),
        e.get("load_ms"),
        e.get("lcp_ms"),
        e.get("inp_ms"),
        e.get("cls"),
        e.get("ttfb_ms"),
    )


def _carts(e: dict[str, Any]) -> Row:
    return (e["item_id"], e["category"], e["quantity"], e["price"])


def _orders(e: dict[str, Any]) -> Row:
    items = e.get("items") or ()
    return (
        e["order_id"],
        e["amount"],
        e["currency"],
        e["payment_method"],
        e.get("coupon_code", ""),
        e.get("failure_reason", ""),
        [i["item_id"] for i in items],
        [i["category"] for i in items],
        [i["quantity"] for i in items],
        [i["price"] for i in items],
    )


def _tickets(e: dict[str, Any]) -> Row:
    return (e["ticket_id"], e.get("order_id", ""), e["kind"], e["reason"])


_TOPIC_PART: dict[Topic, Callable[[dict[str, Any]], Row]] = {
    "clicks": _clicks,
    "carts": _carts,
    "orders": _orders,
    "tickets": _tickets,
}


def raw_row(topic: Topic, event: dict[str, Any], partition: int, offset: int, now_s: int) -> Row:
    """The ``<topic>_raw`` row of one valid event, columns as in ``RAW_COLUMNS[topic]``."""
    ts = event["ts"]
    return (
        event["event_id"],
        event["event_type"],
        ts // 1000,
        ts,
        event["user_id"],
        event["session_id"],
        event["channel"],
        event["region"],
        event["schema_version"],
        partition,
        offset,
        now_s,
        *_TOPIC_PART[topic](event),
    )
