"""The Grafana dashboards: committed JSON = code, SDK round-trip, ids, data sources, every
PromQL valid for promtool and reading only declared metrics and recorded rules, every SQL
query run on current ClickHouse (chdb) over seeded raw tables, and ``dashboards push``.

**Not tested against the real service: the push to Grafana.** No Grafana server can run on
these machines (not in Debian, PyPI or npm), so ``push`` is tested against a minimal local
HTTP server that records the calls and answers like Grafana's API (folders,
``POST /api/dashboards/db``): the paths, bodies (uid match, ``overwrite``, folder) and the
``Authorization`` header are checked, not what a real Grafana does with them.
The queries are tested for real: PromQL here by promtool and in
tests/integration/test_dashboard_queries.py against the live Prometheus; SQL here on chdb
and there on ClickHouse 18.16.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm

from streams import dashboards
from streams.cli.dashboards import register
from streams.clickhouse.raw_rows import RAW_COLUMNS, RAW_TABLE, raw_row
from streams.dashboards import clickhouse, push
from streams.dashboards.variables import expand_variables
from streams.events.contract import Topic
from streams.metrics.defs import ALL_METRICS
from tests.unit.dashboards.macros import expand_macros
from tests.unit.events_factory import make_event
from tests.unit.test_alert_rules import RECORD_NAMES, referenced_names

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMITTED = {
    name: json.loads((REPO_ROOT / "dashboards" / name).read_text())
    for name in dashboards.DASHBOARDS
}
EXPECTED_UIDS = {
    "war-room.json": "salewatch-war-room",
    "office-screen.json": "salewatch-office",
    "drill-down.json": "salewatch-drill-down",
}
DATASOURCES = {"prometheus": "prometheus", "clickhouse": "grafana-clickhouse-datasource"}
# Grafana variables that PromQL panels may use, with the value tests give them
GRAFANA_VARIABLES = {"$__range": "1h"}


def all_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in board.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in all_panels(board) for t in p.get("targets", [])]


def annotations(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board.get("annotations", {}).get("list", []))


def promql_queries() -> list[tuple[str, str]]:
    """(dashboard/panel id, PromQL with Grafana variables filled in) of every panel and
    every annotation; filters at "All"."""
    out = []
    for name, board in COMMITTED.items():
        exprs = [
            (f"{title} [{target['refId']}]", target["expr"])
            for title, target in targets(board)
            if target["datasource"]["uid"] == "prometheus"
        ]
        exprs += [(f"annotation {a['name']}", a["expr"]) for a in annotations(board)]
        for where, expr in exprs:
            expr = expand_variables(expr, board)
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            out.append((f"{name}: {where}", expr))
    return out


# the sale's constants are left in the SQL (``${sale_start}``…): a test places the sale
# around its own data with ``with_test_sale``
SALE_CONSTANTS = (
    "sale_start",
    "sale_end",
    "previous_start",
    "gmv_target",
    "hot_item_min_views",
    "hot_item_max_cart_rate",
)


def sql_queries() -> list[tuple[str, str]]:
    """(dashboard/panel id, raw SQL with the plugin's macros and the sale's constants) of
    every ClickHouse panel; filters at "All"."""
    keep = {c: "${" + c + "}" for c in SALE_CONSTANTS}
    return [
        (f"{name}: {title} [{target['refId']}]", expand_variables(target["rawSql"], board, **keep))
        for name, board in COMMITTED.items()
        for title, target in targets(board)
        if target["datasource"]["uid"] == "clickhouse"
    ]


def with_test_sale(sql: str, now_s: int, from_s: int, to_s: int) -> str:
    """``sql`` runnable over data around ``now_s``: a sale (and a "previous" one, the same
    hour) from 30 minutes before to 30 minutes after, a small target, every item with a
    view "hot"; then the plugin's macros for ``[from_s, to_s]``."""
    values = {
        "sale_start": now_s - 1800,
        "sale_end": now_s + 1800,
        "previous_start": now_s - 1800,
        "gmv_target": 1000,
        "hot_item_min_views": 1,
        "hot_item_max_cart_rate": 0.5,
    }
    for name, value in values.items():
        sql = sql.replace("${" + name + "}", str(value))
    assert "${" not in sql, sql
    return expand_macros(sql, from_s, to_s)


# ------------------------------------------------------------------ JSON = code, SDK


