"""What a cluster costs the worker's inserts: batches of cart rows (the worker's columns
and batch size) into one node's plain table, into the cluster's Distributed table with
``insert_distributed_sync=1`` (what the worker does: returns once every shard's part is on
a replica) and with 18.16's default asynchronous send (returns once queued on the first
node's disk), and into one shard's replicated local table.

    SALEWATCH_CLICKHOUSE_PORT=... SALEWATCH_CLICKHOUSE_CLUSTER=salewatch \\
        python -m bench.cluster_inserts [--batches 40] [--batch-size 5000]

Migrates a throwaway database on the cluster (``sw_bench_<tag>``), drops it at the end.
Prints rows/s and batch latency p50/p95 per target; docs/scaling.md quotes one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.clickhouse.client import make_client
from streams.clickhouse.raw_rows import RAW_COLUMNS
from streams.settings import load_settings


def _rows(batch: int, size: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC).replace(microsecond=0)
    now_ms = int(now.timestamp() * 1000)
    rows = []
    for i in range(size):
        n = batch * size + i
        rows.append(
            (
                f"bench-{n}",
                "add_to_cart",
                now,
                now_ms,
                f"u{n % 5000}",
                f"s{n % 20000}",
                "app",
                "CN-BJ",
                1,
                n % 4,
                n,
                now,
                f"i{n % 800}",
                "phones",
                1,
                Decimal("9.99"),
            )
        )
    return rows


def _measure(
    client: Any, table: str, batches: int, size: int, sync: int
) -> tuple[float, list[float]]:
    columns = ", ".join(RAW_COLUMNS["carts"])
    latencies = []
    started = time.perf_counter()
    for b in range(batches):
        rows = _rows(b, size)
        t = time.perf_counter()
        client.execute(
            f"INSERT INTO {table} ({columns}) VALUES",
            rows,
            settings={"insert_distributed_sync": sync},
        )
        latencies.append(time.perf_counter() - t)
    return batches * size / (time.perf_counter() - started), latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    base = load_settings()
    if not base.clickhouse_cluster:
        print("set SALEWATCH_CLICKHOUSE_CLUSTER (and the first node's port)", file=sys.stderr)
        return 2
    database = f"sw_bench_{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(update={"clickhouse_database": database})
    env = {"SALEWATCH_CLICKHOUSE_DATABASE": database}
    migrate = [sys.executable, "-m", "streams.cli", "migrate"]
    subprocess.run(migrate, env={**os.environ, **env}, check=True, capture_output=True)
    client = make_client(settings)
    try:
        client.execute(
            f"CREATE TABLE {database}.carts_plain AS {database}.carts_raw_local "
            "ENGINE = MergeTree ORDER BY event_id"
        )
        targets = [
            ("one node, plain MergeTree", f"{database}.carts_plain", 0),
            ("one shard, replicated local table", f"{database}.carts_raw_local", 0),
            ("Distributed, insert_distributed_sync=1 (the worker)", f"{database}.carts_raw", 1),
            ("Distributed, async (18.16 default)", f"{database}.carts_raw", 0),
        ]
        print(f"{args.batches} batches of {args.batch_size} cart rows each")
        for name, table, sync in targets:
            rate, latencies = _measure(client, table, args.batches, args.batch_size, sync)
            q = statistics.quantiles(latencies, n=20)
            p50, p95 = statistics.median(latencies) * 1000, q[18] * 1000
            print(f"{name:<52} {rate:>9,.0f} rows/s  batch p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    finally:
        for port_offset in range(4):
            port = settings.clickhouse_port + port_offset
            node = settings.model_copy(update={"clickhouse_port": port})
            c = make_client(node, use_database=False)
            c.execute(f"DROP DATABASE IF EXISTS {database}")
            c.disconnect()
        client.disconnect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
