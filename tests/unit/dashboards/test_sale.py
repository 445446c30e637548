"""Issue #16 on the dashboards: the war room steers by the configured sale (target curve,
previous sale, pace, projection), filters by channel/region/payment method, marks alerts,
the sale and its flash sales; top products, hot items whose cart rate collapsed and bounce
rate; an office screen whose every number has a colour that means something and a GMV
ticker in full digits; a drill-down that reads the rollups. The new SQL is checked for
numbers on current ClickHouse (chdb) over the seeded events; every query of every panel
also runs in tests/unit/dashboards/test_dashboards.py (chdb) and tests/integration/
test_dashboard_queries.py (ClickHouse 18.16, Prometheus).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from streams.dashboards import sale_panels
from streams.dashboards.variables import FILTERS, expand_variables
from streams.sale import Sale, SaleConfigError, load_sale, projected_total, sale_from_dict
from tests.unit.dashboards.test_dashboards import (
    COMMITTED,
    SEED_NOW_MS,
    all_panels,
    annotations,
    chdb_session,  # noqa: F401  (a fixture)
    run_on_chdb,
    seed_events,
    targets,
    with_test_sale,
)

SALE = load_sale()
WAR, OFFICE, DRILL = (
    COMMITTED[n] for n in ("war-room.json", "office-screen.json", "drill-down.json")
)


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board.get("templating", {}).get("list", [])}


def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in all_panels(board) if p["title"] == title)


def test_the_war_room_filters_by_channel_region_and_payment_method() -> None:
    found = variables(WAR)
    for name, values in FILTERS.items():
        assert found[name]["type"] == "custom" and found[name]["query"] == ",".join(values)
        assert found[name]["multi"] and found[name]["includeAll"]
    uses = {name: sum(f"${{{name}:" in str(t) for _, t in targets(WAR)) for name in FILTERS}
    assert all(count >= 3 for count in uses.values()), uses


def test_the_sale_reaches_the_dashboards_as_constants_and_time_zone() -> None:
    for board in (WAR, OFFICE):
        found = variables(board)
        assert found["sale_start"]["query"] == str(SALE.start_s)
        assert found["sale_end"]["query"] == str(SALE.end_s)
        assert float(found["gmv_target"]["query"]) == SALE.gmv_target
        assert board["timezone"] == SALE.timezone != "browser"
    assert variables(WAR)["previous_start"]["query"] == str(SALE.previous_start_s)


def test_annotations_mark_alerts_the_sale_and_every_flash_sale() -> None:
    by_name = {a["name"]: a for a in annotations(WAR)}
    assert "ALERTS" in by_name["Alerts firing"]["expr"]
    assert f">= {SALE.start_s}" in by_name[f"Sale: {SALE.name}"]["expr"]
    assert SALE.flash_sales
    for flash in SALE.flash_sales:
        expr = by_name[f"Flash sale: {flash.name}"]["expr"]
        assert f">= {flash.start_s}" in expr and f"< {flash.end_s}" in expr


def test_the_war_room_has_the_new_panels() -> None:
    titles = {p["title"] for p in all_panels(WAR)}
    assert {
        "Cumulative paid GMV vs target and previous sale",
        "Paid GMV vs target so far",
        "Projected end-of-sale paid GMV",
        "Top products by GMV, last 15 minutes",
        "Top products by detail views, last 15 minutes",
        "Hot items whose cart rate collapsed",
        "Bounce rate by landing page and traffic source",
    } <= titles
    curves = panel(WAR, "Cumulative paid GMV vs target and previous sale")["targets"]
    assert [t["rawSql"] for t in curves] == [
        sale_panels.CUMULATIVE_GMV,
        sale_panels.TARGET_CURVE,
        sale_panels.PREVIOUS_SALE_GMV,
    ]


@pytest.mark.parametrize("name", ["war-room.json", "drill-down.json", "office-screen.json"])
def test_raw_tables_are_read_over_a_bounded_span_only(name: str) -> None:
    """Products and vitals exist only in the raw tables: 15 minutes or one hour at most,
    never the dashboard's whole range (24 h on the drill-down, refreshed every minute)."""
    for title, target in targets(COMMITTED[name]):
        sql = target.get("rawSql", "")
        if "_raw" in sql:
            assert "$__toTime - 900" in sql or "$__toTime - 3600" in sql, title


