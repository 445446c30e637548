"""Rollup rows of a closed window, for the ClickHouse ``*_1m`` tables (migrations 0010+).

One row per window × partition × dimension set with at least one event; no row for a zero.
The tables are ``ReplacingMergeTree(version)`` ordered by (window_start, dimensions,
worker): inserting a window again (re-emitted after a replay) replaces its rows at merge
time instead of adding to them, so readers use ``FINAL`` (or ``argMax(x, version)``).
The ``worker`` column names the row's *emitter*, the Kafka partition whose events it counts
(:func:`emitter`, ``p3``), not the process: sum over it for totals. A window of a partition
emitted again by any worker replaces its rows. ``version`` is the emit clock in ms, so the
newest emission wins.

Row values are ClickHouse-ready for ``clickhouse_driver``: ``window_start`` as epoch
seconds (an ``int`` a ``DateTime`` column takes as is), amounts as ``Decimal`` with two
places (exact sums of cents), histograms as a list of counts.

The column names and order of every table are :data:`ROLLUP_COLUMNS`; each row's dict has
exactly those keys; :func:`insert_batches` groups rows into one value-tuple batch per table
for ``INSERT INTO db.{table} ({columns}) VALUES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import NamedTuple

from streams.counting.tally import (
    CENTS,
    EVENTS,
    LOAD_MS_SUM,
    PAGE_LOAD_BUCKETS,
    WITH_COUPON,
    Tally,
)

Value = int | str | Decimal | list[int]

ROLLUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "traffic_1m": (
        "window_start",
        "worker",
        "channel",
        "traffic_source",
        "page_views",
        "visits",
        "active_users",
        "version",
    ),
    "funnel_1m": ("window_start", "worker", "channel", "step", "sessions", "version"),
    "cart_events_1m": ("window_start", "worker", "channel", "event_type", "events", "version"),
    "orders_1m": (
        "window_start",
        "worker",
        "channel",
        "event_type",
        "payment_method",
        "region",
        "orders",
        "amount",
        "coupon_orders",
        "version",
    ),
    "payment_failures_1m": (
        "window_start",
        "worker",
        "payment_method",
        "region",
        "failure_reason",
        "failures",
        "version",
    ),
    "category_sales_1m": (
        "window_start",
        "worker",
        "channel",
        "category",
        "orders",
        "gmv",
        "paid_orders",
        "paid_amount",
        "version",
    ),
    "page_load_1m": (
        "window_start",
        "worker",
        "page_type",
        "channel",
        "page_views",
        "measured_views",
        "load_ms_sum",
        "load_ms_buckets",
        "version",
    ),
    "tickets_1m": ("window_start", "worker", "event_type", "kind", "reason", "tickets", "version"),
}
ROLLUP_TABLES = tuple(ROLLUP_COLUMNS)


class RollupRow(NamedTuple):
    """One row for ClickHouse table ``table``; ``row`` has its :data:`ROLLUP_COLUMNS`."""

    table: str
    row: dict[str, Value]


class InsertBatch(NamedTuple):
    """Rows of one table as value tuples in :data:`ROLLUP_COLUMNS` order, for one INSERT."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Value, ...]]


def insert_batches(rows: list[RollupRow]) -> list[InsertBatch]:
    """Group rows by table, one batch per table that has rows, in ``ROLLUP_TABLES`` order.

    What a sink needs: ``insert(batch.table, batch.columns, batch.rows)``.
    """
    by_table: dict[str, list[tuple[Value, ...]]] = {}
    for table, row in rows:
        by_table.setdefault(table, []).append(tuple(row[c] for c in ROLLUP_COLUMNS[table]))
    return [
        InsertBatch(table, ROLLUP_COLUMNS[table], by_table[table])
        for table in ROLLUP_TABLES
        if table in by_table
    ]


def emitter(partition: int) -> str:
    """The ``worker`` column of a Kafka partition's rollup rows (``p3``).

    Rows are keyed by partition, not by process: whichever worker emits a window of a
    partition again (a restart, a takeover, a re-emission after a crash between the rows
    and their mark) replaces the rows of that window and partition.
    """
    return f"p{partition}"


def money(cents: int) -> Decimal:
    """Cents as a two-place ``Decimal`` (``Decimal(18, 2)`` columns)."""
    return Decimal(cents).scaleb(-2)


def rollup_rows(tally: Tally, start_ms: int, worker: str, version: int) -> list[RollupRow]:
    """Every rollup row of the window starting at ``start_ms``, sorted by table and key."""
    rows = []
    for table, values in _table_values(tally):
        columns = ROLLUP_COLUMNS[table]
        for dims, measures in sorted(values, key=_dims):
            row = (start_ms // 1000, worker, *dims, *measures, version)
            rows.append(RollupRow(table, dict(zip(columns, row, strict=True))))
    return rows


def _table_values(
    t: Tally,
) -> Iterator[tuple[str, list[tuple[tuple[str, ...], tuple[Value, ...]]]]]:
    traffic: dict[tuple[str, str], list[int]] = {}
    per_page_type: dict[tuple[str, str], int] = {}
    for (channel, source, page_type), n in t.page_views.items():
        traffic.setdefault((channel, source), [0, 0, 0])[0] += n
        key = (page_type, channel)
        per_page_type[key] = per_page_type.get(key, 0) + n
    for key, n in t.visits.items():
        traffic.setdefault(key, [0, 0, 0])[1] += n
    for key, users in t.users.items():
        traffic.setdefault(key, [0, 0, 0])[2] = len(users)
    yield "traffic_1m", [(k, tuple(v)) for k, v in traffic.items()]

    yield "funnel_1m", [((channel, step), (n,)) for (step, channel), n in t.funnel.items()]

    yield "cart_events_1m", [((ch, et), (n,)) for (et, ch), n in t.carts.items()]

    yield (
        "orders_1m",
        [
            ((ch, et, method, region), (v[EVENTS], money(v[CENTS]), v[WITH_COUPON]))
            for (et, ch, method, region), v in t.orders.items()
        ],
    )

    yield "payment_failures_1m", [(k, (n,)) for k, n in t.failures.items()]

    categories: dict[tuple[str, str], list[int]] = {}
    for (event_type, channel, category), v in t.amounts.items():
        if event_type == "order_created":
            offset = 0
        elif event_type == "payment_succeeded":
            offset = 2
        else:
            continue
        sums = categories.setdefault((channel, category), [0, 0, 0, 0])
        sums[offset] += v[EVENTS]
        sums[offset + 1] += v[CENTS]
    yield (
        "category_sales_1m",
        [
            (k, (orders, money(gmv), paid, money(paid_cents)))
            for k, (orders, gmv, paid, paid_cents) in categories.items()
        ],
    )

    loads: list[tuple[tuple[str, ...], tuple[Value, ...]]] = []
    for key, views in per_page_type.items():  # every load comes with a page view
        slots = t.page_loads.get(key) or [0] * (PAGE_LOAD_BUCKETS + 1)
        buckets = slots[:PAGE_LOAD_BUCKETS]
        loads.append((key, (views, sum(buckets), slots[LOAD_MS_SUM], buckets)))
    yield "page_load_1m", loads

    yield "tickets_1m", [(k, (n,)) for k, n in t.tickets.items()]


def _dims(item: tuple[tuple[str, ...], tuple[Value, ...]]) -> tuple[str, ...]:
    return item[0]
