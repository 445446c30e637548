"""``salewatch backtest`` end to end on hand-built events and a small rule file, with the
alert times worked out by hand: replay → OpenMetrics → promtool blocks → Prometheus →
recording rules written back level by level → ``for`` / ``keep_firing_for``.

Events: one page view a second for 30 minutes, nothing for 10 minutes, then again. With
5 s scrapes the counter's last value is first scraped at ``T_LAST`` (the tick after the
last event); ``rate(x[1m])`` is 0 from ``T_LAST + 60 s`` (Prometheus 2's range selector
includes its left end, so the window holds an older sample until then) until the tick
after the first resumed event, ``T_BACK``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.backtest import BacktestError, BacktestOptions, run_backtest
from streams.settings import load_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("promtool")),
        reason="needs the prometheus and promtool binaries (salewatch stack up installs them)",
    ),
]

T0 = 1_511_654_400_000  # 2017-11-26 00:00:00 UTC: old data, replayed in its own time
T_LAST = T0 + 1_800_000
T_BACK = T0 + 2_405_000

RULES = """
groups:
  - name: t
    rules:
      - record: ":t_valid:rate1m"
        expr: sum(rate(salewatch_events_valid_total[1m]))
      - record: ":t_valid:doubled_rate1m"
        expr: ":t_valid:rate1m * 2"
      - alert: TStopped
        expr: ':t_valid:doubled_rate1m == 0'
        for: 1m
        labels: {severity: page}
      - alert: TStoppedKeep
        expr: ':t_valid:doubled_rate1m == 0'
        keep_firing_for: 30s
      - alert: TUp
        expr: up{job="salewatch", instance="backtest"} == 1
      - alert: TNoUp
        expr: absent(up{job="salewatch", instance="backtest"})
"""


def click(k: int) -> dict[str, Any]:
    return {
        "topic": "clicks",
        "schema_version": 1,
        "event_id": f"e{k}",
        "event_type": "page_view",
        "ts": T0 + k * 1000 + 500,
        "user_id": f"u{k % 50}",
        "session_id": f"s{k % 50}",
        "channel": "app",
        "region": "CN-GD",
        "page_type": "detail",
    }


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    ks = [*range(0, 1800), *range(2400, 3000)]
    path.write_bytes(b"".join(orjson.dumps(click(k)) + b"\n" for k in ks))
    return path


def fired(report: dict[str, Any], name: str) -> list[tuple[int, int | None]]:
    return [(a["starts_at"], a["ends_at"]) for a in report["alerts"] if a["alertname"] == name]


@pytest.mark.parametrize("eval_s", [5, 15])
def test_alert_times_follow_for_and_keep_firing_for(
    events: Path, tmp_path: Path, eval_s: int
) -> None:
    rules = tmp_path / "t.rules.yml"
    rules.write_text(RULES)
    options = BacktestOptions(rules=rules, scrape_interval_ms=5_000, eval_interval_ms=eval_s * 1000)
    report = run_backtest(events, load_settings(), options)

    step = eval_s * 1000

    def on_grid(ms: int) -> int:  # the first evaluation at or after ms
        return -(-ms // step) * step

    zero_from = on_grid(T_LAST + 60_000)
    back = on_grid(T_BACK)
    assert fired(report, "TStopped") == [(zero_from + 60_000, back)]
    assert fired(report, "TStoppedKeep") == [(zero_from, on_grid(back + 30_000))]
    first_step = on_grid(report["period"]["start_ms"])
    assert fired(report, "TUp") == [(first_step, None)]  # still firing when the data ends
    assert fired(report, "TNoUp") == []
    (stopped,) = [a for a in report["alerts"] if a["alertname"] == "TStopped"]
    assert stopped["labels"] == {"severity": "page"}
    assert stopped["active_at"] == zero_from
    (up,) = [a for a in report["alerts"] if a["alertname"] == "TUp"]
    assert up["labels"] == {"job": "salewatch", "instance": "backtest"}

    assert report["events"] == 2400 and report["invalid"] == 0
    assert report["period"] == {
        "start_ms": T0 + 5_000,
        "end_ms": T0 + 3_000_000,
        "duration_s": 2995.0,
        "first_event_ms": T0 + 500,
        "last_event_ms": T0 + 2_999_500,
    }
    assert report["rules"]["levels"] == 3
    assert report["rules"]["prometheus_restarts"] == 2
    assert report["tsdb_check"]["matches_replay"] is True


def test_broken_rules_are_refused_before_the_replay(events: Path, tmp_path: Path) -> None:
    rules = tmp_path / "bad.rules.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n")
    with pytest.raises(BacktestError, match="promtool check rules"):
        run_backtest(events, load_settings(), BacktestOptions(rules=rules))


def test_plot_is_written(events: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rules = tmp_path / "t.rules.yml"
    rules.write_text(RULES)
    png = tmp_path / "report.png"
    run_backtest(events, load_settings(), BacktestOptions(rules=rules, plot=png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
