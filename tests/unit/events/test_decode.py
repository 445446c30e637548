"""Validation of Kafka message values: one row per kind of bad input (EVENTS.md, 'Bad events')."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.events.contract import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, TOPICS, Topic
from streams.events.decode import REJECT_REASONS, Limits, decode_message, valid_events
from tests.unit.events_factory import DROP, NOW_MS, make_event

LIMITS = Limits(max_future_ms=24 * 3600 * 1000, max_age_ms=30 * 24 * 3600 * 1000)


# a Kafka record with a null value (a tombstone), as the clients hand it over: None
TOMBSTONE = object()


def decode(topic: Topic, value: Any) -> tuple[int, list[str]]:
    raw = None if value is TOMBSTONE else value if isinstance(value, bytes) else orjson.dumps(value)
    decoded = decode_message(raw, topic, NOW_MS, LIMITS)
    return len(decoded.events), [r.reason for r in decoded.rejected]


@pytest.mark.parametrize("topic", TOPICS)
def test_valid_event_of_every_topic_is_accepted(topic: Topic) -> None:
    assert decode(topic, make_event(topic)) == (1, [])


BAD_MESSAGES: list[tuple[str, Topic, Any, str]] = [
    ("truncated json", "orders", b'{"event_id": "e-1", "ts": 17', "malformed_json"),
    ("binary garbage", "orders", bytes(range(256)), "malformed_json"),
    ("null value (tombstone)", "orders", TOMBSTONE, "null_value"),
    ("null value on clicks", "clicks", TOMBSTONE, "null_value"),
    ("empty value", "orders", b"", "empty_value"),
    ("empty value on tickets", "tickets", b"", "empty_value"),
    ("one space", "orders", b" ", "malformed_json"),
    ("NaN literal", "orders", b'{"amount": NaN}', "malformed_json"),
    ("Infinity literal", "orders", b'{"amount": Infinity}', "malformed_json"),
    ("json string", "orders", b'"hello"', "not_an_object"),
    ("json number", "orders", b"42", "not_an_object"),
    ("json null", "orders", b"null", "not_an_object"),
    ("empty array", "orders", b"[]", "empty_batch"),
    ("array too long", "clicks", [make_event("clicks")] * (MAX_BATCH_EVENTS + 1), "batch_too_long"),
    ("huge blob", "orders", b'{"x": "' + b"a" * (10 * 1024 * 1024) + b'"}', "too_large"),
    ("event over 64 KiB", "orders", make_event("orders", pad="a" * MAX_EVENT_BYTES), "too_large"),
    ("missing event_id", "orders", make_event("orders", event_id=DROP), "missing_field"),
    ("missing ts", "clicks", make_event("clicks", ts=DROP), "missing_field"),
    ("missing amount", "orders", make_event("orders", amount=DROP), "missing_field"),
    ("missing page_type", "clicks", make_event("clicks", page_type=DROP), "missing_field"),
    ("null required", "orders", make_event("orders", order_id=None), "wrong_type"),
    ("null optional", "orders", make_event("orders", coupon_code=None), "wrong_type"),
    ("ts as string", "orders", make_event("orders", ts=str(NOW_MS)), "wrong_type"),
    ("ts as float", "orders", make_event("orders", ts=NOW_MS + 0.5), "wrong_type"),
    ("amount as string", "orders", make_event("orders", amount="12.50"), "wrong_type"),
    ("bool as number", "orders", make_event("orders", amount=True), "wrong_type"),
    ("user_id as number", "clicks", make_event("clicks", user_id=42), "wrong_type"),
    ("items not a list", "orders", make_event("orders", items={"a": 1}), "wrong_type"),
    ("item not an object", "orders", make_event("orders", items=[1]), "wrong_type"),
    (
        "item quantity 0",
        "orders",
        make_event("orders", items=[{"item_id": "i", "category": "c", "quantity": 0, "price": 1}]),
        "out_of_range",
    ),
    ("negative amount", "orders", make_event("orders", amount=-1), "out_of_range"),
    ("negative load_ms", "clicks", make_event("clicks", load_ms=-5), "out_of_range"),
    ("cart quantity 0", "carts", make_event("carts", quantity=0), "out_of_range"),
    ("schema_version 2", "orders", make_event("orders", schema_version=2), "out_of_range"),
    ("event_id 65 chars", "orders", make_event("orders", event_id="e" * 65), "too_long"),
    ("currency 4 chars", "orders", make_event("orders", currency="CNYY"), "too_long"),
    (
        "unknown event_type",
        "orders",
        make_event("orders", event_type="order_teleported"),
        "unknown_event_type",
    ),
    (
        "event_type of another topic",
        "orders",
        make_event("orders", event_type="page_view"),
        "unknown_event_type",
    ),
    ("ts in 2100", "orders", make_event("orders", ts=4_102_444_800_000), "ts_in_future"),
    ("ts 25 h ahead", "orders", make_event("orders", ts=NOW_MS + 25 * 3600 * 1000), "ts_in_future"),
    ("ts in 1970", "orders", make_event("orders", ts=0), "ts_too_old"),
    (
        "ts 31 days old",
        "orders",
        make_event("orders", ts=NOW_MS - 31 * 24 * 3600 * 1000),
        "ts_too_old",
    ),
]


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [pytest.param(t, v, r, id=name) for name, t, v, r in BAD_MESSAGES],
)
def test_bad_message_is_rejected_with_reason(topic: Topic, value: Any, reason: str) -> None:
    assert reason in REJECT_REASONS
    assert decode(topic, value) == (0, [reason])


ACCEPTED_EDGES: list[tuple[str, Topic, dict[str, Any]]] = [
    ("unknown channel counts later as other", "clicks", make_event("clicks", channel="tv")),
    ("unknown region", "orders", make_event("orders", region="XX-YY")),
    ("unicode ids", "orders", make_event("orders", order_id="订单-🛒", user_id="用户")),
    ("extra field", "orders", make_event("orders", campaign="d11")),
    (
        "optional fields absent",
        "clicks",
        make_event("clicks", item_id=DROP, category=DROP, traffic_source=DROP, load_ms=DROP),
    ),
    ("ts 23 h ahead", "orders", make_event("orders", ts=NOW_MS + 23 * 3600 * 1000)),
    ("integer amount", "orders", make_event("orders", amount=100)),
    ("zero amount", "orders", make_event("orders", amount=0)),
]


@pytest.mark.parametrize(
    ("topic", "event"), [pytest.param(t, e, id=name) for name, t, e in ACCEPTED_EDGES]
)
def test_edge_values_are_accepted(topic: Topic, event: dict[str, Any]) -> None:
    assert decode(topic, event) == (1, [])


def test_array_message_validates_each_event_on_its_own() -> None:
    good = [make_event("clicks", event_id=f"e-{i}") for i in range(5)]
    bad = make_event("clicks", load_ms="slow")
    decoded = decode_message(orjson.dumps([*good[:2], bad, *good[2:]]), "clicks", NOW_MS, LIMITS)
    assert [e["event_id"] for e in decoded.events] == [f"e-{i}" for i in range(5)]
    assert [r.reason for r in decoded.rejected] == ["wrong_type"]
    assert orjson.loads(decoded.rejected[0].original) == bad


def test_oversized_event_inside_array_is_rejected_alone() -> None:
    big = make_event("clicks", event_id="big", pad="x" * MAX_EVENT_BYTES)
    decoded = decode_message(orjson.dumps([make_event("clicks"), big]), "clicks", NOW_MS, LIMITS)
    assert len(decoded.events) == 1
    assert [r.reason for r in decoded.rejected] == ["too_large"]


def test_tombstone_is_rejected_with_empty_original_and_no_fast_path() -> None:
    decoded = decode_message(None, "clicks", NOW_MS, LIMITS)
    assert decoded.rejected[0].original == b""
    assert valid_events(None, "clicks", NOW_MS, LIMITS) is None
    assert valid_events(b"", "clicks", NOW_MS, LIMITS) is None


def test_rejected_message_keeps_original_bytes() -> None:
    raw = b'{"event_id": 1'
    decoded = decode_message(raw, "orders", NOW_MS, LIMITS)
    assert decoded.rejected[0].original == raw
