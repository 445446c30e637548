"""Totals as OpenMetrics text with timestamps, and recorded query results."""

from __future__ import annotations

import math

import pytest

from streams.backtest.evaluate import alert_labels, as_recorded, eval_steps
from streams.backtest.openmetrics import (
    TotalsScraper,
    escape_label_value,
    format_timestamp,
    format_value,
    series_of,
)
from streams.backtest.prometheus import Series
from streams.backtest.rules import Rule
from streams.metrics.totals import Totals


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"),
        (0.0, "0"),
        (2.5, "2.5"),
        (1e20, "1e+20"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_values(value: float, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("ms", "text"), [(1_511_658_005_000, "1511658005"), (1_511_658_005_040, "1511658005.040")]
)
def test_timestamps_are_seconds_exact_to_the_ms(ms: int, text: str) -> None:
    assert format_timestamp(ms) == text


def test_label_values_are_escaped() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert series_of("x", {"__name__": "y", "b": "2", "a": "1"}) == 'x{a="1",b="2"}'


def test_a_scrape_has_every_touched_series_with_target_labels() -> None:
    totals = Totals()
    totals.inc("salewatch_orders_total", ("order_created", "app", "alipay", "CN-GD"), 2)
    totals.set("salewatch_active_users_1m", ("all",), 17)
    totals.observe("salewatch_page_load_seconds", ("detail", "app"), 3.2)
    scraper = TotalsScraper()
    lines = scraper.scrape(totals, 1_511_658_005_000).splitlines()
    target = 'job="salewatch",instance="backtest"'
    assert lines[0] == f"up{{{target}}} 1 1511658005"
    assert (
        'salewatch_orders_total{event_type="order_created",channel="app",payment_method="alipay",'
        f'region="CN-GD",{target}}} 2 1511658005'
    ) in lines
    assert f'salewatch_active_users_1m{{channel="all",{target}}} 17 1511658005' in lines
    buckets = [line for line in lines if "_bucket" in line]
    assert [b.split('le="')[1].split('"')[0] for b in buckets][-2:] == ["20.0", "+Inf"]
    assert [int(b.split()[1]) for b in buckets] == [0] * 6 + [1] * 6  # cumulative, 3.2 ≤ 4
    count = f'salewatch_page_load_seconds_count{{page_type="detail",channel="app",{target}}}'
    assert f"{count} 1 1511658005" in lines
    assert scraper.series == len(lines)


def test_later_scrapes_show_new_values_at_their_own_time() -> None:
    totals = Totals()
    key = ("app", "direct", "home")
    scraper = TotalsScraper()
    totals.inc("salewatch_page_views_total", key)
    scraper.scrape(totals, 5_000)
    totals.inc("salewatch_page_views_total", key, 4)
    second = scraper.scrape(totals, 10_000).splitlines()
    (page_views,) = [line for line in second if line.startswith("salewatch_page_views_total")]
    assert page_views.endswith(" 5 10")
    # up, the page views, and the series that start at 0 (payment orders), at each scrape
    assert scraper.lines_written == 2 * len(second)
    assert sum(line.startswith("salewatch_payment_orders_total") for line in second) == 12


def test_steps_are_multiples_of_the_interval_inside_the_period() -> None:
    assert eval_steps(12_000, 61_000, 15_000) == [15_000, 30_000, 45_000, 60_000]
    assert eval_steps(15_000, 15_000, 15_000) == [15_000]


def test_recorded_series_merge_results_that_differ_only_by_name() -> None:
    rule = Rule("record", "step:x:settled", "a or b", "g", "f", {"team": "t"})
    result = [
        Series({"__name__": "a", "step": "paid"}, [(0, "1"), (10, "2")]),
        Series({"__name__": "b", "step": "paid"}, [(5, "3")]),
        Series({"step": "visit"}, [(0, "4")]),
    ]
    assert as_recorded(rule, result) == {
        'step:x:settled{step="paid",team="t"}': {0: "1", 5: "3", 10: "2"},
        'step:x:settled{step="visit",team="t"}': {0: "4"},
    }


def test_a_step_with_two_values_for_one_series_is_not_recorded() -> None:
    rule = Rule("record", "x:y", "a or b", "g", "f")
    result = [
        Series({"__name__": "a"}, [(0, "1"), (5, "1")]),
        Series({"__name__": "b"}, [(5, "2")]),
    ]
    assert as_recorded(rule, result) == {"x:y": {0: "1"}}


def test_alert_identity_is_result_labels_rule_labels_and_name() -> None:
    rule = Rule("alert", "A", "x > 1", "g", "f", {"severity": "page", "method": "fixed"})
    labels = alert_labels(rule, {"__name__": "x", "method": "card", "job": "salewatch"})
    assert labels == (
        ("alertname", "A"),
        ("job", "salewatch"),
        ("method", "fixed"),
        ("severity", "page"),
    )
