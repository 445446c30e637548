"""The backtest report: final counters, firing entries, the table, the CLI's arguments."""

from __future__ import annotations

import argparse

import pytest

from streams.backtest.alerting import Episode
from streams.backtest.evaluate import Firing
from streams.backtest.report import final_counters, firing_entries, format_table
from streams.backtest.rules import Rule
from streams.cli import backtest as backtest_cli
from streams.metrics.totals import Totals

T = 1_731_295_200_000  # 2024-11-11 03:20:00 UTC


def test_final_counters_sum_over_labels_in_funnel_order() -> None:
    totals = Totals()
    totals.inc("salewatch_funnel_sessions_total", ("paid", "app"), 2)
    totals.inc("salewatch_funnel_sessions_total", ("visit", "app"), 5)
    totals.inc("salewatch_funnel_sessions_total", ("visit", "web"), 3)
    totals.inc("salewatch_orders_total", ("order_created", "app", "alipay", "CN-GD"), 4)
    totals.inc("salewatch_orders_total", ("order_created", "web", "card", "other"), 1)
    totals.inc("salewatch_order_amount_total", ("order_created", "app", "other"), 99.9)
    counters = final_counters(totals)
    assert list(counters["funnel_sessions"].items()) == [
        ("visit", 8),
        ("detail", 0),
        ("cart", 0),
        ("checkout", 0),
        ("paid", 2),
    ]
    assert counters["orders"] == {"order_created": 5}
    assert counters["gmv"] == 99.9 and counters["paid_amount"] == 0


def _firing(end: int | None) -> Firing:
    rule = Rule("alert", "SalePaymentFailureSpike", "x", "g", "f", {"severity": "page"})
    labels = (
        ("alertname", "SalePaymentFailureSpike"),
        ("payment_method", "alipay"),
        ("severity", "page"),
    )
    return Firing(rule, Episode(labels, T + 25_000, T + 85_000, end))


def test_firing_entries_carry_event_times_in_ms() -> None:
    (entry,) = firing_entries([_firing(T + 695_000)])
    assert entry == {
        "alertname": "SalePaymentFailureSpike",
        "labels": {"payment_method": "alipay", "severity": "page"},
        "starts_at": T + 85_000,
        "ends_at": T + 695_000,
        "active_at": T + 25_000,
        "duration_s": 610.0,
    }


def test_table_shows_utc_times_and_open_firings() -> None:
    table = format_table(firing_entries([_firing(T + 695_000), _firing(None)]))
    lines = table.splitlines()
    assert lines[0].split() == ["alert", "labels", "fired", "(UTC)", "resolved", "(UTC)", "for"]
    assert "payment_method=alipay" in lines[2] and "severity" not in lines[2]
    assert "2024-11-11 03:21:25" in lines[2] and "10m10s" in lines[2]
    assert lines[3].endswith("still firing")
    assert format_table([]) == "no alert fired"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backtest_cli.register(parser.add_subparsers())
    return parser.parse_args(["backtest", "events.jsonl", *argv])


@pytest.mark.parametrize(("text", "ms"), [("5s", 5_000), ("1m", 60_000), ("15s", 15_000)])
def test_intervals(text: str, ms: int) -> None:
    assert _parse("--scrape-interval", text).scrape_interval == ms


@pytest.mark.parametrize("text", ["500ms", "1.5s", "5"])
def test_intervals_must_be_whole_seconds(text: str) -> None:
    with pytest.raises(SystemExit):
        _parse("--scrape-interval", text)


def test_evaluation_off_the_scrape_grid_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _parse("--scrape-interval", "10s", "--eval-interval", "15s")
    assert args.func(args) == 2
    assert "multiple of the scrape interval" in capsys.readouterr().err
