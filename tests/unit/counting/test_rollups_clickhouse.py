"""Rollup rows in ClickHouse (chdb, current ClickHouse): the migrations take the rows the
counting core produces, a re-emitted window replaces instead of adding (FINAL), the
documented page-load quantile query runs, and the active-users view normalises labels like
streams.metrics.labels. The same DDL runs on 18.16: tests/integration/test_migrate.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.clickhouse.migrations import DEFAULT_MIGRATIONS_DIR, Execute
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import ROLLUP_COLUMNS, RollupRow, insert_batches
from streams.metrics import labels
from streams.metrics.docs import NUMBERS, SQL_DATABASE
from streams.metrics.totals import Totals
from tests.unit.chdb_store import migrated_chdb
from tests.unit.events_factory import make_event

chdb_session = pytest.importorskip("chdb.session")

DB = "salewatch_counting"
T0 = 1_731_283_200_000
MIN = 60_000


@pytest.fixture
def execute(tmp_path: Path) -> Iterator[Execute]:
    with migrated_chdb(tmp_path / "chdb", DB) as execute:
        yield execute


def literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return str(value)  # int, Decimal


def insert(execute: Execute, rows: list[RollupRow]) -> None:
    """One INSERT per table, as the sink does with insert_batches."""
    for batch in insert_batches(rows):
        values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in batch.rows)
        execute(f"INSERT INTO {DB}.{batch.table} ({', '.join(batch.columns)}) VALUES {values}")


def one_window_of_everything() -> Pipeline:
    p = Pipeline(Totals())
    p.process("clicks", [make_event("clicks", event_id="c1", ts=T0 + 1, channel="tv")], T0)
    p.process("carts", [make_event("carts", event_id="k1", ts=T0 + 2)], T0)
    orders = [
        make_event("orders", event_id="o1", ts=T0 + 3, amount=1.15),
        make_event("orders", event_id="o2", ts=T0 + 4, event_type="payment_succeeded"),
        make_event("orders", event_id="o3", ts=T0 + 5, event_type="payment_failed"),
    ]
    p.process("orders", orders, T0)
    p.process("tickets", [make_event("tickets", event_id="t1", ts=T0 + 6)], T0)
    return p


def test_every_rollup_table_takes_the_rows_and_a_reemitted_window_replaces(
    execute: Execute,
) -> None:
    rows = one_window_of_everything().close_windows(T0 + 3 * MIN)
    assert {r.table for r in rows} == set(ROLLUP_COLUMNS)
    insert(execute, rows)
    # the same window emitted again later (after a replay) with one more page view, same keys
    again = one_window_of_everything()
    late_view = make_event("clicks", event_id="c2", ts=T0 + 9, channel="tv", user_id="u-2")
    again.process("clicks", [late_view], T0)
    insert(execute, again.close_windows(T0 + 4 * MIN))

    for table, columns in ROLLUP_COLUMNS.items():
        stored = execute(f"SELECT count() FROM {DB}.{table}")
        final = execute(f"SELECT {', '.join(columns)} FROM {DB}.{table} FINAL ORDER BY worker")
        expected = [r for r in rows if r.table == table]
        assert int(stored[0][0]) == 2 * len(expected), table
        assert len(final) == len(expected), f"{table}: FINAL keeps one row per key"
        assert all(int(row[-1]) == T0 + 4 * MIN for row in final), "the newest version wins"

    (traffic,) = execute(
        f"SELECT worker, channel, page_views, visits, active_users FROM {DB}.traffic_1m FINAL"
    )
    assert [*traffic[:2], *map(int, traffic[2:])] == ["p0", "other", 2, 1, 2]
    (orders,) = execute(
        f"SELECT toString(sum(amount)), sum(coupon_orders) FROM {DB}.orders_1m FINAL "
        "WHERE event_type = 'order_created'"
    )
    assert [Decimal(orders[0]), int(orders[1])] == [Decimal("1.15"), 1]


# the documented query (docs/metrics.md)
PAGE_LOAD_QUANTILES = next(n.sql for n in NUMBERS if n.title.startswith("Page load time"))


def test_page_load_quantiles_from_the_bucket_array(execute: Execute) -> None:
    p = Pipeline(Totals())
    loads = [300] * 50 + [1200] * 45 + [9000] * 5  # p50 ≤ 500 ms, p75 and p95 ≤ 1.5 s
    clicks = [
        make_event("clicks", event_id=f"c{i}", ts=T0 + i, load_ms=ms) for i, ms in enumerate(loads)
    ]
    p.process("clicks", clicks, T0)
    insert(execute, p.close_windows(T0 + 3 * MIN))
    (row,) = execute(PAGE_LOAD_QUANTILES.replace(f"{SQL_DATABASE}.", f"{DB}."))
    assert [float(v) for v in row[3:]] == [500.0, 1500.0, 1500.0]


def test_active_users_view_normalises_like_the_closed_sets() -> None:
    sql = (DEFAULT_MIGRATIONS_DIR / "0018_active_users_1m.sql").read_text()
    lists = re.findall(r"IN \(([^)]*)\)", sql)
    channels, sources = ({v.strip().strip("'") for v in found.split(",")} for found in lists)
    assert channels | {labels.OTHER} == labels.CHANNELS
    assert sources | {labels.OTHER} == labels.TRAFFIC_SOURCES


def test_active_users_view_counts_distinct_users_across_minutes(execute: Execute) -> None:
    columns = (
        "event_id, event_type, event_time, ts_ms, user_id, session_id, channel, region, "
        "schema_version, kafka_partition, kafka_offset, ingested_at, page_type, item_id, "
        "category, traffic_source, load_ms"
    )
    rows = [
        ("a", "page_view", 0, "u1", "tv", "ads"),
        ("b", "page_view", 0, "u2", "app", ""),
        ("b", "page_view", 0, "u2", "app", ""),  # redelivered: still one user
        ("c", "click", 0, "u3", "app", ""),  # not a page view
        ("d", "page_view", 70, "u2", "app", "email"),
    ]
    values = ", ".join(
        f"('{eid}', '{et}', {T0 // 1000 + dt}, 0, '{user}', 's', '{ch}', 'CN-GD', 1, 0, 0, "
        f"{T0 // 1000}, 'home', '', '', '{src}', NULL)"
        for eid, et, dt, user, ch, src in rows
    )
    execute(f"INSERT INTO {DB}.clicks_raw ({columns}) VALUES {values}")

    per_minute = execute(
        f"SELECT toUnixTimestamp(window_start) AS w, channel, traffic_source, "
        f"uniqCombinedMerge(users) FROM {DB}.active_users_1m "
        "GROUP BY window_start, channel, traffic_source ORDER BY w, channel, traffic_source"
    )
    start = T0 // 1000
    assert [[int(r[0]) - start, r[1], r[2], int(r[3])] for r in per_minute] == [
        [0, "app", "other", 1],
        [0, "other", "ads", 1],
        [60, "app", "email", 1],
    ]
    (total,) = execute(f"SELECT uniqCombinedMerge(users) FROM {DB}.active_users_1m")
    assert int(total[0]) == 2
