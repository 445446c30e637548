"""``salewatch recap`` on current ClickHouse (chdb): a simulated sale night, with the day
before (returning buyers) and the day after (repurchases) and redelivered events, stored in
the raw tables; every number of recap.json equals the plain-Python truth
(tests/recap_truth.py) and every query of the recap runs. The same on ClickHouse 18.16 with
the Taobao sample: tests/integration/test_recap.py. Plus the pure parts: alert firings from
an ``ALERTS`` matrix, RFM scoring, the page.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams.clickhouse.raw_rows import RAW_COLUMNS, RAW_TABLE
from streams.events.contract import Topic
from streams.recap import alerts, compute, queries, render
from streams.simulation import SimConfig, generate, parse_time
from tests.recap_truth import compare, truth
from tests.unit.chdb_store import migrated_chdb
from tests.unit.dashboards.test_dashboards import json_each_row

DB = "salewatch"
NIGHT = parse_time("2026-11-10T23:30:00+08:00")
HOUR_MS = 3_600_000
BASE = SimConfig(
    rate=0.4, duration_s=3600, start_ms=NIGHT, users=400, catalog_items=300, warmup_s=60
)
WINDOW = compute.Window(NIGHT // 1000, (NIGHT + HOUR_MS) // 1000)


def simulated_days() -> list[tuple[Topic, dict[str, Any]]]:
    """The night (a midnight spike), a quiet hour the day before and one 20 hours after;
    the same 400 users, so some buyers return and some buy again. 3 % of the events are
    delivered twice (the raw tables must count them once)."""
    runs = [
        (BASE, 1),
        (replace(BASE, rate=3, start_ms=NIGHT - 20 * HOUR_MS, spike=False), 2),
        (replace(BASE, start_ms=NIGHT + 20 * HOUR_MS, spike=False), 3),
    ]
    events = [(e.topic, e.event) for config, seed in runs for e in generate(config, seed)]
    rng = random.Random(4)
    return events + rng.sample(events, len(events) * 3 // 100)


def insert(execute: Any, events: list[tuple[Topic, dict[str, Any]]]) -> None:
    by_topic: dict[Topic, list[str]] = {}
    for topic, event in events:
        by_topic.setdefault(topic, []).append(json_each_row(topic, event))
    for topic, rows in by_topic.items():
        columns = ", ".join(f"`{c}`" for c in RAW_COLUMNS[topic])
        for i in range(0, len(rows), 5000):
            chunk = "\n".join(rows[i : i + 5000])
            execute(f"INSERT INTO {DB}.{RAW_TABLE[topic]} ({columns}) FORMAT JSONEachRow {chunk}")


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[Any]]]:
    events = simulated_days()
    with migrated_chdb(tmp_path_factory.mktemp("chdb") / "db", DB) as execute:
        insert(execute, events)
        execute(f"USE {DB}")
        yield execute, events


def test_recap_of_a_simulated_night_equals_the_truth(night: tuple[Any, list[Any]]) -> None:
    execute, events = night
    steps: list[str] = []
    recap = compute.recap(
        execute, WINDOW, compare_from_s=WINDOW.from_s - 20 * 3600, target=5e5, progress=steps.append
    )
    expected = truth(events, WINDOW.from_s, WINDOW.to_s)
    assert compare(recap, expected) == []
    # the data is not trivial: every number is exercised
    assert expected["orders_paid"] > 100
    assert expected["returning_buyers"] > 0 and expected["new_buyers"] > 0
    assert expected["repurchased_d1"] > 0
    assert expected["tickets_per_1000_paid"] > 0
    assert sum(expected["rfm_segments"].values()) == recap["buyers"]
    assert recap["compare_gmv_paid"] > 0 and recap["compare_gmv_per_minute"][0][0] >= NIGHT
    assert recap["page_speed_p75_by_page_type"]
    assert {p["payment_method"] for p in recap["payment_success_by_method"]} > {"alipay"}
    assert len(steps) == 7
    # D1 reaches: data until 21 h after the night; D7 does not
    assert recap["customers"]["repurchase"]["d7"]["complete"] is False


@pytest.mark.parametrize("name", sorted(queries.all_queries(0, 1)))
def test_every_recap_query_runs_on_current_clickhouse(
    night: tuple[Any, list[Any]], name: str
) -> None:
    execute, _ = night
    execute(queries.all_queries(WINDOW.from_s, WINDOW.to_s)[name])


def test_an_empty_window_gives_empty_numbers_not_errors(night: tuple[Any, list[Any]]) -> None:
    execute, _ = night
    recap = compute.recap(execute, compute.Window(1, 61))
    assert recap["orders_paid"] == 0 and recap["gmv_paid"] == 0
    assert recap["conversion"] is None and recap["peak_minute"] is None
    assert recap["customers"]["rfm_segments"] == dict.fromkeys(compute.RFM_SEGMENTS, 0)
    html = render.render({**recap, "alerts": None, "alerts_note": "x"}, title="t", timezone="UTC")
    assert "<img" in html


# ------------------------------------------------------------------ pure parts


def _series(labels: dict[str, str], times: list[int]) -> dict[str, Any]:
    return {
        "metric": {"__name__": "ALERTS", "alertstate": "firing", **labels},
        "values": [[t, "1"] for t in times],
    }


@pytest.mark.parametrize(
    ("times", "runs"),
    [
        pytest.param([100], [(100, 115)], id="one sample"),
        pytest.param([100, 115, 130], [(100, 145)], id="one run"),
        pytest.param([100, 115, 130, 160], [(100, 175)], id="a gap of 2 steps is no gap"),
        pytest.param([100, 115, 200, 215], [(100, 130), (200, 230)], id="two runs"),
    ],
)
def test_firings_are_runs_of_alerts_samples(times: list[int], runs: list[tuple[int, int]]) -> None:
    series = [_series({"alertname": "SaleOrdersStalled", "severity": "page"}, times)]
    firings = alerts.firings_from_series(series, step_s=15)
    assert [(f.starts_ms // 1000, f.ends_ms // 1000) for f in firings] == runs
    assert firings[0].labels == {"severity": "page"}
    assert firings[0].as_dict()["duration_s"] == runs[0][1] - runs[0][0]


def test_an_unreachable_prometheus_is_reported_not_raised_elsewhere() -> None:
    with pytest.raises(alerts.PrometheusUnreachable, match=r"127\.0\.0\.1:9"):
        alerts.fired("http://127.0.0.1:9", 0, 3600)


@pytest.mark.parametrize(
    ("values", "scores"),
    [
        pytest.param([1, 2, 3], [1, 2, 3], id="three"),
        pytest.param([5, 5, 5], [1, 1, 1], id="ties share the lower score"),
        pytest.param([1, 2, 3, 4, 5, 6], [1, 1, 2, 2, 3, 3], id="six"),
        pytest.param([], [], id="none"),
    ],
)
def test_tertile_scores(values: list[float], scores: list[int]) -> None:
    assert compute.tertile_scores(values) == scores


@pytest.mark.parametrize(
    ("recency", "orders", "monetary", "segment"),
    [
        pytest.param(3, 2, 3, "champions", id="recent repeat big"),
        pytest.param(1, 3, 3, "loyal", id="repeat, not recent"),
        pytest.param(3, 1, 3, "big_spenders", id="one big order"),
        pytest.param(2, 1, 1, "promising", id="one recent order"),
        pytest.param(1, 1, 2, "one_off", id="one old small order"),
    ],
)
def test_rfm_segments(recency: int, orders: int, monetary: int, segment: str) -> None:
    assert compute.rfm_segment(recency, orders, monetary) == segment


def test_the_page_is_self_contained(night: tuple[Any, list[Any]], tmp_path: Path) -> None:
    execute, _ = night
    recap = compute.recap(execute, WINDOW, target=5e5)
    recap["alerts"] = [
        alerts.Firing("SaleOrdersStalled", {"severity": "page"}, NIGHT, NIGHT + 90_000).as_dict()
    ]
    page = render.render(recap, title="Night", timezone="Asia/Shanghai")
    assert page.count('src="data:image/png;base64,') >= 4
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert f"¥{recap['gmv_paid']:,.2f}" in page
    assert "SaleOrdersStalled" in page and "1 min 30 s" in page
    json.dumps(recap)  # recap.json is plain JSON


# ------------------------------------------------------------------ command line


def test_the_window_must_be_forward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    window = ["--from", "2026-11-12T00:00+08:00", "--to", "2026-11-11T00:00+08:00"]
    code = main(["recap", *window, "--out", str(tmp_path)])
    assert code == 2 and "--to must be after --from" in capsys.readouterr().err
    assert not (tmp_path / "recap.json").exists()


def test_times_need_an_offset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["recap", "--from", "2026-11-11T00:00", "--to", "2026-11-12T00:00+08:00"])
    assert exc.value.code == 2 and "offset" in capsys.readouterr().err


def test_the_progress_line_rewrites_itself_on_a_terminal() -> None:
    import io

    from streams.cli.recap import ProgressLine

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    progress = ProgressLine(out, total=2)
    progress("one")
    progress("two")
    progress.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and "recap [2/2]" in text and text.endswith("\n")
