"""``salewatch migrate [--dry-run | --status] [--path DIR]``: apply the numbered ClickHouse
migrations (``streams.clickhouse.migrations``), on one server or node by node on a cluster
(``streams.clickhouse.cluster_migrations``), then the worker's user
(``streams.clickhouse.worker_user``). Every expected failure is one line on stderr."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.clickhouse.client import (
    ClickHouseError,
    checked_executor,
    endpoint,
    make_client,
    probe,
    quiet_driver_logging,
)
from streams.clickhouse.cluster_migrations import (
    ClusterNode,
    apply_cluster_migrations,
    cluster_nodes,
    cluster_sql,
)
from streams.clickhouse.migrations import (
    DEFAULT_MIGRATIONS_DIR,
    MIGRATIONS_TABLE,
    Applied,
    Execute,
    Migration,
    MigrationError,
    apply_migrations,
    discover_migrations,
    pending,
    read_applied,
)
from streams.clickhouse.worker_user import (
    ACCESS_DOCS,
    WORKER_PASSWORD_SETTING,
    WorkerUser,
    ensure_worker_user,
    plural,
    worker_tables,
    worker_user_statements,
)
from streams.settings import ENV_PREFIX, Settings, load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="create/upgrade the ClickHouse schema (schemas/clickhouse/NNNN_*.sql)",
        description=(
            "Apply pending ClickHouse migrations in order and record them in "
            f"<database>.{MIGRATIONS_TABLE}. Endpoint and database come from "
            f"{ENV_PREFIX}CLICKHOUSE_HOST, _PORT, _USER, _PASSWORD, _DATABASE."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print pending migrations and their SQL; change nothing",
    )
    mode.add_argument(
        "--status", action="store_true", help="list applied and pending migrations; change nothing"
    )
    parser.add_argument(
        "--path",
        type=Path,
        default=DEFAULT_MIGRATIONS_DIR,
        help="directory of NNNN_name.sql files (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``salewatch migrate``; every expected failure is one line on stderr."""
    settings = load_settings()
    quiet_driver_logging()
    try:
        migrations = discover_migrations(args.path)
        version = probe(settings)
    except (MigrationError, ClickHouseError) as exc:
        _error(str(exc))
        return 1
    # DDL such as a materialized view with POPULATE may run for minutes
    client = make_client(settings, use_database=False, send_receive_timeout_s=600.0)
    execute = checked_executor(client, settings)
    database = settings.clickhouse_database
    where = f"ClickHouse {version} at {endpoint(settings)}, database {database}"
    worker = WorkerUser.from_settings(settings)
    if settings.clickhouse_cluster:
        try:
            return _run_cluster(args, settings, execute, version, migrations, worker)
        except (MigrationError, ClickHouseError) as exc:
            _error(str(exc))
            return 1
        finally:
            client.disconnect()
    try:
        if args.status:
            return _print_status(execute, where, database, migrations)
        if args.dry_run:
            return _print_dry_run(execute, where, database, migrations, worker)
        code = _apply(execute, where, database, migrations)
        result = ensure_worker_user(
            execute,
            worker,
            server_version=version,
            migrating_user=settings.clickhouse_user,
            database=database,
            tables=worker_tables(migrations),
        )
        print(result.line)
        return code
    except (MigrationError, ClickHouseError) as exc:
        _error(str(exc))
        return 1
    finally:
        client.disconnect()


