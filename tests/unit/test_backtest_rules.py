"""Rule files as the backtest evaluates them: durations, names used, dependency levels."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.backtest.errors import BacktestError
from streams.backtest.rules import (
    Rule,
    assign_levels,
    load_rules,
    names_used,
    parse_duration,
    rule_files,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("0s", 0),
        ("500ms", 500),
        ("15s", 15_000),
        ("1m", 60_000),
        ("1h30m", 5_400_000),
        ("6d23h45m", 604_800_000 - 900_000),
        ("1w", 604_800_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "1", "m", "1m1", "1.5m", "-1m", "1 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_names_used_skip_strings_and_comments() -> None:
    expr = """
      sum by (step) (rate(x_total{step="a:b:c"}[1m]))  # a:b:d in a comment
      / on () group_left a:b:e
    """
    used = names_used(expr)
    assert {"x_total", "a:b:e", "step", "rate"} <= used
    assert not {"a:b:c", "a:b:d"} & used


def _record(name: str, expr: str) -> Rule:
    return Rule("record", name, expr, "g", "f")


def _alert(name: str, expr: str) -> Rule:
    return Rule("alert", name, expr, "g", "f")


def test_levels_follow_dependencies() -> None:
    rules = [
        _alert("A", "c:x:ratio > 2 and a:x:rate1m > 0"),
        _record("c:x:ratio", "b:x:sum / a:x:rate1m"),
        _record("b:x:sum", "sum(a:x:rate1m)"),
        _record("a:x:rate1m", "rate(x_total[1m])"),
        _alert("B", "x_total > 0"),
    ]
    assign_levels(rules)
    assert {r.name: r.level for r in rules} == {
        "a:x:rate1m": 1,
        "B": 1,
        "b:x:sum": 2,
        "c:x:ratio": 3,
        "A": 4,
    }


def test_a_cycle_is_refused() -> None:
    rules = [_record("a:x", "b:x + 1"), _record("b:x", "a:x + 1")]
    with pytest.raises(BacktestError, match="cycle"):
        assign_levels(rules)


def test_alerts_reading_alerts_are_refused() -> None:
    with pytest.raises(BacktestError, match="ALERTS"):
        assign_levels([_alert("Meta", 'ALERTS{alertname="A"} == 1')])


def test_the_project_rules_load_with_for_and_levels() -> None:
    rules = load_rules(rule_files(REPO / "alerts"))
    assert rules.alerts and rules.recording
    # every alert waits before paging, except the always-firing heartbeat
    assert all(r.for_ms > 0 for r in rules.alerts if r.name != "Watchdog")
    assert [r.for_ms for r in rules.alerts if r.name == "Watchdog"] == [0]
    # every recording rule an alert reads comes from a lower level
    by_name = {r.name: r.level for r in rules.recording}
    for alert in rules.alerts:
        for name in names_used(alert.expr) & by_name.keys():
            assert by_name[name] < alert.level


def test_rule_files_skip_hidden_scratch_files(tmp_path: Path) -> None:
    (tmp_path / "a.rules.yml").write_text("groups: []\n")
    (tmp_path / ".scratch.rules.yml").write_text("groups: []\n")
    (tmp_path / "alertmanager.yml").write_text("route: {}\n")
    assert [p.name for p in rule_files(tmp_path)] == ["a.rules.yml"]


def test_no_rule_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="no"):
        rule_files(tmp_path)
