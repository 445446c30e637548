"""The cluster form of the migrations (``streams/clickhouse/cluster_schema.py``) and the local
cluster's configuration (``streams/stack/cluster.py``), without a server."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streams.clickhouse.cluster_schema import (
    SHARDING_KEYS,
    ClusterSchemaError,
    cluster_statements,
)
from streams.clickhouse.migrations import discover_migrations
from streams.clickhouse.worker_user import worker_tables
from streams.settings import Settings
from streams.stack.cluster import ClusterShape, nodes, render_node_config

MIGRATIONS = discover_migrations()


def test_every_table_of_the_migrations_has_a_sharding_key() -> None:
    assert set(worker_tables(MIGRATIONS)) == set(SHARDING_KEYS)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        pytest.param("orders_raw", "cityHash64(event_id)", id="raw: duplicates co-locate"),
        pytest.param(
            "orders_1m",
            "cityHash64(window_start, toString(worker))",
            id="rollup: a window of a partition on one shard",
        ),
        pytest.param(
            "window_emitters",
            "cityHash64(window_start, toString(worker))",
            id="marks: like the rollups",
        ),
    ],
)
def test_sharding_keys_keep_replaced_rows_together(table: str, key: str) -> None:
    assert SHARDING_KEYS[table] == key


def test_create_becomes_a_replicated_local_table_and_a_distributed_table() -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS {database}.orders_1m (window_start DateTime, "
        "worker String, version UInt64) ENGINE = ReplacingMergeTree(version) "
        "PARTITION BY toYYYYMM(window_start) ORDER BY (window_start, worker)"
    )
    local, dist = cluster_statements(sql, "salewatch")
    assert local.sql.startswith("CREATE TABLE IF NOT EXISTS {database}.orders_1m_local (")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/"
        "orders_1m_local', '{replica}', version) PARTITION BY" in local.sql
    )
    assert dist.sql == (
        "CREATE TABLE IF NOT EXISTS {database}.orders_1m AS {database}.orders_1m_local\n"
        "ENGINE = Distributed(salewatch, {database}, orders_1m_local, "
        "cityHash64(window_start, toString(worker)))"
    )


def test_engine_without_arguments_gets_only_the_replication_ones() -> None:
    sql = (
        "CREATE TABLE {database}.active_users_1m (a UInt8) "
        "ENGINE = AggregatingMergeTree() ORDER BY a"
    )
    local, _ = cluster_statements(sql, "c")
    assert (
        "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/"
        "active_users_1m_local', '{replica}')" in local.sql
    )


def test_alter_runs_on_the_local_table_once_per_shard_and_on_the_distributed_one() -> None:
    local, dist = cluster_statements(
        "ALTER TABLE {database}.clicks_raw ADD COLUMN x UInt8", "salewatch"
    )
    assert local.sql == "ALTER TABLE {database}.clicks_raw_local ADD COLUMN x UInt8"
    assert local.replicated_alter == "clicks_raw_local"
    assert dist.sql == "ALTER TABLE {database}.clicks_raw ADD COLUMN x UInt8"
    assert dist.replicated_alter is None


def test_materialized_view_reads_and_writes_local_tables() -> None:
    (view,) = cluster_statements(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.active_users_1m_mv\n"
        "TO {database}.active_users_1m AS SELECT 1 FROM {database}.clicks_raw",
        "salewatch",
    )
    assert "TO {database}.active_users_1m_local AS" in view.sql
    assert "FROM {database}.clicks_raw_local" in view.sql


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param(
            "CREATE TABLE {database}.new_1m (a UInt8) ENGINE = MergeTree ORDER BY a", id="no key"
        ),
        pytest.param("DROP TABLE {database}.orders_raw", id="unknown statement"),
    ],
)
def test_a_statement_without_a_cluster_form_is_refused(sql: str) -> None:
    with pytest.raises(ClusterSchemaError):
        cluster_statements(sql, "salewatch")


def test_every_migration_has_a_cluster_form() -> None:
    for migration in MIGRATIONS:
        for statement in migration.statements:
            assert cluster_statements(statement, "salewatch")


@pytest.mark.parametrize(("text", "shards", "replicas"), [("2x2", 2, 2), ("3x1", 3, 1)])
def test_cluster_shape(text: str, shards: int, replicas: int) -> None:
    assert ClusterShape.parse(text) == ClusterShape(shards, replicas)


def test_first_node_on_the_usual_ports_then_one_up_per_node() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    got = [(n.name, n.tcp_port, n.http_port) for n in nodes(settings, ClusterShape(2, 2))]
    assert got == [
        ("clickhouse-s1r1", 9000, 8123),
        ("clickhouse-s1r2", 9001, 8124),
        ("clickhouse-s2r1", 9002, 8125),
        ("clickhouse-s2r2", 9003, 8126),
    ]


def test_node_config_has_macros_zookeeper_and_every_replica(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    shape = ClusterShape(2, 2)
    node = nodes(settings, shape)[3]
    root = ET.fromstring(
        render_node_config(settings, shape, node, tmp_path, tmp_path).split("\n", 1)[1]
    )
    assert root.findtext("macros/shard") == "02"
    assert root.findtext("macros/replica") == "s2r2"
    assert root.findtext("tcp_port") == "9003"
    assert root.findtext("zookeeper/node/port") == "2181"
    shards = root.findall("remote_servers/salewatch/shard")
    ports = [[r.findtext("port") for r in s.findall("replica")] for s in shards]
    assert ports == [["9000", "9001"], ["9002", "9003"]]
