"""Live drill: a payment outage, injected at real speed into the live local stack, pages
through Prometheus and Alertmanager to the webhook.

The sale nights (test_sale_nights.py) replay simulated nights in event time; this one
runs the real path once, as on a sale night: ``salewatch simulate --speed 1`` → Kafka → a
real ``salewatch worker`` (own topics, database and consumer group) → ``/metrics`` on the
port the stack's Prometheus scrapes → the project's rules in ``alerts/`` → Alertmanager →
the webhook of alerts/alertmanager.yml (127.0.0.1:5001, received here).

Timeline (~5.5 minutes in all): normal traffic for ``LEAD_S`` (the 2-minute rates fill),
then ``payment_outage:METHOD`` until the page arrives (alipay or wechat_pay, see
``DRILL_METHODS``). The worker starts cold: with no 6-hour median and no trailing hour in
Prometheus, ``SalePaymentFailureSpike`` compares the method's share of failed orders with
the other methods' share over 10 minutes plus 7 points (``ratio_rate10m_others``, the
rule's cold-start normal).

Pass: ``SalePaymentFailureSpike{payment_method=METHOD}`` is firing in Prometheus and
reaches the webhook within bounds derived from the rule and the stack's configuration
(``for:``, evaluation and scrape intervals, ``group_wait``); no other business alert starts
once the outage runs. One that pends or fires already in the normal traffic before it is
printed, not counted, also when it comes back later: its baseline comes from the shared
Prometheus' trailing hour, e.g. another test's orders without visits made
SaleOrdersStalled flap through a whole drill. Control, in the same run: just before the
incident the alert's condition is evaluable (enough attempts, a baseline) and not met — so
the incident, not a cold start or another test's leftovers, makes it page.

Measured (a clean clone, CI-like, 2026-12-03): from a cold start pending +39 s, firing
+55 s, at the webhook +69 s after the incident start.

The stack is shared. Business alerts carry no instance label (the rules sum over workers),
so another worker exporting payments at the same time would mix into the ratios: the drill
waits (3 minutes at most) until none does, and names any that turns up during a failed run.
It takes whichever scraped port (9109, else 9108) is free. Alerts already active before the
drill are not counted against it. At the end it resolves its alert in Alertmanager.
Run it alone with ``python -m pytest tests/drills -k live -s``; by hand: ``make drill``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from tests.integration.conftest import isolated, stack_settings  # noqa: F401  (fixtures)
from tests.integration.support import (
    prometheus_query,
    running_worker,
    settings_env,
    stop_group,
    wait_until,
)
from tests.integration.test_alert_delivery import post, webhook  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
ALERT = "SalePaymentFailureSpike"
# the failing method: of these two (enough attempts at RATE for the guard), the one whose
# trailing hour holds no earlier drill's outage, or the lesser one (each drill's outage
# lowers its method's baseline for an hour, and so delays the next page)
DRILL_METHODS = ("alipay", "wechat_pay")
# base events/s, flat (no diurnal curve, no spike): per 2 minutes ~70 alipay and ~55
# wechat_pay payment attempts normally, more in an outage (shoppers retry); the rule needs
# 20, and the other methods' baseline 20 of theirs.
RATE = 100
# One region, so that the counters have few label sets: Prometheus' rate() cannot count
# the first increment of a series it has not seen before, and a cold worker at a small rate
# creates series all the time (4 channels x 10 regions per method and event type would
# hide most of the first minutes' payments, and of the outage's first failures).
REGIONS = ["CN-GD"]
LEAD_S = 120  # normal traffic first: the 2-minute rates and the guard are full
SIM_DURATION_S = 600  # the simulator is stopped once the page has arrived
SEED = 7
SLACK_S = 15.0  # process start-up, Kafka/worker batching, HTTP
# the rule's inputs (alerts/salewatch-recording.rules.yml): shares of FAILED orders
RATIO_RECORD = "payment_method:salewatch_payment_order_failure:ratio_rate2m"
BASELINE_RECORD = "payment_method:salewatch_payment_order_failure:ratio_normal"
TRAILING_RECORD = "payment_method:salewatch_payment_order_failure:ratio_trailing1h"
OTHERS_RECORD = "payment_method:salewatch_payment_order_failure:ratio_rate10m_others"
ORDERS_RECORD = "payment_method:salewatch_payment_orders:increase2m"
# enough orders per 2 minutes that an outage clears the rule's guards (>= 5 failed orders,
# 4 Poisson sd above normal) many times over
MIN_ORDERS_2M = 20
MAX_NORMAL = 0.35
OTHERS_WAIT_S = 180


def business_alert_rule() -> dict[str, Any]:
    for path in sorted((REPO / "alerts").glob("*.rules.yml")):
        if path.name.startswith("."):
            continue
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == ALERT:
                    return dict(rule)
    raise AssertionError(f"no alert {ALERT} in alerts/*.rules.yml")


def seconds(text: str) -> float:
    """A Prometheus duration of one unit (``1m``, ``10s``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {text!r}")


@dataclass(frozen=True)
class Bounds:
    """How late the page may be, from the rule and the configuration of the live stack."""

    window_s: float  # the live ratio's range: by its end the window holds only the outage
    scrape_s: float
    evaluation_s: float
    for_s: float
    group_wait_s: float

    @property
    def firing_s(self) -> float:
        """Incident start → firing in Prometheus: the window fills, the sample is scraped,
        the recording then the alerting rule evaluate, and the condition holds for ``for:``."""
        return self.window_s + self.scrape_s + 2 * self.evaluation_s + self.for_s + SLACK_S

    @property
    def delivered_s(self) -> float:
        """Firing → webhook: Prometheus sends on its next evaluation, Alertmanager waits
        ``group_wait`` (``group_interval`` when the group already exists) and posts."""
        return self.evaluation_s + self.group_wait_s + SLACK_S


def live_bounds(settings: Settings, group_exists: bool) -> Bounds:
    rule = business_alert_rule()
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/status/config") as response:
        config = yaml.safe_load(json.loads(response.read())["data"]["yaml"])
    route = yaml.safe_load((REPO / "alerts" / "alertmanager.yml").read_text())["route"]
    expr = " ".join(rule["expr"].split())
    assert "ratio_rate2m" in expr, f"{ALERT} no longer uses the 2-minute ratio: {expr}"
    return Bounds(
        window_s=120.0,
        scrape_s=max(
            seconds(job.get("scrape_interval", config["global"]["scrape_interval"]))
            for job in config["scrape_configs"]
        ),
        evaluation_s=seconds(config["global"]["evaluation_interval"]),
        for_s=seconds(rule["for"]),
        group_wait_s=seconds(route["group_interval" if group_exists else "group_wait"]),
    )


@dataclass
class Timeline:
    """What happened when (epoch seconds), printed as it happens and again at the end."""

    incident_at: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, at: float, what: str) -> None:
        self.lines.append((at, what))
        print(self.format(at, what), flush=True)

    def format(self, at: float, what: str) -> str:
        clock = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
        return f"  {clock} UTC  {at - self.incident_at:+7.1f}s  {what}"

    def render(self) -> str:
        rows = [self.format(at, what) for at, what in sorted(self.lines)]
        return "live drill timeline (offsets from the incident start):\n" + "\n".join(rows)