def test_committed_json_equals_freshly_generated() -> None:
    assert dashboards.stale_files() == [], "run `salewatch dashboards generate`"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_json_round_trips_through_the_sdk(name: str) -> None:
    register_default_plugins()
    clickhouse.register()
    board = dm.Dashboard.from_json(COMMITTED[name])
    assert dashboards.to_json(board) == COMMITTED[name]
    panels = [p for p in board.panels or [] if isinstance(p, dm.Panel)]
    for panel in panels:
        for target in panel.targets or []:
            is_ch = isinstance(target, clickhouse.ClickHouseQuery)
            assert is_ch == (panel.datasource is not None and panel.datasource.uid == "clickhouse")


def test_uids_are_fixed_and_unique() -> None:
    uids = {name: board["uid"] for name, board in COMMITTED.items()}
    assert uids == EXPECTED_UIDS
    assert len(set(uids.values())) == len(uids)


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_panel_ids_and_titles_are_unique(name: str) -> None:
    panels = all_panels(COMMITTED[name])
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "the runbook refers to panels by title"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_every_datasource_is_prometheus_or_clickhouse(name: str) -> None:
    board = COMMITTED[name]
    refs = [p["datasource"] for p in all_panels(board) if "datasource" in p]
    refs += [t["datasource"] for _, t in targets(board)]
    assert refs
    for ref in refs:
        assert ref["uid"] in DATASOURCES, ref
        assert ref["type"] == DATASOURCES[ref["uid"]], ref
    for panel in all_panels(board):
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {panel["datasource"]["uid"]}


def test_the_three_dashboards_have_what_issue_5_asks_for() -> None:
    war = {p["title"] for p in all_panels(COMMITTED["war-room.json"])}
    assert {
        "Funnel: sessions per minute by step",
        "GMV per minute vs same time last week",
        "Orders per minute vs same time last week",
        "Payment success by method",
        "Page load p75 by page type",
        "Tickets opened per minute by kind",
        "Active alerts",
        "Pipeline freshness",
    } <= war
    assert any(t.startswith("Sales decomposition") for t in war)
    office = COMMITTED["office-screen.json"]
    assert office["refresh"] == "10s"
    assert [p["type"] for p in all_panels(office)] == ["stat"] * 6
    drill = all_panels(COMMITTED["drill-down.json"])
    assert all(p["datasource"]["uid"] == "clickhouse" for p in drill if p["type"] != "row")


def test_runbook_refers_to_existing_panels() -> None:
    """The runbook says "War room → **Panel title**": every such title must exist."""
    runbook = (REPO_ROOT / "alerts" / "runbook.md").read_text(encoding="utf-8")
    titles = {p["title"] for board in COMMITTED.values() for p in all_panels(board)}
    # a reference runs from "→" to the end of its sentence, possibly over a line break
    references = re.findall(r"→ ((?:\*\*[^*]+\*\*|[^.*→:])+)", runbook)
    named = {
        n.replace("\n", " ") for ref in references for n in re.findall(r"\*\*([^*]+)\*\*", ref)
    }
    assert len(named) >= 10
    assert named <= titles, f"runbook.md names panels that do not exist: {named - titles}"


# ------------------------------------------------------------------ PromQL


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("`promtool` not found; `apt-get install prometheus`", pytrace=False)
    return path


