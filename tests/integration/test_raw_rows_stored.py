"""What the worker stores for an event: every column of ``SELECT *`` of the raw tables, on
the real ClickHouse 18.16, through the worker's own path (``raw_row`` → ``ClickHouseSink``).

The contract of any other way to send rows (issue 18 tried pre-serialised JSONEachRow and
dropped it: ``bench/insert_formats.py``, ``bench/RESULTS.md`` round 2c): NULL for absent
timings, ``''`` for absent strings, doubles to the last bit, amounts truncated to cents
(``Decimal(str(x))``, as clickhouse-driver does), and a value out of its column's range
refused and dead-lettered — never stored wrapped (``5_000_000_000`` in a ``UInt32`` would
read 705,032,704). Only the native protocol reaches 18.16 from the driver; chdb (the current
engine here) has no TCP server, so these rows are checked on 18.16 only;
``tests/unit/clickhouse/test_raw_rows_vitals.py`` checks the vitals on the current engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from clickhouse_driver import Client

from streams.clickhouse.client import make_client
from streams.clickhouse.migrations import apply_migrations, discover_migrations
from streams.clickhouse.raw_rows import RAW_COLUMNS, RAW_TABLE, raw_row
from streams.clickhouse.sink import ClickHouseSink
from streams.events.contract import Topic
from streams.metrics.totals import Totals
from streams.settings import Settings
from tests.integration.support import isolated_settings
from tests.unit.events_factory import DROP, make_event

pytestmark = pytest.mark.integration

NOW_S = 1_795_000_100
TS = 1_795_000_000_123
PARTITION = 3


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _common(event_id: str, event_type: str, offset: int) -> dict[str, Any]:
    """The common columns as stored for an event of ``tests.unit.events_factory``."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_time": _time(TS // 1000),
        "ts_ms": TS,
        "user_id": "u-1",
        "session_id": "s-1",
        "channel": "app",
        "region": "CN-GD",
        "schema_version": 1,
        "kafka_partition": PARTITION,
        "kafka_offset": offset,
        "ingested_at": _time(NOW_S),
    }


CLICK = {
    "page_type": "detail",
    "item_id": "i-1",
    "category": "apparel/shoes",
    "traffic_source": "search",
    "load_ms": 1800,
    "lcp_ms": None,
    "inp_ms": None,
    "cls": None,
    "ttfb_ms": None,
}
CART = {"item_id": "i-1", "category": "apparel/shoes", "quantity": 2, "price": Decimal("99.50")}
ORDER = {
    "order_id": "o-1",
    "amount": Decimal("199.00"),
    "currency": "CNY",
    "payment_method": "alipay",
    "coupon_code": "C10",
    "failure_reason": "",
    "items.item_id": ["i-1"],
    "items.category": ["apparel/shoes"],
    "items.quantity": [2],
    "items.price": [Decimal("99.50")],
}
TICKET = {"ticket_id": "t-1", "order_id": "o-1", "kind": "return", "reason": "size"}
STORED: dict[Topic, dict[str, Any]] = {
    "clicks": CLICK,
    "carts": CART,
    "orders": ORDER,
    "tickets": TICKET,
}

# (id, topic, event fields changed, stored columns changed from the topic's default)
CASES: list[tuple[str, Topic, dict[str, Any], dict[str, Any]]] = [
    ("page view as made", "clicks", {}, {}),
    (
        "all vitals measured",
        "clicks",
        {"lcp_ms": 2100, "inp_ms": 180, "cls": 0.1, "ttfb_ms": 95},
        {"lcp_ms": 2100, "inp_ms": 180, "cls": 0.1, "ttfb_ms": 95},
    ),
    ("CLS 0 is a value, not NULL", "clicks", {"cls": 0.0}, {"cls": 0.0}),
    ("CLS to the last bit", "clicks", {"cls": 1.781548656443236}, {"cls": 1.781548656443236}),
    ("tiny CLS", "clicks", {"cls": 3.933536230698396e-06}, {"cls": 3.933536230698396e-06}),
    (
        "absent optionals: '' and NULL",
        "clicks",
        {"event_type": "click", "item_id": DROP, "category": DROP, "traffic_source": DROP,
         "load_ms": DROP},
        {"event_type": "click", "item_id": "", "category": "", "traffic_source": "",
         "load_ms": None},
    ),
    (
        "quotes, backslash, tab, newline, unicode",
        "clicks",
        {"item_id": "a'b\"c\\d\te\nf Ω✓", "category": "家居"},
        {"item_id": "a'b\"c\\d\te\nf Ω✓", "category": "家居"},
    ),
    ("price 222.99", "carts", {"price": 222.99}, {"price": Decimal("222.99")}),
    ("price 0.1 + 0.2 is 0.30", "carts", {"price": 0.1 + 0.2}, {"price": Decimal("0.30")}),
    ("price 1.005 truncated to 1.00", "carts", {"price": 1.005}, {"price": Decimal("1.00")}),
    ("price as an integer", "carts", {"price": 100}, {"price": Decimal("100.00")}),
    (
        "order without items or coupon",
        "orders",
        {"items": DROP, "coupon_code": DROP, "event_type": "payment_failed",
         "failure_reason": "card_declined"},
        {"items.item_id": [], "items.category": [], "items.quantity": [], "items.price": [],
         "coupon_code": "", "event_type": "payment_failed", "failure_reason": "card_declined"},
    ),
    (
        "order with two items",
        "orders",
        {"amount": 1e-07, "items": [
            {"item_id": "i-1", "category": "a", "quantity": 1, "price": 0.5},
            {"item_id": "i-2", "category": "b", "quantity": 3, "price": 19.99},
        ]},
        {"amount": Decimal("0.00"), "items.item_id": ["i-1", "i-2"],
         "items.category": ["a", "b"], "items.quantity": [1, 3],
         "items.price": [Decimal("0.50"), Decimal("19.99")]},
    ),
    ("ticket as made", "tickets", {}, {}),
    ("ticket without an order", "tickets", {"order_id": DROP}, {"order_id": ""}),
]  # fmt: skip

