"""Real data end to end: the Taobao UserBehavior sample → ``salewatch convert taobao`` →
``salewatch backtest`` (replay, blocks, a real Prometheus, the project's rules), and the
funnel in the backtest's final counters against figures computed here, independently,
from the original CSV with plain Python.

The data set stays in ``../shared/data`` (never copied into the repository); the test is
skipped when it or the Prometheus binaries are not there.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import backtest as backtest_cli
from streams.cli import convert as convert_cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CSV = DATA / "taobao_user_behavior_sample.csv"
SESSION_GAP_S = 30 * 60

needs = pytest.mark.skipif(
    not CSV.is_file() or not (shutil.which("prometheus") and shutil.which("promtool")),
    reason=f"needs {CSV} and the prometheus/promtool binaries (salewatch stack up installs them)",
)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="salewatch")
    commands = parser.add_subparsers(required=True)
    convert_cli.register(commands)
    backtest_cli.register(commands)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def funnel_from_csv(path: Path) -> dict[str, Any]:
    """Sessions per user cut at gaps of 30 minutes or more; the deepest step of each."""
    by_user: dict[str, list[tuple[int, str]]] = defaultdict(list)
    rows = 0
    with path.open(newline="") as f:
        for user, _item, _category, behaviour, seconds in csv.reader(f):
            by_user[user].append((int(seconds), behaviour))
            rows += 1
    depth = {"pv": 2, "cart": 3, "buy": 5, "fav": 0}  # detail, cart, paid; fav is no step
    reached = dict.fromkeys(("visit", "detail", "cart", "checkout", "paid"), 0)
    behaviours: dict[str, int] = defaultdict(int)
    for actions in by_user.values():
        actions.sort(key=lambda a: a[0])
        sessions: list[int] = []
        last: int | None = None
        for ts, behaviour in actions:
            behaviours[behaviour] += 1
            if last is None or ts - last >= SESSION_GAP_S:
                sessions.append(0)
            sessions[-1] = max(sessions[-1], depth[behaviour])
            last = ts
        for deepest in sessions:
            reached["visit"] += deepest >= 1
            reached["detail"] += deepest >= 2
            reached["cart"] += deepest >= 3
            reached["checkout"] += deepest >= 4
            reached["paid"] += deepest >= 5
    times = [a[0] for actions in by_user.values() for a in actions]
    return {
        "rows": rows,
        "funnel": reached,
        "page_views": behaviours["pv"],
        "carts": behaviours["cart"],
        "orders": behaviours["buy"],
        "first_ms": min(times) * 1000,
        "last_ms": max(times) * 1000,
    }


@needs
def test_taobao_funnel_survives_the_backtest(tmp_path: Path) -> None:
    events = tmp_path / "taobao.jsonl"
    report_path = tmp_path / "report.json"
    assert cli("convert", "taobao", str(CSV), "--out", str(events)) == 0
    assert (
        cli(
            "backtest",
            str(events),
            "--rules",
            str(REPO / "alerts"),
            "--out",
            str(report_path),
            "--quiet",
        )
        == 0
    )
    report = orjson.loads(report_path.read_bytes())
    truth = funnel_from_csv(CSV)

    counters = report["counters"]
    assert counters["funnel_sessions"] == truth["funnel"]
    assert counters["sessions_started"] == truth["funnel"]["visit"]
    assert counters["page_views"] == truth["page_views"]
    assert counters["cart_events"] == {"add_to_cart": truth["carts"]}
    assert counters["orders"] == {
        "order_created": truth["orders"],
        "payment_succeeded": truth["orders"],
    }
    assert counters["late_events"] == counters["duplicate_events"] == 0
    # every row an event (a purchase two), none refused as too old: 2017 replayed in its own time
    assert report["events"] == truth["rows"] + truth["orders"]
    assert report["invalid"] == 0
    assert (report["period"]["first_event_ms"], report["period"]["last_event_ms"]) == (
        truth["first_ms"],
        truth["last_ms"],
    )
    # the same funnel read back through the blocks and PromQL at the last tick
    assert report["tsdb_check"]["matches_replay"] is True
    assert report["tsdb_check"]["funnel_sessions_in_tsdb"] == {
        step: float(n) for step, n in sorted(truth["funnel"].items())
    }
    assert report["rules"]["queries"] == report["rules"]["recording"] + report["rules"]["alerting"]
    assert isinstance(report["alerts"], list)
