"""Every dashboard SQL panel, every SQL block of the runbook, the README and
docs/metrics.md, run on the real 2×2 cluster through its Distributed tables, over events a
``salewatch worker`` with ``SALEWATCH_CLICKHOUSE_CLUSTER`` stored (the burst of
``tests/integration/test_dashboard_queries.py``).

On a cluster the queries are written exactly as on one node: the Distributed tables keep
the names, ``FINAL`` is applied per shard (right because the sharding keys put every copy
of a row on one shard, ``streams/clickhouse/cluster_schema.py``), and none of them has an ``IN`` or
``JOIN`` over a second Distributed table (which would need ``GLOBAL IN`` or
``distributed_product_mode``); scalar subqueries run as queries of their own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.faults.conftest import free_port
from tests.integration.support import (
    clickhouse,
    isolated_settings,
    run_cli,
    running_worker,
    wait_for_rollups,
    wait_until,
)
from tests.integration.test_dashboard_queries import produce
from tests.unit.dashboards.test_dashboards import (
    runbook_queries,
    seed_events,
    sql_queries,
    with_test_sale,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def doc_queries() -> list[tuple[str, str]]:
    """(file #n, SQL) of every ``sql`` block of README.md and docs/metrics.md."""
    out = []
    for name in ("README.md", "docs/metrics.md"):
        text = (REPO_ROOT / name).read_text(encoding="utf-8")
        for i, sql in enumerate(re.findall(r"```sql\n(.*?)```", text, re.S)):
            out.append((f"{name} #{i + 1}", sql))
    return out


@pytest.fixture(scope="module")
def fed(cluster_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    # a free metrics port: 9109 (the shared stack's scraped one) may be another test's
    # windows close (and their rollups reach the cluster) soon after the minute ends
    settings = isolated_settings(cluster_settings, metrics_port=free_port(), allowed_lateness_s=5)
    result = run_cli(settings, "migrate")
    assert result.returncode == 0, result.stderr
    log = tmp_path_factory.mktemp("cluster-queries") / "worker.log"
    with running_worker(settings, log):
        produce(settings, seed_events(int(time.time() * 1000), step_ms=2_000))
        client = clickhouse(settings)
        try:
            wait_until(
                lambda: client.execute("SELECT count() FROM orders_raw FINAL")[0][0],
                lambda n: n >= 12,
                60,
                "the orders in the cluster",
            )
            # the drill-down, the sale panels and the office ticker read the rollups
            wait_for_rollups(client)
        finally:
            client.disconnect()
        yield settings


def _range() -> tuple[int, int]:
    now_s = int(time.time())
    return now_s - 86_400, now_s + 60


def _run(settings: Settings, sql: str) -> list[object]:
    database = settings.clickhouse_database
    sql = sql.replace("salewatch.", f"{database}.").replace("'salewatch'", f"'{database}'")
    client = clickhouse(settings)
    try:
        rows: list[object] = client.execute(sql)
        return rows
    finally:
        client.disconnect()


@pytest.mark.parametrize(("where", "sql"), sql_queries(), ids=[w for w, _ in sql_queries()])
def test_sql_panel_runs_on_the_cluster(fed: Settings, where: str, sql: str) -> None:
    """With the test sale placed around the fed events, as on one node."""
    now_s = int(time.time())
    assert _run(fed, with_test_sale(sql, now_s, *_range())), f"{where}: no rows"


@pytest.mark.parametrize(("where", "sql"), runbook_queries(), ids=[w for w, _ in runbook_queries()])
def test_runbook_sql_runs_on_the_cluster(fed: Settings, where: str, sql: str) -> None:
    _run(fed, sql)


@pytest.mark.parametrize(("where", "sql"), doc_queries(), ids=[w for w, _ in doc_queries()])
def test_documented_sql_runs_on_the_cluster(fed: Settings, where: str, sql: str) -> None:
    _run(fed, sql)