def test_every_promql_expression_is_valid_for_promtool(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule (the only offline PromQL
    parser at hand); the live Prometheus evaluates them in the integration test."""
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": expr}
        for i, (_, expr) in enumerate(promql_queries())
    ]
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("where", "expr"), promql_queries(), ids=[w for w, _ in promql_queries()])
def test_panels_read_declared_metrics_and_recorded_rules(where: str, expr: str) -> None:
    for name in referenced_names(expr):
        if name == "ALERTS":
            continue
        if ":" in name:
            assert name in RECORD_NAMES, f"{where}: no recording rule {name}"
        else:
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in ALL_METRICS or base in ALL_METRICS, f"{where}: undeclared {name}"


# ------------------------------------------------------------------ SQL on current ClickHouse

SEED_NOW_MS = int(time.time()) * 1000


def seed_events(
    now_ms: int = SEED_NOW_MS, step_ms: int = 60_000
) -> list[tuple[Topic, dict[str, Any]]]:
    """A few valid events of every topic and type the drill-down queries group by: six
    sessions ``step_ms`` apart up to ``now_ms``, each through the whole funnel."""
    events: list[tuple[Topic, dict[str, Any]]] = []
    for i in range(6):
        ts = now_ms - i * step_ms
        base = {"ts": ts, "session_id": f"s-{i}", "user_id": f"u-{i}"}
        channel = ("app", "web", "h5")[i % 3]
        events += [
            ("clicks", make_event("clicks", event_id=f"c-{i}", channel=channel, **base)),
            (
                "clicks",
                make_event(
                    "clicks",
                    event_id=f"cc-{i}",
                    page_type="checkout",
                    load_ms=900 + 500 * i,
                    # the Core Web Vitals of a page view measured in the browser
                    lcp_ms=900 + 500 * i,
                    inp_ms=120 + 100 * i,
                    cls=0.05 * i,
                    ttfb_ms=80 + 40 * i,
                    **base,
                ),
            ),
            # a "hot" item: viewed in every session, never put in a cart
            (
                "clicks",
                make_event("clicks", event_id=f"h-{i}", item_id="i-hot", channel=channel, **base),
            ),
            ("carts", make_event("carts", event_id=f"k-{i}", **base)),
            (
                "orders",
                make_event("orders", event_id=f"o-{i}", order_id=f"o-{i}", channel=channel, **base),
            ),
            (
                "orders",
                make_event(
                    "orders",
                    event_id=f"p-{i}",
                    order_id=f"o-{i}",
                    event_type="payment_succeeded" if i % 2 else "payment_failed",
                    failure_reason="timeout",
                    payment_method=("alipay", "card")[i % 2],
                    **base,
                ),
            ),
            (
                "tickets",
                make_event(
                    "tickets", event_id=f"t-{i}", ticket_id=f"t-{i}", order_id=f"o-{i}", **base
                ),
            ),
        ]
    return events


def json_each_row(topic: Topic, event: dict[str, Any]) -> str:
    row = raw_row(topic, event, partition=0, offset=0, now_s=event["ts"] // 1000)
    return json.dumps(dict(zip(RAW_COLUMNS[topic], row, strict=True)))


def chdb_database(path: Path, database: str, now_ms: int = SEED_NOW_MS) -> Any:
    """A chdb session with the migrations applied to ``database`` and ``seed_events`` up to
    ``now_ms`` in."""
    from chdb import session as chdb_session

    from streams.clickhouse.migrations import (
        DEFAULT_MIGRATIONS_DIR,
        apply_migrations,
        discover_migrations,
    )
    from tests.unit.chdb_store import chdb_executor

    session = chdb_session.Session(path=str(path))  # type: ignore[no-untyped-call]
    execute = chdb_executor(session)
    apply_migrations(execute, database, discover_migrations(DEFAULT_MIGRATIONS_DIR))
    for topic, event in seed_events(now_ms):
        table = f"{database}.{RAW_TABLE[topic]}"
        columns = ", ".join(f"`{c}`" for c in RAW_COLUMNS[topic])
        execute(f"INSERT INTO {table} ({columns}) FORMAT JSONEachRow {json_each_row(topic, event)}")
    for statement in rollups_from_raw(database):
        execute(statement)
    return session


def rollups_from_raw(database: str) -> list[str]:
    """The rollups the dashboards read, filled from the raw tables by SQL (a stand-in for
    the worker, which is not running here: the rows only need to exist and be plausible;
    tests/integration/test_dashboard_queries.py reads the worker's own rollups)."""
    db = database
    created = "event_type = 'order_created'"
    paid = "event_type = 'payment_succeeded'"
    return [
        f"""INSERT INTO {db}.orders_1m (window_start, worker, channel, event_type,
            payment_method, region, orders, amount, coupon_orders, version)
        SELECT toStartOfMinute(event_time) AS w, 'p0', channel AS c, event_type AS e,
            payment_method AS p, region AS r, count(), sum(amount), countIf(coupon_code != ''), 1
        FROM {db}.orders_raw GROUP BY w, c, e, p, r""",
        f"""INSERT INTO {db}.category_sales_1m (window_start, worker, channel, category, orders,
            gmv, paid_orders, paid_amount, version)
        SELECT toStartOfMinute(event_time) AS w, 'p0', channel AS c,
            lower(splitByChar('/', items.category[1])[1]) AS k, countIf({created}),
            sumIf(amount, {created}), countIf({paid}), sumIf(amount, {paid}), 1
        FROM {db}.orders_raw GROUP BY w, c, k""",
        f"""INSERT INTO {db}.tickets_1m (window_start, worker, event_type, kind, reason,
            tickets, version)
        SELECT toStartOfMinute(event_time) AS w, 'p0', event_type AS e, kind AS k,
            reason AS r, count(), 1
        FROM {db}.tickets_raw GROUP BY w, e, k, r""",
        f"""INSERT INTO {db}.payment_failures_1m (window_start, worker, payment_method, region,
            failure_reason, failures, version)
        SELECT toStartOfMinute(event_time) AS w, 'p0', payment_method AS p, region AS r,
            failure_reason AS f, count(), 1
        FROM {db}.orders_raw WHERE event_type = 'payment_failed' GROUP BY w, p, r, f""",
    ]


def run_on_chdb(session: Any, database: str, sql: str) -> Sequence[Sequence[Any]]:
    from tests.unit.chdb_store import chdb_executor

    # the data source's default database is salewatch; chdb has no per-query default
    session.query(f"USE {database}")
    return chdb_executor(session)(sql)


@pytest.fixture(scope="module")
def chdb_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session = chdb_database(tmp_path_factory.mktemp("chdb") / "db", "salewatch")
    try:
        yield session
    finally:
        session.close()


@pytest.mark.parametrize(("where", "sql"), sql_queries(), ids=[w for w, _ in sql_queries()])
def test_sql_panels_run_on_current_clickhouse(chdb_session: Any, where: str, sql: str) -> None:
    now_s = SEED_NOW_MS // 1000
    runnable = with_test_sale(sql, now_s, now_s - 86_400, now_s + 60)
    rows = run_on_chdb(chdb_session, "salewatch", runnable)
    assert rows, f"{where}: no rows over the seeded events"


def runbook_queries() -> list[tuple[str, str]]:
    """(section, SQL) of every ``sql`` block of alerts/runbook.md."""
    text = (REPO_ROOT / "alerts" / "runbook.md").read_text(encoding="utf-8")
    out = []
    for section in text.split("\n## ")[1:]:
        title = section.split("\n", 1)[0]
        for i, sql in enumerate(re.findall(r"```sql\n(.*?)```", section, re.S)):
            out.append((f"{title} #{i + 1}", sql))
    return out


@pytest.mark.parametrize(("where", "sql"), runbook_queries(), ids=[w for w, _ in runbook_queries()])
def test_runbook_sql_runs_on_current_clickhouse(chdb_session: Any, where: str, sql: str) -> None:
    run_on_chdb(chdb_session, "salewatch", sql)


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        pytest.param(
            "WHERE $__timeFilter(event_time)",
            "WHERE event_time >= toDateTime(10) AND event_time <= toDateTime(20)",
            id="timeFilter",
        ),
        pytest.param(
            "x > $__fromTime AND x < $__toTime",
            "x > toDateTime(10) AND x < toDateTime(20)",
            id="from-to",
        ),
    ],
)
def test_expand_macros(sql: str, expanded: str) -> None:
    assert expand_macros(sql, 10, 20) == expanded


