"""Migrations on a cluster: node by node, each statement in its cluster form
(``streams.clickhouse.cluster_schema``), each node recording its own ``schema_migrations``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.clickhouse.cluster_schema import Statement, cluster_statements
from streams.clickhouse.migrations import (
    DATABASE_PLACEHOLDER,
    Applied,
    Execute,
    Migration,
    MigrationError,
    MigrationFailed,
    check_checksums,
    ensure_migrations_table,
    quote,
    read_applied,
    record_applied,
)
from streams.settings import ENV_PREFIX

REPLICATED_ALTER_WAIT_S = 60.0


@dataclass(frozen=True)
class ClusterNode:
    """One server of the cluster as ``system.clusters`` names it (shard and replica from 1)."""

    shard: int
    replica: int
    host: str
    port: int

    @property
    def name(self) -> str:
        return f"shard {self.shard} replica {self.replica} ({self.host}:{self.port})"


def cluster_nodes(execute: Execute, cluster: str) -> list[ClusterNode]:
    """The nodes of ``cluster`` (by shard, then replica); MigrationError if it is unknown."""
    rows = execute(
        "SELECT shard_num, replica_num, host_name, port FROM system.clusters "
        f"WHERE cluster = {quote(cluster)} ORDER BY shard_num, replica_num"
    )
    if not rows:
        raise MigrationError(
            f"cluster {cluster!r} is not in this server's remote_servers "
            f"(check {ENV_PREFIX}CLICKHOUSE_CLUSTER)"
        )
    return [ClusterNode(int(s), int(r), str(h), int(p)) for s, r, h, p in rows]


def _columns(execute: Execute, database: str, table: str) -> list[tuple[str, str]]:
    rows = execute(
        "SELECT name, type FROM system.columns "
        f"WHERE database = {quote(database)} AND table = {quote(table)}"
    )
    return [(str(n), str(t)) for n, t in rows]


def _wait_replicated_alter(
    execute: Execute, first_replica: Execute, database: str, table: str, node: ClusterNode
) -> None:
    """Wait until ``table`` on this replica has the columns its shard's first replica has."""
    deadline = time.monotonic() + REPLICATED_ALTER_WAIT_S
    want = _columns(first_replica, database, table)
    while _columns(execute, database, table) != want:
        if time.monotonic() > deadline:
            raise MigrationError(
                f"{node.name}: the ALTER of {database}.{table} applied on the shard's first "
                f"replica did not arrive here within {REPLICATED_ALTER_WAIT_S:.0f} s "
                "(replication queue: system.replication_queue, ZooKeeper reachable?)"
            )
        time.sleep(0.2)


def apply_cluster_migrations(
    nodes: Sequence[tuple[ClusterNode, Execute]],
    database: str,
    cluster: str,
    migrations: Sequence[Migration],
    *,
    on_applied: Callable[[ClusterNode, Applied], None] | None = None,
) -> dict[ClusterNode, list[Applied]]:
    """Apply every migration in its cluster form on every node: one migration on every node
    that lacks it, then the next (not each node to the end: a replicated table's structure
    lives in ZooKeeper, and a replica creating it as of 0001 after another already altered
    it to 0005 is refused, "Table structure in ZooKeeper is too different").

    Each node records what it applied in its own (not replicated) ``schema_migrations``:
    a run that stopped half-way leaves some nodes one migration behind, which ``--status``
    shows per node and the next run finishes. Checksums are checked on every node first.
    """
    applied_on = {}
    for node, execute in nodes:
        ensure_migrations_table(execute, database)
        applied = read_applied(execute, database)
        check_checksums(migrations, applied)
        applied_on[node] = applied
    first_of_shard: dict[int, Execute] = {}
    for node, execute in nodes:
        first_of_shard.setdefault(node.shard, execute)
    done: dict[ClusterNode, list[Applied]] = {node: [] for node, _ in nodes}
    for migration in migrations:
        for node, execute in nodes:
            if migration.version in applied_on[node]:
                continue
            first = first_of_shard[node.shard]
            started = time.perf_counter()
            statements = cluster_sql(migration, database, cluster)
            for number, statement in enumerate(statements, start=1):
                try:
                    if statement.replicated_alter and first is not execute:
                        _wait_replicated_alter(
                            execute, first, database, statement.replicated_alter, node
                        )
                    else:
                        execute(statement.sql)
                except MigrationError:
                    raise
                except Exception as exc:
                    raise MigrationFailed(migration, number, exc, len(statements)) from exc
            record_applied(execute, database, migration)
            result = Applied(migration, time.perf_counter() - started)
            done[node].append(result)
            if on_applied is not None:
                on_applied(node, result)
    return done


def cluster_sql(migration: Migration, database: str, cluster: str) -> list[Statement]:
    """A migration's statements in cluster form, ``{database}`` substituted (for dry runs)."""
    return [
        Statement(s.sql.replace(DATABASE_PLACEHOLDER, database), s.replicated_alter)
        for sql in migration.statements
        for s in cluster_statements(sql, cluster)
    ]
