"""Every dashboard query and every rule, run for real.

One worker (``salewatch worker`` subprocess, metrics on the port the stack's Prometheus
scrapes) gets a short burst of valid events on all four topics — six sessions through the
whole funnel, with page loads, carts, orders, payments (one method failing), tickets —
produced to its isolated topics. Then:

(a) every PromQL expression of every panel and of every recording/alerting rule is sent to
    the live Prometheus and must evaluate without error; an expression must also return
    data unless it is explained: it needs history (an ``offset``, directly or through the
    rules it reads: nothing is a week or ten minutes old here), it reads a metric the
    worker has not exported yet (active-user gauges appear when a minute closes, write
    errors never happen), it reads ``ALERTS``, or it is an alert condition (empty = not
    firing; the live Prometheus' own evaluation of every rule must be healthy). The
    explained empties are printed (``-s``) and reported in the test's output on failure;
(b) every SQL panel query (macros and variables expanded like Grafana does, filters at
    "All", the sale's constants placed around the fed events: ``with_test_sale``) and every
    SQL block of alerts/runbook.md runs on the real ClickHouse 18.16 over the rows the
    worker stored — raw tables and, once its first minute closed, the rollups — and must
    return rows (the runbook's may be empty); the same queries run on current ClickHouse
    (chdb) over the same events when chdb is importable. Annotation expressions are PromQL
    and run in (a): the sale's calendar ones are empty outside its dates.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.events.contract import Topic
from streams.settings import Settings
from tests.integration.support import (
    clickhouse,
    isolated_settings,
    prometheus_query,
    run_cli,
    running_worker,
    wait_for_rollups,
    wait_until,
)
from tests.unit.dashboards.test_dashboards import (
    promql_queries,
    runbook_queries,
    seed_events,
    sql_queries,
    with_test_sale,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGE_KEY = {"clicks": "session_id", "carts": "session_id", "orders": "order_id"}
HISTORY = re.compile(r"\boffset\b")


def rule_expressions() -> list[tuple[str, str, bool]]:
    """(rule name, expr, is an alert) of every rule file Prometheus loads."""
    out = []
    for path in sorted((REPO_ROOT / "alerts").glob("*.rules.yml")):
        if path.name.startswith("."):
            continue  # a delivery test's temporary rule file
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule["alert"]
                out.append((f"{path.name}: {name}", rule["expr"], "alert" in rule))
    return out


RECORDING_EXPRS = {
    name.split(": ", 1)[1]: expr for name, expr, alert in rule_expressions() if not alert
}


def names_in(expr: str) -> set[str]:
    from tests.unit.test_alert_rules import referenced_names

    return referenced_names(expr)


def raw_metrics(expr: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The raw metric names an expression reads, through the recording rules it uses."""
    out: set[str] = set()
    for name in names_in(expr):
        if name in RECORDING_EXPRS and name not in seen:
            out |= raw_metrics(RECORDING_EXPRS[name], seen | {name})
        elif ":" not in name:
            out.add(name)
    return out


def needs_history(expr: str, seen: frozenset[str] = frozenset()) -> bool:
    if HISTORY.search(expr):
        return True
    return any(
        needs_history(RECORDING_EXPRS[n], seen | {n})
        for n in names_in(expr)
        if n in RECORDING_EXPRS and n not in seen
    )


@dataclass
class Fed:
    """The live stack after the burst: settings of the isolated run and what was fed."""

    settings: Settings
    exported: set[str]  # sample names on the worker's /metrics
    events: list[tuple[Topic, dict[str, Any]]]


