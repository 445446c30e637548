"""The ``table`` label of the ClickHouse write metrics comes from a closed set."""

from __future__ import annotations

import pytest

from streams.clickhouse.sink import table_label
from streams.counting.rollups import ROLLUP_TABLES
from streams.metrics.defs import CLICKHOUSE_TABLE_VALUES


@pytest.mark.parametrize(
    ("table", "label"),
    [
        ("clicks_raw", "clicks_raw"),
        ("orders_raw", "orders_raw"),
        ("funnel_1m", "rollups"),
        ("tickets_1m", "rollups"),
        ("window_emitters", "rollups"),
        ("somewhere_else", "other"),
    ],
)
def test_table_label(table: str, label: str) -> None:
    assert table_label(table) == label


def test_every_rollup_table_is_labelled_rollups() -> None:
    assert {table_label(t) for t in ROLLUP_TABLES} == {"rollups"}
    assert "rollups" in CLICKHOUSE_TABLE_VALUES