def test_expand_macros_refuses_unknown_ones() -> None:
    with pytest.raises(ValueError, match="unsupported macro"):
        expand_macros("SELECT $__timeInterval(event_time)", 10, 20)


# ------------------------------------------------------------------ push (fake Grafana)


class FakeGrafana(BaseHTTPRequestHandler):
    """Answers like Grafana's HTTP API for the calls ``push`` makes; records each request
    as (method, path, headers, JSON body). ``folders`` holds the existing folder uids."""

    requests: list[tuple[str, str, dict[str, str], Any]]
    folders: set[str]
    status_override: int | None = None

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, dict(self.headers.items()), body))
        return body

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record()
        if self.status_override:
            self._answer(self.status_override, {"message": "invalid API key"})
            return
        uid = self.path.removeprefix("/grafana").removeprefix("/api/folders/")
        if uid in self.folders:
            self._answer(200, {"id": 7, "uid": uid, "title": "Salewatch"})
        else:
            self._answer(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = self._record()
        path = self.path.removeprefix("/grafana")
        if path == "/api/folders":
            self.folders.add(body["uid"])
            self._answer(200, {"id": 7, "uid": body["uid"], "title": body["title"]})
        elif path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            self._answer(
                200,
                {"id": 1, "uid": uid, "status": "success", "version": 3, "url": f"/d/{uid}/x"},
            )
        else:
            self._answer(404, {"message": "not found"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[tuple[str, type[FakeGrafana]]]:
    handler = type("Handler", (FakeGrafana,), {"requests": [], "folders": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def boards() -> list[dict[str, Any]]:
    return [dashboards.to_json(build()) for build in dashboards.DASHBOARDS.values()]


def test_push_creates_the_folder_then_saves_every_dashboard_by_uid(
    grafana: tuple[str, type[FakeGrafana]],
) -> None:
    url, handler = grafana
    results = push.push(push.grafana_client(url, "s3cr3t"), boards())
    calls = [(m, p) for m, p, _, _ in handler.requests]
    assert calls == [
        ("GET", "/api/folders/salewatch"),
        ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * 3,
    ]
    assert handler.requests[1][3] == {"title": "Salewatch", "uid": "salewatch"}
    for (_, _, headers, body), board in zip(handler.requests[2:], boards(), strict=True):
        assert headers["Authorization"] == "Bearer s3cr3t"
        assert headers["Content-Type"] == "application/json"
        assert body["overwrite"] is True
        assert body["folderUid"] == "salewatch"
        assert body["dashboard"]["id"] is None
        assert body["dashboard"] == {**board, "id": None}
    assert [r.uid for r in results] == list(EXPECTED_UIDS.values())
    assert {r.status for r in results} == {"success"}


def test_push_again_reuses_the_folder_and_overwrites(
    grafana: tuple[str, type[FakeGrafana]],
) -> None:
    url, handler = grafana
    client = push.grafana_client(url, "t")
    push.push(client, boards())
    handler.requests.clear()
    push.push(client, boards())
    calls = [(m, p) for m, p, _, _ in handler.requests]
    assert calls == [("GET", "/api/folders/salewatch"), *[("POST", "/api/dashboards/db")] * 3]


def test_push_under_a_url_prefix(grafana: tuple[str, type[FakeGrafana]]) -> None:
    url, handler = grafana
    push.push(push.grafana_client(url + "/grafana/", "t"), boards()[:1])
    assert handler.requests[0][1] == "/grafana/api/folders/salewatch"


def test_push_reports_grafana_errors(grafana: tuple[str, type[FakeGrafana]]) -> None:
    url, handler = grafana
    handler.status_override = 401
    with pytest.raises(push.PushError, match="HTTP 401"):
        push.push(push.grafana_client(url, "wrong"), boards())


def test_push_reports_an_unreachable_grafana() -> None:
    with pytest.raises(push.PushError, match="folder salewatch"):
        push.push(push.grafana_client("http://127.0.0.1:9", "t", timeout_s=2), boards())


@pytest.mark.parametrize("url", ["127.0.0.1:3000", "ftp://x", "http://"])
def test_push_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="grafana-url"):
        push.grafana_client(url, "t")


# ------------------------------------------------------------------ the command


def run_command(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="salewatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_generate_writes_and_check_detects_drift(tmp_path: Path) -> None:
    assert run_command("dashboards", "generate", "--check", "--out", str(tmp_path)) == 1
    assert run_command("dashboards", "generate", "--out", str(tmp_path)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dashboards.DASHBOARDS)
    assert run_command("dashboards", "generate", "--check", "--out", str(tmp_path)) == 0
    (tmp_path / "war-room.json").write_text("{}")
    assert run_command("dashboards", "generate", "--check", "--out", str(tmp_path)) == 1


def test_push_command(
    grafana: tuple[str, type[FakeGrafana]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = grafana
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert run_command("dashboards", "push", "--grafana-url", url) == 2
    assert "GRAFANA_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("GRAFANA_TOKEN", "from-env")
    assert run_command("dashboards", "push", "--grafana-url", url) == 0
    assert handler.requests[-1][2]["Authorization"] == "Bearer from-env"
    assert "salewatch-war-room" in capsys.readouterr().out
    assert run_command("dashboards", "push", "--grafana-url", url, "--token", "flag") == 0
    assert handler.requests[-1][2]["Authorization"] == "Bearer flag"
    handler.status_override = 401
    assert run_command("dashboards", "push", "--grafana-url", url, "--token", "x") == 1
