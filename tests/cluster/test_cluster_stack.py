"""``salewatch stack status`` and ``up`` on the running 2×2 cluster (``down`` is checked by
the session fixture's teardown: nothing of the cluster may be left running)."""

from __future__ import annotations

import pytest

from streams.settings import Settings
from tests.integration.support import run_cli

pytestmark = pytest.mark.integration

NODES = ["clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2"]


def test_status_shows_zookeeper_and_every_node_healthy(cluster_settings: Settings) -> None:
    result = run_cli(cluster_settings, "stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {"kafka", "zookeeper", *NODES, "alertmanager", "prometheus"}
    assert "standalone" in lines["zookeeper"]
    assert "shard 2 replica 1" in lines["clickhouse-s2r1"]
    assert f"127.0.0.1:{cluster_settings.clickhouse_port}" in lines["clickhouse-s1r1"]


def test_up_again_leaves_the_cluster_alone(cluster_settings: Settings) -> None:
    result = run_cli(cluster_settings, "stack", "up", "--clickhouse-cluster", "2x2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already running") == 8, result.stdout


def test_up_without_the_cluster_refuses_to_orphan_it(cluster_settings: Settings) -> None:
    result = run_cli(cluster_settings, "stack", "up")
    assert result.returncode == 1
    assert "runs cluster 2x2" in result.stderr and "stack down" in result.stderr
