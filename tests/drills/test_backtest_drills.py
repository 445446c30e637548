"""Drills: would the project's alerts have paged for each kind of incident, and stayed
quiet on a normal day with a midnight sale spike? Simulated streams (the simulator's pure
generator, ``streams.simulation``) are backtested against the real ``alerts/`` rules.

Each incident drill: 2 hours of a mid-size shop (base 50 events/s, no spike) from 10:00
shop time, one incident from +80 minutes for 10 minutes (the trailing-hour baselines need
70 minutes of history). Pass: the matching alert fires within 3 minutes of the incident
start, and that firing ends within 10 minutes of the incident end. The same day without
the incident, and a sale night (22:00-01:00 with the midnight spike) must page no
business alert at all.

Each drill generates ~400k events and runs a full backtest (a real Prometheus): about a
minute each on two cores. Run them with
``python -m pytest tests/drills -m integration``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from streams.backtest import BacktestOptions, run_backtest
from streams.convert.jsonl import write_events
from streams.settings import load_settings
from streams.simulation import SimConfig, generate, parse_incident

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1800),  # a drill is a full backtest: minutes on a busy machine
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("promtool")),
        reason="needs the prometheus and promtool binaries (salewatch stack up installs them)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
START_MS = 1_731_290_400_000  # 2024-11-11 02:00 UTC = 10:00 in the shop (UTC+8)
INCIDENT_AT = "80m+10m"
SEED = 7
PAGE_WITHIN_MS = 3 * 60_000
RESOLVE_WITHIN_MS = 10 * 60_000


def backtest(tmp_path: Path, config: SimConfig, seed: int = SEED) -> dict[str, Any]:
    events = tmp_path / "events.jsonl"
    with events.open("wb") as out:
        write_events(((e.topic, e.event) for e in generate(config, seed) if e.valid), out)
    return run_backtest(events, load_settings(), BacktestOptions(rules=REPO / "alerts"))


def describe(alerts: list[dict[str, Any]], origin_ms: int) -> str:
    """Firings with times relative to ``origin_ms``, for failure messages."""

    def rel(ms: int | None) -> str:
        return "still firing" if ms is None else f"{(ms - origin_ms) / 1000:+.0f}s"

    return (
        "; ".join(
            f"{a['alertname']}{a['labels']} {rel(a['starts_at'])}..{rel(a['ends_at'])}"
            for a in alerts
        )
        or "nothing"
    )


DRILLS = [
    pytest.param("checkout_slow", "SalePageSpeedDegraded", {}, id="checkout_slow"),
    pytest.param(
        "payment_outage:alipay",
        "SalePaymentFailureSpike",
        {"payment_method": "alipay"},
        id="payment_outage",
    ),
    pytest.param("orders_lost", "SaleOrdersStalled", {}, id="orders_lost"),
    pytest.param("ticket_surge", "SaleTicketSurge", {}, id="ticket_surge"),
    pytest.param("traffic_drop", "SaleActiveUsersDrop", {}, id="traffic_drop"),
    pytest.param("pipeline_stall", "PipelineStalled", {}, id="pipeline_stall"),
]


@pytest.mark.parametrize(("kind", "alertname", "labels"), DRILLS)
def test_incident_pages_within_3_minutes_and_resolves_within_10(
    tmp_path: Path, kind: str, alertname: str, labels: dict[str, str]
) -> None:
    incident = parse_incident(f"{kind}@{INCIDENT_AT}")
    config = SimConfig(
        rate=50, duration_s=7200, start_ms=START_MS, spike=False, incidents=(incident,)
    )
    begin, end = incident.window_ms(START_MS)
    report = backtest(tmp_path, config)

    matching = [
        a
        for a in report["alerts"]
        if a["alertname"] == alertname and labels.items() <= a["labels"].items()
    ]
    in_time = [a for a in matching if begin <= a["starts_at"] <= begin + PAGE_WITHIN_MS]
    assert in_time, (
        f"{alertname} did not fire within 3 minutes of {kind} at +80m; fired: "
        + describe(report["alerts"], begin)
    )
    first = min(in_time, key=lambda a: a["starts_at"])
    assert first["ends_at"] is not None and end <= first["ends_at"] <= end + RESOLVE_WITHIN_MS, (
        f"{alertname} should resolve within 10 minutes of the incident end: "
        + describe([first], begin)
    )


def test_the_drill_day_without_its_incident_pages_no_business_alert(tmp_path: Path) -> None:
    config = SimConfig(rate=50, duration_s=7200, start_ms=START_MS, spike=False)
    report = backtest(tmp_path, config)
    business = [a for a in report["alerts"] if a["labels"].get("category") == "business"]
    assert not business, "business alerts without an incident: " + describe(
        business, config.start_ms
    )


def test_a_sale_day_without_incidents_pages_no_business_alert(tmp_path: Path) -> None:
    """22:00 to 01:00 shop time, the sale starting at midnight (×40 within a minute)."""
    config = SimConfig(rate=20, duration_s=3 * 3600, start_ms=START_MS - 4 * 3600_000)
    report = backtest(tmp_path, config)
    business = [a for a in report["alerts"] if a["labels"].get("category") == "business"]
    assert not business, "business alerts on a normal day: " + describe(business, config.start_ms)
