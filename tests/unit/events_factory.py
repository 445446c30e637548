"""Valid example events per topic, for tests: ``make_event(topic, **overrides)``."""

from __future__ import annotations

from typing import Any

from streams.events.contract import Topic

NOW_MS = 1_795_000_000_000  # a fixed "now" (2026-11-19) so tests never depend on the clock

_BASE: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "e-1",
    "ts": NOW_MS - 1_000,
    "user_id": "u-1",
    "session_id": "s-1",
    "channel": "app",
    "region": "CN-GD",
}

_TOPIC: dict[Topic, dict[str, Any]] = {
    "clicks": {
        "event_type": "page_view",
        "page_type": "detail",
        "item_id": "i-1",
        "category": "apparel/shoes",
        "traffic_source": "search",
        "load_ms": 1800,
    },
    "carts": {
        "event_type": "add_to_cart",
        "item_id": "i-1",
        "category": "apparel/shoes",
        "quantity": 2,
        "price": 99.5,
    },
    "orders": {
        "event_type": "order_created",
        "order_id": "o-1",
        "amount": 199.0,
        "currency": "CNY",
        "payment_method": "alipay",
        "coupon_code": "C10",
        "items": [{"item_id": "i-1", "category": "apparel/shoes", "quantity": 2, "price": 99.5}],
    },
    "tickets": {
        "event_type": "ticket_opened",
        "ticket_id": "t-1",
        "order_id": "o-1",
        "kind": "return",
        "reason": "size",
    },
}


def make_event(topic: Topic, **overrides: Any) -> dict[str, Any]:
    event = {**_BASE, **_TOPIC[topic], **overrides}
    return {k: v for k, v in event.items() if v is not DROP}


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()  # pass as an override value to remove a field