@contextmanager
def running_simulator(settings: Settings, log_path: Path, drill: Drill) -> Iterator[int]:
    """``salewatch simulate`` at real speed from now (yields the simulated start, epoch
    ms), the outage from ``LEAD_S`` on; interrupted (it flushes first) on exit."""
    start_ms = time.time_ns() // 1_000_000
    args = [
        f"--rate={RATE}",
        f"--duration={SIM_DURATION_S}s",
        "--speed=1",
        f"--start={start_ms}",
        "--no-diurnal",
        "--no-spike",
        f"--seed={SEED}",
        f"--incident={drill.incident}",
        "--quiet",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "simulate", *args],
            env={**os.environ, **settings_env(settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield start_ms
            if proc.poll() is not None:
                raise AssertionError(f"simulate exited early:\n{log_path.read_text()[-2000:]}")
        finally:
            stop_group(proc, signal.SIGINT, timeout_s=30)


def prometheus_alerts(settings: Settings) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/alerts", timeout=5) as resp:
        return list(json.loads(resp.read())["data"]["alerts"])


def key(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass(frozen=True)
class Drill:
    """The payment method this run takes down."""

    method: str

    @property
    def incident(self) -> str:
        return f"payment_outage:{self.method}@{LEAD_S}s+{SIM_DURATION_S - LEAD_S}s"

    @property
    def selector(self) -> str:
        return f'{{payment_method="{self.method}"}}'

    def ours(self, labels: dict[str, str]) -> bool:
        return labels.get("alertname") == ALERT and labels.get("payment_method") == self.method

    def slow_burn(self, labels: dict[str, str]) -> bool:
        """The same outage's ticket (SalePaymentFailureElevated of the method, muted by
        the page in Alertmanager): part of this incident, not another alert."""
        return (
            labels.get("alertname") == "SalePaymentFailureElevated"
            and labels.get("payment_method") == self.method
        )


def pick_drill(settings: Settings) -> Drill:
    def baseline(method: str) -> float:
        value = one_value(settings, f'{TRAILING_RECORD}{{payment_method="{method}"}}')
        return -1.0 if value is None else value

    return Drill(min(DRILL_METHODS, key=baseline))


def epoch(rfc3339: str) -> float:
    """An RFC 3339 time from Prometheus/Alertmanager (nanoseconds cut) in epoch seconds."""
    text = rfc3339.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = head + "." + tail[: min(digits, 6)] + tail[digits:]
    return datetime.fromisoformat(text).timestamp()


def one_value(settings: Settings, promql: str) -> float | None:
    result = prometheus_query(settings, promql)
    return float(result[0]["value"][1]) if result else None


def ensure_rules_loaded(settings: Settings) -> None:
    """The stack's Prometheus must evaluate this checkout's rules (it reads alerts/ at start
    and on reload; the cold-start baseline may be newer than a long-running stack)."""

    def loaded() -> bool:
        url = f"{settings.prometheus_url}/api/v1/rules?type=record"
        with urllib.request.urlopen(url, timeout=5) as response:
            groups = json.loads(response.read())["data"]["groups"]
        return OTHERS_RECORD in {r["name"] for g in groups for r in g["rules"]}

    if not loaded():
        post(f"{settings.prometheus_url}/-/reload")
        wait_until(loaded, bool, 15, "Prometheus to load alerts/ (promtool check rules alerts/)")


def free_scraped_port(settings: Settings, timeout_s: float = 120) -> int:
    """A port the stack's Prometheus scrapes and nobody listens on, the test port (9109)
    first; other tests' workers use it too, so wait a little for one to become free."""
    ports = [int(t.rsplit(":", 1)[1]) for t in reversed(settings.metrics_targets)]

    def free(port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind((settings.metrics_host, port))
            except OSError:
                return False
            return True

    found: list[int] = wait_until(
        lambda: [p for p in ports if free(p)], bool, timeout_s, f"one of ports {ports} to be free"
    )
    return found[0]


def other_payment_workers(settings: Settings) -> list[str]:
    """Scraped instances other than the drill's that count payments right now."""
    result = prometheus_query(
        settings,
        'sum by (instance) (rate(salewatch_orders_total{event_type=~"payment_.*"}[1m])) > 0',
    )
    mine = f"{settings.metrics_host}:{settings.metrics_port}"
    return [r["metric"]["instance"] for r in result if r["metric"]["instance"] != mine]


def resolve_in_alertmanager(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    """End the drill's alert in Alertmanager rather than leave it until it times out.
    Prometheus resolves it by itself once the stopped worker's last samples have left the
    2-minute window (a resend meanwhile only re-opens it until then)."""
    if alerts:
        now = datetime.now(UTC).isoformat()
        post(
            f"{settings.alertmanager_url}/api/v2/alerts",
            [{"labels": a["labels"], "startsAt": a["startsAt"], "endsAt": now} for a in alerts],
        )


@dataclass
class Observed:
    """What the drill saw while the outage ran."""

    pending_at: float | None = None
    firing_at: float | None = None
    delivered_at: float | None = None
    delivered: dict[str, Any] | None = None
    receiver: str | None = None
    others: dict[str, dict[str, Any]] = field(default_factory=dict)  # new in the outage
    interference: set[str] = field(default_factory=set)  # other workers counting payments


def watch(
    drill: Drill,
    settings: Settings,
    received: list[tuple[str, dict[str, Any]]],
    timeline: Timeline,
    already_active: set[str],
    deadline: float,
) -> Observed:
    """Poll Prometheus (1 s) and the webhook (0.25 s) until the page arrives or ``deadline``."""
    seen = Observed()
    next_prometheus = 0.0
    while time.time() < deadline and seen.delivered is None:
        now = time.time()
        if now >= next_prometheus:
            next_prometheus = now + 1.0
            seen.interference.update(other_payment_workers(settings))
            for alert in prometheus_alerts(settings):
                labels = alert["labels"]
                if drill.ours(labels):
                    if seen.pending_at is None:
                        seen.pending_at = epoch(alert["activeAt"])
                        timeline.mark(
                            seen.pending_at,
                            f"{ALERT}{{payment_method={drill.method}}} pending in Prometheus",
                        )
                    if alert["state"] == "firing" and seen.firing_at is None:
                        seen.firing_at = now
                        timeline.mark(now, "firing in Prometheus (seen by a 1 s poll)")
                elif (
                    labels.get("category") == "business"
                    and key(labels) not in already_active
                    and not drill.slow_burn(labels)
                ):
                    seen.others.setdefault(key(labels), alert)
        for _, payload in list(received):
            for alert in payload["alerts"]:
                if (
                    alert["status"] == "firing"
                    and drill.ours(alert["labels"])
                    and epoch(alert["startsAt"]) >= timeline.incident_at - SLACK_S
                ):
                    seen.delivered, seen.receiver = alert, payload["receiver"]
        if seen.delivered is not None:
            seen.delivered_at = time.time()
            timeline.mark(seen.delivered_at, f"received by the webhook (receiver {seen.receiver})")
        time.sleep(0.25)
    return seen


@dataclass(frozen=True)
class Control:
    """The rule's inputs for the method just before the incident, and its verdict."""

    orders_2m: float | None
    ratio: float | None
    baseline: float | None
    baseline_from: str
    condition_met: bool
    alert_active: bool


def business_alerts_before(settings: Settings, timeline: Timeline, active: set[str]) -> None:
    """Until 3 s before the incident, add to ``active`` every business alert that pends or
    fires: those are not the outage's doing (e.g. another test's data in a trailing hour)."""
    while time.time() < timeline.incident_at - 3:
        for alert in prometheus_alerts(settings):
            labels = alert["labels"]
            if labels.get("category") == "business" and key(labels) not in active:
                active.add(key(labels))
                timeline.mark(time.time(), f"{key(labels)} active before the incident")
        time.sleep(min(2.0, max(0.0, timeline.incident_at - 3 - time.time())))


def control_sample(drill: Drill, settings: Settings, timeline: Timeline) -> Control:
    """Sampled 3 s before the incident: the condition must be evaluable and false."""
    time.sleep(max(0.0, timeline.incident_at - 3 - time.time()))
    expr = business_alert_rule()["expr"]
    control = Control(
        orders_2m=one_value(settings, f"{ORDERS_RECORD}{drill.selector}"),
        ratio=one_value(settings, f"{RATIO_RECORD}{drill.selector}"),
        baseline=one_value(settings, f"{BASELINE_RECORD}{drill.selector}"),
        baseline_from=(
            "its trailing hour"
            if one_value(settings, f"{TRAILING_RECORD}{drill.selector}") is not None
            else "the other methods (cold start)"
        ),
        condition_met=any(
            r["metric"].get("payment_method") == drill.method
            for r in prometheus_query(settings, expr)
        ),
        alert_active=any(drill.ours(a["labels"]) for a in prometheus_alerts(settings)),
    )
    timeline.mark(
        time.time(),
        f"control: {control.orders_2m or 0:.0f} {drill.method} orders per 2 min, failed"
        f" {control.ratio or 0:.0%}, normal {control.baseline or 0:.0%} from"
        f" {control.baseline_from}; condition met: {control.condition_met}",
    )
    return control


def assert_control(control: Control, tmp_path: Path) -> None:
    assert control.orders_2m is not None and control.orders_2m >= MIN_ORDERS_2M, (
        f"too little traffic before the incident to show the rule quiet: {control}"
        + log_tails(tmp_path)
    )
    assert control.ratio is not None and control.baseline is not None, control
    # the rule pages above 2.5 x the method's normal: a normal above ~35 % (another test's
    # failures in the shared Prometheus' trailing hour) leaves no room for any outage
    assert control.baseline <= MAX_NORMAL, (
        f"the {control.baseline_from} gives a normal failed share of {control.baseline:.0%}:"
        " another test's payment failures are in the shared Prometheus' last hour; rerun"
        f" on a fresh stack (salewatch stack down; remove its prometheus data): {control}"
    )
    assert not control.condition_met and not control.alert_active, (
        f"{ALERT} was already on before the incident: {control}"
    )


def log_tails(tmp_path: Path) -> str:
    return "".join(
        f"\n--- {name} (end) ---\n{(tmp_path / name).read_text(errors='replace')[-1500:]}"
        for name in ("worker.log", "simulate.log")
        if (tmp_path / name).exists()
    )


def run_drill(
    drill: Drill,
    settings: Settings,
    received: list[tuple[str, dict[str, Any]]],
    tmp_path: Path,
    bounds: Bounds,
    already_active: set[str],
) -> tuple[Observed, Timeline]:
    """Worker, then simulator; the control sample; then watch until the page arrives."""
    delivered: list[dict[str, Any]] = []
    try:
        with (
            running_worker(settings, tmp_path / "worker.log"),
            running_simulator(settings, tmp_path / "simulate.log", drill) as start_ms,
        ):
            timeline = Timeline(incident_at=start_ms / 1000 + LEAD_S)
            timeline.mark(start_ms / 1000, f"simulate started (seed {SEED}, {RATE} events/s)")
            # fail now rather than watch for minutes without a valid control
            business_alerts_before(settings, timeline, already_active)
            assert_control(control_sample(drill, settings, timeline), tmp_path)
            timeline.mark(timeline.incident_at, f"incident {drill.incident} starts")
            deadline = timeline.incident_at + bounds.firing_s + bounds.delivered_s
            seen = watch(drill, settings, received, timeline, already_active, deadline)
            if seen.delivered is not None:
                delivered.append(seen.delivered)
    finally:
        resolve_in_alertmanager(settings, delivered)
    return seen, timeline


def test_payment_outage_pages_through_alertmanager_at_real_speed(
    isolated: Settings,  # noqa: F811
    webhook: list[tuple[str, dict[str, Any]]],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = isolated.model_copy(
        update={"metrics_port": free_scraped_port(isolated), "regions": REGIONS}
    )
    ensure_rules_loaded(settings)
    # business alerts sum over workers: another worker's payments would mix with the
    # drill's (other tests' workers come and go; a demo worker must be stopped)
    wait_until(
        lambda: other_payment_workers(settings),
        lambda others: not others,
        OTHERS_WAIT_S,
        "other workers to stop counting payments (a demo? `make demo-stop`)",
    )
    with urllib.request.urlopen(f"{settings.alertmanager_url}/api/v2/alerts/groups") as resp:
        group_exists = any(g["labels"].get("alertname") == ALERT for g in json.loads(resp.read()))
    bounds = live_bounds(settings, group_exists)
    drill = pick_drill(settings)
    already_active = {
        key(a["labels"])
        for a in prometheus_alerts(settings)
        if a["labels"].get("category") == "business"
    }
    with capsys.disabled():
        print(f"\nlive drill: {drill.incident} at {RATE} events/s; bounds {bounds}", flush=True)
        seen, timeline = run_drill(drill, settings, webhook, tmp_path, bounds, already_active)
        print(timeline.render(), flush=True)

    context = (
        timeline.render()
        + (
            f"\nother workers counted payments during the drill: {sorted(seen.interference)}"
            if seen.interference
            else ""
        )
        + "\nwebhook received: "
        + "; ".join(
            f"{path} {payload.get('receiver')} "
            + ",".join(f"{a['labels'].get('alertname')}:{a['status']}" for a in payload["alerts"])
            for path, payload in webhook
        )
    )
    assert seen.firing_at is not None, (
        f"{ALERT} did not fire in Prometheus within {bounds.firing_s:.0f} s of the incident\n"
        + context
    )
    assert seen.pending_at is not None and seen.pending_at >= timeline.incident_at - 5, context
    assert seen.firing_at - timeline.incident_at <= bounds.firing_s, context
    assert seen.delivered is not None and seen.delivered_at is not None, (
        f"{ALERT} fired but did not reach the webhook within {bounds.delivered_s:.0f} s\n" + context
    )
    assert seen.delivered_at - seen.firing_at <= bounds.delivered_s, context
    labels = seen.delivered["labels"]
    assert labels["payment_method"] == drill.method
    assert labels["severity"] == "page" and labels["category"] == "business"
    assert seen.receiver == "pager"
    assert (
        seen.delivered["annotations"]["runbook_url"] == "alerts/runbook.md#salepaymentfailurespike"
    )
    assert not seen.others, f"other business alerts started during the drill: {list(seen.others)}"
