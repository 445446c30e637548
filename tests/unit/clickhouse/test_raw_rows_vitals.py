"""clicks_raw keeps the Core Web Vitals of a page_view as sent (migration 0005, current
ClickHouse via chdb): NULL when absent, so quantiles skip unmeasured page views, and CLS
compares exactly against its thresholds. tests/integration/test_migrate.py does the same
on ClickHouse 18.16."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from streams.clickhouse.migrations import Execute
from streams.clickhouse.raw_rows import RAW_COLUMNS, raw_row
from tests.unit.chdb_store import migrated_chdb
from tests.unit.events_factory import DROP, make_event

DB = "salewatch_vitals"
VITALS = ("load_ms", "lcp_ms", "inp_ms", "cls", "ttfb_ms")

ROWS = [
    pytest.param(
        {"load_ms": 2100, "lcp_ms": 2100, "inp_ms": 180, "cls": 0.1, "ttfb_ms": 95},
        (2100, 2100, 180, 0.1, 95),
        id="all measured",
    ),
    pytest.param(
        {"load_ms": DROP, "cls": 0.0},
        (None, None, None, 0.0, None),
        id="only CLS 0: a measurement, the rest NULL",
    ),
    pytest.param({"load_ms": DROP}, (None,) * 5, id="nothing measured: all NULL"),
]


@pytest.mark.parametrize(("overrides", "expected"), ROWS)
def test_raw_row_carries_the_vitals_in_column_order(
    overrides: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    row = dict(
        zip(
            RAW_COLUMNS["clicks"],
            raw_row("clicks", make_event("clicks", **overrides), 0, 0, 0),
            strict=True,
        )
    )
    assert tuple(row[c] for c in VITALS) == expected


@pytest.fixture(scope="module")
def execute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Execute]:
    with migrated_chdb(tmp_path_factory.mktemp("chdb") / "db", DB) as execute:
        columns = ", ".join(f"`{c}`" for c in RAW_COLUMNS["clicks"])
        for n, (overrides, _) in enumerate(p.values for p in ROWS):
            event = make_event("clicks", event_id=f"e-{n}", **overrides)
            row = raw_row("clicks", event, 0, n, event["ts"] // 1000)
            data = json.dumps(dict(zip(RAW_COLUMNS["clicks"], row, strict=True)))
            execute(f"INSERT INTO {DB}.clicks_raw ({columns}) FORMAT JSONEachRow {data}")
        yield execute


def test_rows_read_back_as_written(execute: Execute) -> None:
    got = execute(f"SELECT {', '.join(VITALS)} FROM {DB}.clicks_raw FINAL ORDER BY event_id")
    assert [tuple(r) for r in got] == [p.values[1] for p in ROWS]


def test_aggregates_skip_unmeasured_page_views(execute: Execute) -> None:
    ((inp_count, inp_avg, cls_count, cls_max),) = execute(
        f"SELECT count(inp_ms), avg(inp_ms), count(cls), max(cls) FROM {DB}.clicks_raw FINAL"
    )
    assert (inp_count, inp_avg) == (1, 180.0), "NULLs are not zeros"
    assert (cls_count, cls_max) == (2, 0.1)


def test_cls_on_the_good_line_is_not_above_it(execute: Execute) -> None:
    ((above,),) = execute(f"SELECT countIf(cls > 0.1) FROM {DB}.clicks_raw FINAL")
    assert above == 0
