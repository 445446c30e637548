"""docs/metrics.md and the README's war-room queries are generated from the metric
declarations and are up to date; their SQL runs on ClickHouse (chdb) against the migrated
schema; their PromQL names exist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.clickhouse.migrations import Execute
from streams.metrics.defs import ALL_METRICS, METRICS
from streams.metrics.docs import DOC_PATH, NUMBERS, SQL_DATABASE, Number, main, render
from streams.metrics.war_room import README_PATH, WAR_ROOM, WarRoomQuery, with_war_room
from tests.unit.chdb_store import migrated_chdb

DB = "salewatch_docs"


def test_committed_doc_is_up_to_date() -> None:
    assert DOC_PATH.read_text() == render(), "run `python -m streams.metrics.docs`"
    assert main(["--check"]) == 0


def test_readme_war_room_queries_are_generated() -> None:
    readme = README_PATH.read_text()
    assert readme == with_war_room(readme), "run `python -m streams.metrics.docs`"


@pytest.mark.parametrize("query", WAR_ROOM, ids=lambda q: q.caption)
def test_war_room_queries_name_declared_metrics(query: WarRoomQuery) -> None:
    for used in re.findall(r"salewatch_\w+", query.promql):
        assert re.sub(r"_(bucket|sum|count)$", "", used) in METRICS, used


def test_every_metric_is_in_the_reference() -> None:
    text = render()
    for name in ALL_METRICS:
        assert f"| `{name}` |" in text


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: n.title)
def test_business_numbers_name_declared_metrics(number: Number) -> None:
    assert all(m in METRICS for m in number.metrics)
    for used in re.findall(r"salewatch_\w+", number.promql):
        assert re.sub(r"_(bucket|sum|count)$", "", used) in METRICS, used


@pytest.fixture(scope="module")
def execute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Execute]:
    with migrated_chdb(tmp_path_factory.mktemp("chdb") / "db", DB) as execute:
        yield execute


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: n.title)
def test_sql_example_runs(execute: Execute, number: Number) -> None:
    assert f"{SQL_DATABASE}." in number.sql
    execute(number.sql.replace(f"{SQL_DATABASE}.", f"{DB}."))


@pytest.mark.parametrize("query", WAR_ROOM, ids=lambda q: q.caption)
def test_war_room_sql_runs(execute: Execute, query: WarRoomQuery) -> None:
    execute(query.sql.replace(f"{SQL_DATABASE}.", f"{DB}."))


def test_check_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "metrics.md"
    stale.write_text("old\n")
    monkeypatch.setattr("streams.metrics.docs.DOC_PATH", stale)
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert stale.read_text() == render()
