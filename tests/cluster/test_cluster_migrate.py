"""``salewatch migrate`` on the real 2×2 cluster: every node gets the replicated local
tables and the Distributed tables; a run that stopped half-way is detected by ``--status``
and finished by the next run; a second run applies nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.cli.worker import check_clickhouse
from streams.clickhouse.client import checked_executor, make_client
from streams.clickhouse.cluster_migrations import (
    ClusterNode,
    apply_cluster_migrations,
    cluster_nodes,
)
from streams.clickhouse.migrations import Execute, discover_migrations
from streams.settings import Settings
from tests.cluster.conftest import SHAPE, cluster_node_settings
from tests.faults.conftest import drop_database
from tests.integration.support import ch_rows, isolated_settings, run_cli

pytestmark = pytest.mark.integration

MIGRATIONS = discover_migrations()


@pytest.fixture
def fresh(cluster_settings: Settings) -> Iterator[Settings]:
    settings = isolated_settings(cluster_settings)
    yield settings
    drop_database(settings)


def _executes(settings: Settings) -> list[tuple[ClusterNode, Execute]]:
    first = checked_executor(make_client(settings, use_database=False), settings)
    out = []
    for node in cluster_nodes(first, settings.clickhouse_cluster or ""):
        node_settings = settings.model_copy(
            update={"clickhouse_host": node.host, "clickhouse_port": node.port}
        )
        client = make_client(node_settings, use_database=False)
        out.append((node, checked_executor(client, node_settings)))
    return out


def _engines(settings: Settings, node: int) -> dict[str, str]:
    rows = ch_rows(
        cluster_node_settings(settings, node),
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()",
    )
    return {str(name): str(engine) for name, engine in rows}


def test_every_node_gets_local_replicated_and_distributed_tables(fresh: Settings) -> None:
    result = run_cli(fresh, "migrate")
    assert result.returncode == 0, result.stderr
    for node in range(SHAPE.shards * SHAPE.replicas):
        engines = _engines(fresh, node)
        assert engines["orders_raw"] == "Distributed"
        assert engines["orders_raw_local"] == "ReplicatedReplacingMergeTree"
        assert engines["active_users_1m_local"] == "ReplicatedAggregatingMergeTree"
        assert engines["active_users_1m_mv"] == "MaterializedView"
        assert engines["schema_migrations"] == "MergeTree"  # per node, not replicated
    again = run_cli(fresh, "migrate")
    assert again.returncode == 0 and "applied 0 migrations" in again.stdout, again.stdout


def test_a_half_migrated_cluster_is_detected_and_finished(fresh: Settings) -> None:
    executes = _executes(fresh)
    database = fresh.clickhouse_database
    *before, last = MIGRATIONS
    apply_cluster_migrations(executes, database, "salewatch", before)
    # the run stopped after the last migration reached the first two nodes
    apply_cluster_migrations(executes[:2], database, "salewatch", MIGRATIONS)

    status = run_cli(fresh, "migrate", "--status")
    assert status.returncode == 1
    assert "half-migrated cluster" in status.stdout, status.stdout
    assert last.name not in _engines(fresh, 3)
    refused = check_clickhouse(fresh)
    assert refused is not None and "half-migrated cluster" in refused, refused

    finish = run_cli(fresh, "migrate")
    assert finish.returncode == 0, finish.stderr
    assert finish.stdout.count(f"applied {last.id}") == 2, finish.stdout
    assert run_cli(fresh, "migrate", "--status").returncode == 0
    assert "window_emitters_local" in _engines(fresh, 3)
    assert check_clickhouse(fresh) is None