def test_the_drill_down_reads_the_rollups() -> None:
    sqls = [t["rawSql"] for _, t in targets(DRILL)]
    rollup = [s for s in sqls if "_1m FINAL" in s]
    assert len(rollup) >= len(sqls) - 2  # top items and web vitals are raw, bounded


def test_the_office_ticker_shows_every_digit_and_only_the_value() -> None:
    ticker = all_panels(OFFICE)[0]
    assert ticker["title"] == "Paid GMV today (¥)"
    defaults = ticker["fieldConfig"]["defaults"]
    # "locale" = thousands separators, no "B"/"M" scaling (currency units abbreviate)
    assert defaults["unit"] == "locale" and defaults["decimals"] == 0
    assert ticker["options"]["textMode"] == "value"
    assert ticker["gridPos"]["w"] >= 18
    assert any("ALERTS" in t.get("expr", "") for _, t in targets(OFFICE))


@pytest.mark.parametrize("name", ["office-screen.json", "war-room.json"])
def test_every_new_stat_has_colours_that_mean_something(name: str) -> None:
    stats = [p for p in all_panels(COMMITTED[name]) if p["type"] == "stat"]
    if name == "war-room.json":  # the sale row's; the others are the Sales row's numbers
        stats = [p for p in stats if "target" in p["title"] or "Projected" in p["title"]]
    assert stats
    for stat in stats:
        steps = stat["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert len({s["color"] for s in steps}) >= 2, stat["title"]
        assert stat["description"], stat["title"]
        for colour in {s["color"].removeprefix("dark-") for s in steps}:
            assert colour in stat["description"].lower(), (stat["title"], colour)


# ------------------------------------------------------------------ numbers on chdb


def _run(session: Any, sql: str) -> list[list[Any]]:
    now_s = SEED_NOW_MS // 1000
    board = WAR
    keep = {c: "${" + c + "}" for c in ("sale_start", "sale_end", "previous_start", "gmv_target")}
    keep |= {"hot_item_min_views": "${hot_item_min_views}"}
    keep |= {"hot_item_max_cart_rate": "${hot_item_max_cart_rate}"}
    sql = expand_variables(sql, board, **keep)
    return list(
        run_on_chdb(session, "salewatch", with_test_sale(sql, now_s, now_s - 3600, now_s + 60))
    )


def _paid_total() -> Decimal:
    return sum(
        (
            Decimal(str(e["amount"]))
            for topic, e in seed_events()
            if topic == "orders" and e["event_type"] == "payment_succeeded"
        ),
        Decimal(0),
    )


def test_cumulative_gmv_ends_at_the_paid_total(chdb_session: Any) -> None:  # noqa: F811
    rows = _run(chdb_session, sale_panels.CUMULATIVE_GMV)
    values = [float(r[1]) for r in rows]
    assert values == sorted(values) and values[-1] == pytest.approx(float(_paid_total()))


def test_target_curve_is_linear_from_zero_to_the_target(chdb_session: Any) -> None:  # noqa: F811
    rows = _run(chdb_session, sale_panels.TARGET_CURVE)
    # the range ends 60 s after "now": the curve up to there, 1000 over the hour
    assert float(rows[0][1]) == pytest.approx(0.0, abs=1000 / 60)
    assert float(rows[-1][1]) == pytest.approx(1000 * (1800 + 60) / 3600, abs=1000 / 60)


def test_pace_and_projection(chdb_session: Any) -> None:  # noqa: F811
    # the "previous" sale is this one (same hour): on pace with itself, projected = total
    [[projected]] = _run(chdb_session, sale_panels.PROJECTED_GMV)
    assert float(projected) == pytest.approx(float(_paid_total()))
    [[vs_target]] = _run(chdb_session, sale_panels.GMV_VS_TARGET)
    # the range ends 60 s after "now": 31 minutes of the 60-minute sale's 1,000 are due
    assert float(vs_target) == pytest.approx(float(_paid_total()) / (1000 * 1860 / 3600))


def test_hot_items_are_viewed_but_never_carted(chdb_session: Any) -> None:  # noqa: F811
    rows = _run(chdb_session, sale_panels.HOT_ITEMS)
    assert [(r[0], int(r[2]), int(r[3])) for r in rows] == [("i-hot", 6, 0)]


def test_bounce_rate_counts_single_page_sessions(chdb_session: Any) -> None:  # noqa: F811
    rows = _run(chdb_session, sale_panels.BOUNCE_RATE)
    # every seeded session views three pages: none bounced
    assert sum(int(r[2]) for r in rows) == 6 and all(int(r[3]) == 0 for r in rows)


# ------------------------------------------------------------------ sale file


def test_projection_follows_the_previous_sale_shape() -> None:
    assert projected_total(100.0, 50.0, 400.0) == 800.0
    assert projected_total(100.0, 0.0, 400.0) != projected_total(100.0, 0.0, 400.0)  # NaN


def test_linear_target_curve() -> None:
    sale = Sale("s", 0, 100, "UTC", 1000.0)
    assert [sale.target_at(t) for t in (-5, 0, 50, 100, 150)] == [0, 0, 500, 1000, 1000]


GOOD = {
    "name": "x",
    "start": "2026-11-11T00:00:00+08:00",
    "end": "2026-11-12T00:00:00+08:00",
    "timezone": "Asia/Shanghai",
    "gmv_target": 1000,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"start": None}, "missing 'start'", id="missing start"),
        pytest.param({"end": "2026-11-10T00:00:00+08:00"}, "end must be after", id="end first"),
        pytest.param({"start": "2026-11-11T00:00:00"}, "offset", id="no offset"),
        pytest.param({"timezone": "Mars/Olympus"}, "unknown time zone", id="zone"),
        pytest.param({"gmv_target": -1}, "gmv_target", id="target"),
        pytest.param({"flash_sales": [{"name": "f"}]}, "flash_sales", id="flash sale"),
    ],
)
def test_a_wrong_sale_file_names_the_field(change: dict[str, Any], message: str) -> None:
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(SaleConfigError, match=message):
        sale_from_dict(data)