def produce(settings: Settings, events: list[tuple[Topic, dict[str, Any]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    for topic, event in events:
        key = str(event[MESSAGE_KEY.get(topic, "ticket_id")]).encode()
        producer.send(settings.kafka_topic(topic), key=key, value=orjson.dumps(event))
    producer.flush(timeout=30)
    producer.close()


def exported_names(metrics_text: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def fed(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    # windows close (and their rollups reach ClickHouse) soon after the minute ends
    settings = isolated_settings(stack_settings, allowed_lateness_s=5)
    result = run_cli(settings, "migrate")
    assert result.returncode == 0, result.stderr
    # the stack's Prometheus loads alerts/*.rules.yml: make it read the current files
    urllib.request.urlopen(
        urllib.request.Request(f"{settings.prometheus_url}/-/reload", method="POST"), timeout=10
    ).close()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    try:
        with running_worker(settings, log) as worker:
            now_ms = int(time.time() * 1000)
            events = seed_events(now_ms, step_ms=2_000)
            produce(settings, events)
            client = clickhouse(settings)
            wait_until(
                lambda: client.execute("SELECT count() FROM orders_raw FINAL")[0][0],
                lambda n: n >= 12,
                60,
                "the orders in ClickHouse",
            )
            client.disconnect()
            instance = f"127.0.0.1:{settings.metrics_port}"
            wait_until(
                lambda: prometheus_query(
                    settings, f'salewatch_funnel_sessions_total{{instance="{instance}"}}'
                ),
                bool,
                60,
                "Prometheus to scrape the worker's funnel counters",
            )
            # two more scrapes: rate() needs two samples; one more rule evaluation
            time.sleep(3 * settings.scrape_interval_s)
            wait_until(
                lambda: prometheus_query(settings, "step:salewatch_funnel_sessions:rate1m"),
                bool,
                30,
                "the recording rules to be evaluated",
            )
            yield Fed(settings, exported_names(worker.metrics_text()), events)
    finally:
        admin = clickhouse(settings.model_copy(update={"clickhouse_database": "default"}))
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()


def is_exported(metric: str, exported: set[str]) -> bool:
    return any(name == metric or name.startswith(metric + "_") for name in exported)


EXPLAINED_EMPTY: list[str] = []
# rules that are empty by design below a traffic floor the fed stream (6 payments) does not
# reach; whether they returned data depended on other tests' traffic still in Prometheus
BELOW_ITS_VOLUME_GUARD = {
    "salewatch-recording.rules.yml: payment_method:salewatch_payment_success:ratio_rate2m_others": (
        "a low-traffic guard: needs >= 20 attempts of the other methods in 2 minutes"
    ),
    "salewatch-recording.rules.yml: "
    "payment_method:salewatch_payment_order_failure:ratio_rate10m_confident": (
        "a volume guard: only 10-minute windows with >= 100 orders of the method count"
    ),
    "salewatch-recording.rules.yml: "
    "payment_method:salewatch_payment_order_failure:ratio_rate10m_others": (
        "a volume guard: needs >= 40 orders of the other methods in 10 minutes"
    ),
    "salewatch-recording.rules.yml: topic:salewatch_event_lag_seconds:p90_rate1m": (
        "a volume guard: needs >= 10 events of the topic per minute"
    ),
}


def check_promql(fed: Fed, where: str, expr: str, *, alert: bool = False) -> None:
    result = prometheus_query(fed.settings, expr)  # raises unless status == success
    if result:
        return
    missing = sorted(
        m for m in raw_metrics(expr) if m != "ALERTS" and not is_exported(m, fed.exported)
    )
    if alert:
        reason = "alert condition: not firing"
    elif not names_in(expr):
        reason = "a calendar (annotation of the sale): empty outside its dates"
    elif needs_history(expr):
        reason = "needs history (offset)"
    elif "count_over_time(" in expr:
        reason = "needs minutes of history (a count_over_time guard of its baseline)"
    elif missing:
        reason = f"not exported yet: {', '.join(missing)}"
    elif "ALERTS" in names_in(expr):
        reason = "no alert firing"
    elif where in BELOW_ITS_VOLUME_GUARD:
        reason = BELOW_ITS_VOLUME_GUARD[where]
    else:
        pytest.fail(f"{where}: `{expr}` returned no data although its metrics are fed")
    EXPLAINED_EMPTY.append(f"{where}: {reason}")
    print(f"empty, explained: {where}: {reason}")


@pytest.mark.parametrize(("where", "expr"), promql_queries(), ids=[w for w, _ in promql_queries()])
def test_panel_promql_evaluates_on_the_live_prometheus(fed: Fed, where: str, expr: str) -> None:
    check_promql(fed, where, expr)


@pytest.mark.parametrize(
    ("where", "expr", "alert"), rule_expressions(), ids=[w for w, _, _ in rule_expressions()]
)
def test_rule_expression_evaluates_on_the_live_prometheus(
    fed: Fed, where: str, expr: str, alert: bool
) -> None:
    check_promql(fed, where, expr, alert=alert)


def test_prometheus_evaluates_every_rule_healthily(fed: Fed) -> None:
    url = f"{fed.settings.prometheus_url}/api/v1/rules"
    with urllib.request.urlopen(url, timeout=10) as response:
        groups = orjson.loads(response.read())["data"]["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"]}
    expected = {name.split(": ", 1)[1] for name, _, _ in rule_expressions()}
    assert expected <= loaded, f"not loaded: {expected - loaded}"
    unhealthy = [
        (r["name"], r.get("lastError"))
        for g in groups
        for r in g["rules"]
        if r["name"] in expected and r.get("health") != "ok"
    ]
    assert not unhealthy


def test_the_fed_metrics_reach_the_business_recording_rules(fed: Fed) -> None:
    """The point of the burst: business numbers, not only pipeline ones, have data."""
    for expr in (
        ":salewatch_conversion:ratio_rate5m",
        ":salewatch_paid_amount:rate5m",
        "payment_method:salewatch_payment_success:ratio_rate2m",
        "page_type:salewatch_page_load_seconds:p75_rate2m",
        ":salewatch_tickets_opened:rate5m",
    ):
        assert prometheus_query(fed.settings, expr), expr


# ------------------------------------------------------------------ SQL


@pytest.fixture(scope="module")
def rollups(fed: Fed) -> Fed:
    """The drill-down, the sale panels and the office ticker read the rollups, which the
    worker writes when a minute closes (+ the 5 s lateness of this run): wait for them
    here, after the PromQL tests (module order), whose 2-minute rates must not age."""
    client = clickhouse(fed.settings)
    try:
        wait_for_rollups(client)
    finally:
        client.disconnect()
    return fed


def _runnable(sql: str) -> str:
    """The query with the sale placed around the fed events, over the last day."""
    now_s = int(time.time())
    return with_test_sale(sql, now_s, now_s - 86_400, now_s + 60)


@pytest.mark.parametrize(("where", "sql"), sql_queries(), ids=[w for w, _ in sql_queries()])
def test_sql_panel_runs_on_clickhouse_18_16(rollups: Fed, where: str, sql: str) -> None:
    client = clickhouse(rollups.settings)
    try:
        rows = client.execute(_runnable(sql))
    finally:
        client.disconnect()
    assert rows, f"{where}: no rows over the events the worker stored"


@pytest.mark.parametrize(("where", "sql"), runbook_queries(), ids=[w for w, _ in runbook_queries()])
def test_runbook_sql_runs_on_clickhouse_18_16(fed: Fed, where: str, sql: str) -> None:
    database = fed.settings.clickhouse_database
    client = clickhouse(fed.settings)
    try:
        client.execute(
            sql.replace("salewatch.", f"{database}.").replace("'salewatch'", f"'{database}'")
        )
    finally:
        client.disconnect()


def test_sql_panels_run_on_current_clickhouse_too(fed: Fed, tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    from tests.unit.dashboards.test_dashboards import chdb_database, run_on_chdb

    # events up to now, not to when the module was imported: the test sale around them is
    # placed at the time of the query (a full suite reaches here half an hour later)
    session = chdb_database(tmp_path / "chdb", "salewatch", now_ms=int(time.time()) * 1000)
    try:
        for where, sql in sql_queries():
            assert run_on_chdb(session, "salewatch", _runnable(sql)), where
    finally:
        session.close()