# (id, topic, event fields changed): values the column cannot hold, to be refused
REFUSED: list[tuple[str, Topic, dict[str, Any]]] = [
    ("quantity beyond UInt32", "carts", {"quantity": 5_000_000_000}),
    ("load_ms beyond UInt32", "clicks", {"load_ms": 5_000_000_000}),
    ("item quantity beyond UInt32", "orders", {"items": [
        {"item_id": "i-1", "category": "a", "quantity": 2**32, "price": 1.0}]}),
    ("price beyond Decimal(18, 2)", "carts", {"price": 1e17}),
]  # fmt: skip


@pytest.fixture(scope="module")
def stored(stack_settings: Settings) -> Iterator[tuple[Client, str, dict[str, list[str]]]]:
    """Every case and every refused event inserted in one batch per topic through the sink;
    yields the client, the database and the event ids dead-lettered per topic."""
    settings = isolated_settings(stack_settings)
    database = settings.clickhouse_database
    client = make_client(settings, use_database=False)
    apply_migrations(lambda sql: client.execute(sql), database, discover_migrations())
    letters: dict[str, list[str]] = {}
    for topic in STORED:

        async def send(items: list[tuple[bytes | None, bytes]], topic: Topic = topic) -> None:
            for _, value in items:
                original = orjson.loads(orjson.loads(value)["original"])
                letters.setdefault(topic, []).append(original["event_id"])

        events = [
            make_event(topic, event_id=f"{topic}-{n}", ts=TS, **changes)
            for n, (_, case_topic, changes, _) in enumerate(CASES)
            if case_topic == topic
        ] + [
            make_event(topic, event_id=f"{topic}-refused-{n}", ts=TS, **changes)
            for n, (_, case_topic, changes) in enumerate(REFUSED)
            if case_topic == topic
        ]
        rows = [raw_row(topic, e, PARTITION, offset, NOW_S) for offset, e in enumerate(events)]
        sink = ClickHouseSink(settings, Totals(), send_dead_letters=send, source_topic=topic)
        try:
            asyncio.run(sink.insert(RAW_TABLE[topic], RAW_COLUMNS[topic], rows))
        finally:
            sink.close()
    yield client, database, letters
    client.execute(f"DROP DATABASE IF EXISTS {database}")
    client.disconnect()


@pytest.mark.parametrize("n", [pytest.param(n, id=case[0]) for n, case in enumerate(CASES)])
def test_every_column_is_stored_as_the_worker_built_it(
    stored: tuple[Client, str, dict[str, list[str]]], n: int
) -> None:
    client, database, _ = stored
    _, topic, _, expected = CASES[n]
    event_id = f"{topic}-{n}"
    offset = [c[1] for c in CASES[:n]].count(topic)
    event_type = make_event(topic)["event_type"]
    want = {**_common(event_id, event_type, offset), **STORED[topic], **expected}
    rows = client.execute(
        f"SELECT * FROM {database}.{RAW_TABLE[topic]} WHERE event_id = %(id)s", {"id": event_id}
    )
    assert len(rows) == 1
    got = dict(zip(RAW_COLUMNS[topic], rows[0], strict=True))
    assert got == want
    for column in ("cls", "price", "amount"):  # same type too: 0.0 is not None, 1 not 1.0
        if column in want:
            assert type(got[column]) is type(want[column])


@pytest.mark.parametrize("n", [pytest.param(n, id=case[0]) for n, case in enumerate(REFUSED)])
def test_a_value_out_of_range_is_refused_not_stored_wrapped(
    stored: tuple[Client, str, dict[str, list[str]]], n: int
) -> None:
    client, database, letters = stored
    topic = REFUSED[n][1]
    event_id = f"{topic}-refused-{n}"
    rows = client.execute(
        f"SELECT count() FROM {database}.{RAW_TABLE[topic]} WHERE event_id = %(id)s",
        {"id": event_id},
    )
    assert rows == [(0,)]
    assert event_id in letters[topic]