def test_the_repository_sale_file_is_valid() -> None:
    assert SALE.gmv_target > 0 and SALE.start_s < SALE.end_s
    assert all(SALE.start_s <= f.start_s < f.end_s <= SALE.end_s for f in SALE.flash_sales)


# ------------------------------------------------------------------ the hot-item alert


def test_the_grafana_alert_file_is_generated_from_the_code() -> None:
    from streams.dashboards import alerting

    assert not alerting.is_stale(), "run `salewatch dashboards generate`"
    [group] = alerting.provisioning()["groups"]
    [rule] = group["rules"]
    assert rule["title"] == alerting.RULE_NAME and rule["labels"] == {"severity": "ticket"}
    assert rule["for"] == "5m" and rule["noDataState"] == "OK"
    assert set(rule["annotations"]) >= {"summary", "description", "runbook_url"}
    # the rule counts the panel's items: same query, the panel's thresholds filled in
    assert rule["data"][0]["model"]["rawSql"] == alerting.HOT_ITEMS_COUNT
    assert "HAVING views >= 200" in alerting.HOT_ITEMS_COUNT
    # Grafana hands its alerts to the project's Alertmanager (severity routing there)
    [contact] = alerting.provisioning()["contactPoints"]
    assert contact["receivers"][0]["type"] == "prometheus-alertmanager"


def test_the_runbook_has_the_alert_and_its_query() -> None:
    from streams.dashboards import alerting
    from tests.unit.dashboards.test_dashboards import REPO_ROOT

    runbook = (REPO_ROOT / "alerts" / "runbook.md").read_text(encoding="utf-8")
    assert f"\n## {alerting.RULE_NAME}\n" in runbook
    assert alerting.HOT_ITEMS_COUNT in runbook  # run on chdb and 18.16 with the runbook's SQL


def test_the_alert_query_counts_hot_items(chdb_session: Any) -> None:  # noqa: F811
    from streams.dashboards import alerting

    # the seeded hot item has 6 views: below the rule's 200, so nothing to count
    [[count]] = run_on_chdb(chdb_session, "salewatch", alerting.HOT_ITEMS_COUNT)
    assert int(count) == 0
    lowered = alerting.HOT_ITEMS_COUNT.replace("HAVING views >= 200", "HAVING views >= 1")
    now_s = SEED_NOW_MS // 1000
    shifted = lowered.replace("now()", f"toDateTime({now_s + 60})")
    [[count]] = run_on_chdb(chdb_session, "salewatch", shifted)
    assert int(count) == 1
