"""``salewatch stack up | status | down``: run the local stack (see ``streams.stack``).

Exit codes: 0 success (``status``: every service healthy), 1 the stack failed (message on
stderr, no traceback), 2 configuration error (raised to ``streams.cli``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from streams.settings import load_settings
from streams.stack import lifecycle
from streams.stack.cluster import ClusterShape, cluster_name
from streams.stack.errors import StackError
from streams.stack.lifecycle import StackStatus


def _table(stack: StackStatus) -> str:
    rows = [("SERVICE", "PID", "HEALTH", "ENDPOINT", "DETAIL")]
    for s in stack.services:
        health = "healthy" if s.healthy else "DOWN" if s.pid is None else "UNHEALTHY"
        rows.append((s.name, str(s.pid or "-"), health, s.endpoint, s.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    settings = load_settings()
    shape = None if args.clickhouse_cluster is None else ClusterShape.parse(args.clickhouse_cluster)
    stack = lifecycle.up(settings, timeout_s=args.timeout, cluster_shape=shape)
    print(_table(stack))
    endpoints = {s.name: s.endpoint for s in stack.services}
    clickhouse = endpoints.get("clickhouse") or (
        f"cluster {cluster_name(settings)} ({shape} shards x replicas), first node "
        f"{endpoints[stack.services[2].name]}; set SALEWATCH_CLICKHOUSE_CLUSTER="
        f"{cluster_name(settings)} for migrate and the workers"
    )
    print(
        f"\nstack up in {time.monotonic() - started:.1f} s (state: {stack.state_dir})\n"
        f"  Kafka         {endpoints['kafka']}\n"
        f"  ClickHouse    {clickhouse}\n"
        f"  Prometheus    {endpoints['prometheus']}\n"
        f"  Alertmanager  {endpoints['alertmanager']}"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    stack = lifecycle.status(load_settings())
    print(_table(stack))
    return 0 if stack.healthy else 1


def _down(args: argparse.Namespace) -> int:
    started = time.monotonic()
    lifecycle.down(load_settings())
    print(f"stack down in {time.monotonic() - started:.1f} s")
    return 0


def _reporting(
    name: str, command: Callable[[argparse.Namespace], int]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except StackError as exc:
            print(f"salewatch stack {name}: {exc}", file=sys.stderr)
            return 1

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stack`` with ``up``, ``status`` and ``down`` to the ``salewatch`` parser."""
    stack = subparsers.add_parser(
        "stack", help="run the local Kafka/ClickHouse/Prometheus/Alertmanager stack"
    )
    commands = stack.add_subparsers(dest="stack_command", required=True)
    up = commands.add_parser("up", help="install what is missing, start, wait until healthy")
    up.add_argument(
        "--timeout",
        type=float,
        default=lifecycle.START_TIMEOUT_S,
        metavar="SECONDS",
        help="how long to wait for all services to become healthy (default %(default)s)",
    )
    up.add_argument(
        "--clickhouse-cluster",
        metavar="SHARDSxREPLICAS",
        help="run a local ClickHouse cluster (e.g. 2x2: ZooKeeper and 4 servers, first on the "
        "usual ports) instead of one server; status and down cover it",
    )
    up.set_defaults(func=_reporting("up", _up))
    status = commands.add_parser("status", help="PID, endpoint and health of every service")
    status.set_defaults(func=_reporting("status", _status))
    down = commands.add_parser("down", help="stop every service of this state dir")
    down.set_defaults(func=_reporting("down", _down))