def _run_cluster(
    args: argparse.Namespace,
    settings: Settings,
    execute: Execute,
    version: str,
    migrations: Sequence[Migration],
    worker: WorkerUser,
) -> int:
    """``migrate`` with ``SALEWATCH_CLICKHOUSE_CLUSTER``: every node, one after the other."""
    cluster = settings.clickhouse_cluster
    assert cluster is not None
    database = settings.clickhouse_database
    nodes = cluster_nodes(execute, cluster)
    clients = []
    executes: list[tuple[ClusterNode, Execute]] = []
    for node in nodes:
        node_settings = settings.model_copy(
            update={"clickhouse_host": node.host, "clickhouse_port": node.port}
        )
        node_client = make_client(node_settings, use_database=False, send_receive_timeout_s=600.0)
        clients.append(node_client)
        executes.append((node, checked_executor(node_client, node_settings)))
    where = f"ClickHouse {version} cluster {cluster} ({len(nodes)} nodes), database {database}"
    try:
        if args.status:
            code = 0
            for node, node_execute in executes:
                print(f"\n== {node.name}")
                code = max(code, _print_status(node_execute, where, database, migrations))
            versions = {
                node.name: max(read_applied(node_execute, database), default=0)
                for node, node_execute in executes
            }
            if len(set(versions.values())) > 1:
                print(f"\nhalf-migrated cluster: {versions}; run `salewatch migrate` to finish")
                code = max(code, 1)
            return code
        if args.dry_run:
            node, node_execute = executes[0]
            todo = pending(migrations, read_applied(node_execute, database))
            print(f"{where}: would apply on {node.name} (and each node that lacks them):")
            for migration in todo:
                print(f"\n-- {migration.id} ({migration.path})")
                for statement in cluster_sql(migration, database, cluster):
                    note = (
                        "  -- first replica of each shard only"
                        if statement.replicated_alter
                        else ""
                    )
                    print(statement.sql + ";" + note)
            return 0
        started = time.perf_counter()

        def report(node: ClusterNode, result: Applied) -> None:
            print(
                f"{node.name}: applied {result.migration.id} in {result.seconds:.2f} s", flush=True
            )

        done = apply_cluster_migrations(executes, database, cluster, migrations, on_applied=report)
        latest = max((m.version for m in migrations), default=0)
        applied = sum(len(v) for v in done.values())
        print(
            f"{where}: applied {plural(applied, 'migration')} over the nodes in "
            f"{time.perf_counter() - started:.2f} s; every node at version {latest:04d}"
        )
        for node, node_execute in executes:
            result = ensure_worker_user(
                node_execute,
                worker,
                server_version=version,
                migrating_user=settings.clickhouse_user,
                database=database,
                tables=worker_tables(migrations),
            )
            print(f"{node.name}: {result.line}")
        return 0
    finally:
        for node_client in clients:
            node_client.disconnect()


def _error(message: str) -> None:
    print(f"salewatch migrate: error: {message}", file=sys.stderr)


def _apply(execute: Execute, where: str, database: str, migrations: Sequence[Migration]) -> int:
    started = time.perf_counter()

    def report(result: Applied) -> None:
        count = len(result.migration.statements)
        print(
            f"applied {result.migration.id} ({plural(count, 'statement')}) "
            f"in {result.seconds:.2f} s",
            flush=True,
        )

    done = apply_migrations(execute, database, migrations, on_applied=report)
    elapsed = time.perf_counter() - started
    latest = max((m.version for m in migrations), default=0)
    if done:
        print(
            f"{where}: applied {plural(len(done), 'migration')} in {elapsed:.2f} s; "
            f"schema at version {latest:04d}"
        )
    else:
        print(f"{where}: up to date at version {latest:04d}, nothing to apply")
    return 0


def _print_dry_run(
    execute: Execute,
    where: str,
    database: str,
    migrations: Sequence[Migration],
    worker: WorkerUser,
) -> int:
    todo = pending(migrations, read_applied(execute, database))
    if not todo:
        print(f"{where}: up to date, nothing to apply")
    else:
        print(f"{where}: would apply {plural(len(todo), 'migration')} (dry run)")
    for migration in todo:
        print(f"\n-- {migration.id} ({migration.path})")
        for statement in migration.sql_for(database):
            print(statement + ";")
    if worker.password is not None and worker.password.get_secret_value():
        print(f"\n-- worker user, unless the server has no SQL user management ({ACCESS_DOCS})")
        shown = f"<sha256 of {WORKER_PASSWORD_SETTING}>"
        for statement in worker_user_statements(
            worker.name, shown, database, worker_tables(migrations)
        ):
            print(statement + ";")
    return 0


def _print_status(
    execute: Execute, where: str, database: str, migrations: Sequence[Migration]
) -> int:
    applied = read_applied(execute, database)
    files = {m.version: m for m in migrations}
    print(where)
    print(f"{'migration':<40} {'status':<14} applied_at (UTC)")
    changed = 0
    for version in sorted(files.keys() | applied.keys()):
        migration, record = files.get(version), applied.get(version)
        if record is None:
            assert migration is not None
            print(f"{migration.id:<40} pending")
            continue
        if migration is None:
            status = "applied, no file"
        elif migration.checksum != record.checksum:
            status, changed = "CHANGED", changed + 1
        else:
            status = "applied"
        print(f"{f'{version:04d}_{record.name}':<40} {status:<14} {record.applied_at}")
    waiting = sum(1 for v in files if v not in applied)
    print(f"{len(applied)} applied, {waiting} pending")
    if changed:
        _error(
            f"{plural(changed, 'applied migration')} changed since applied (CHANGED above); "
            "`salewatch migrate` will refuse to run"
        )
        return 1
    return 0
