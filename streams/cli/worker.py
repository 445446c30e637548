"""``salewatch worker``: run the Faust worker and serve ``/metrics``.

Start-up order: settings (a bad one exits 2 with the setting's name) → ClickHouse reachable
and migrated (else exit 1 with one line) → Kafka reachable (retried, ``streams.kafka.ready``)
→ topics created if missing → ``/metrics`` on ``SALEWATCH_METRICS_HOST:PORT`` (a taken port
exits 1 naming the setting) → the Faust app with the batch reader
(``streams.worker.reader``; consumes until SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from typing import Any

from streams.clickhouse.client import (
    CLUSTER_SESSION_SETTINGS,
    describe_error,
    make_client,
    quiet_driver_logging,
)
from streams.events.contract import DEAD_LETTER_TOPIC, ORDERS_BY_SESSION_TOPIC, TOPICS
from streams.kafka.ready import wait_for_kafka
from streams.metrics.totals import Totals
from streams.settings import ENV_PREFIX, Settings, load_settings

log = logging.getLogger(__name__)

# allocations between young-generation collections (CPython's default: 700); see run()
GC_YOUNG_THRESHOLD = 50_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="consume events, count them, store them")
    parser.add_argument("--metrics-port", type=int, help=f"overrides {ENV_PREFIX}METRICS_PORT")
    parser.add_argument("--app-id", help=f"overrides {ENV_PREFIX}APP_ID (consumer group)")
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning"])
    parser.set_defaults(func=run)


def check_clickhouse(settings: Settings) -> str | None:
    """None when ClickHouse answers and the raw tables exist, else one line saying why."""
    client = make_client(settings, use_database=False)
    try:
        rows = client.execute(
            "SELECT count() FROM system.tables WHERE database = %(db)s AND name LIKE '%%_raw'",
            {"db": settings.clickhouse_database},
        )
        if settings.clickhouse_cluster:
            problem = _check_cluster(client, settings)
            if problem:
                return problem
    except Exception as exc:
        return describe_error(exc, settings)
    finally:
        client.disconnect()
    if rows[0][0] < 4:
        return (
            f"ClickHouse database {settings.clickhouse_database!r} has no raw tables; "
            "run `salewatch migrate` first"
        )
    return None


def _check_cluster(client: Any, settings: Settings) -> str | None:
    """In cluster mode: the cluster is known, the raw tables are Distributed, and the server
    knows every setting the inserts' correctness depends on (the driver drops unknown ones)."""
    cluster = settings.clickhouse_cluster
    if not client.execute("SELECT 1 FROM system.clusters WHERE cluster = %(c)s", {"c": cluster}):
        return (
            f"ClickHouse has no cluster {cluster!r} in remote_servers; "
            "check SALEWATCH_CLICKHOUSE_CLUSTER"
        )
    known = {
        name
        for (name,) in client.execute(
            "SELECT name FROM system.settings WHERE name IN %(names)s",
            {"names": tuple(CLUSTER_SESSION_SETTINGS)},
        )
    }
    missing = sorted(set(CLUSTER_SESSION_SETTINGS) - known)
    if missing:
        return (
            f"ClickHouse does not know {', '.join(missing)}: "
            "inserts into the cluster would not be synchronous"
        )
    engines = client.execute(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s AND name LIKE '%%_raw'",
        {"db": settings.clickhouse_database},
    )
    local = sorted(name for name, engine in engines if engine != "Distributed")
    if local:
        return (
            f"{', '.join(local)} in {settings.clickhouse_database!r} are not Distributed tables: "
            "this database was migrated for one node; "
            "migrate it with SALEWATCH_CLICKHOUSE_CLUSTER set"
        )
    return _check_schema_versions(client, settings)


def _check_schema_versions(client: Any, settings: Settings) -> str | None:
    """A half-migrated cluster (nodes at different schema versions) is refused: a worker
    would insert columns some shards lack. Nodes that do not answer are skipped (one
    replica down must not stop the workers); ``salewatch migrate`` needs them all."""
    versions: dict[str, int] = {}
    for host, port in client.execute(
        "SELECT host_name, port FROM system.clusters WHERE cluster = %(c)s",
        {"c": settings.clickhouse_cluster},
    ):
        node = settings.model_copy(update={"clickhouse_host": host, "clickhouse_port": port})
        node_client = make_client(node, use_database=False, connect_timeout_s=2.0)
        try:
            rows = node_client.execute(
                f"SELECT max(version) FROM {settings.clickhouse_database}.schema_migrations"
            )
        except Exception:  # unreachable or not migrated at all: migrate will say which
            continue
        finally:
            node_client.disconnect()
        versions[f"{host}:{port}"] = int(rows[0][0])
    if len(set(versions.values())) > 1:
        return (
            f"half-migrated cluster (schema version per node: {versions}); "
            "run `salewatch migrate` to finish it"
        )
    return None


def create_topics(settings: Settings) -> str | None:
    """Create the topics the worker reads and writes if missing; None, or why it failed."""
    from streams.kafka.producer import ProducerError, ensure_topics
    from streams.worker.handover import HANDOVER_TOPIC
    from streams.worker.unreadable import CONTROL_TOPIC

    names = [settings.kafka_topic(t) for t in (*TOPICS, ORDERS_BY_SESSION_TOPIC, DEAD_LETTER_TOPIC)]
    try:
        ensure_topics(settings.kafka_bootstrap, settings.topic_partitions, names)
        # skip instructions and handovers: one partition each, read whole by every worker
        ensure_topics(
            settings.kafka_bootstrap,
            1,
            [settings.kafka_topic(CONTROL_TOPIC), settings.kafka_topic(HANDOVER_TOPIC)],
        )
    except ProducerError as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.app_id is not None:
        overrides["app_id"] = args.app_id
    settings = load_settings(**overrides)
    quiet_driver_logging()
    problem = check_clickhouse(settings)
    if problem:
        print(f"salewatch worker: {problem}", file=sys.stderr)
        return 1
    problem = wait_for_kafka(
        settings.kafka_bootstrap,
        settings.kafka_startup_timeout_s,
        lambda line: print(f"salewatch worker: {line}", file=sys.stderr, flush=True),
    )
    if problem:
        print(f"salewatch worker: {problem}", file=sys.stderr)
        return 1

    problem = create_topics(settings)
    if problem:
        print(f"salewatch worker: {problem}", file=sys.stderr)
        return 1

    # imported here: Faust is slow to import and not needed by the checks above
    import faust
    import mode.loop

    from streams.counting.clock import make_clock
    from streams.counting.pipeline import Pipeline
    from streams.metrics.exporter import serve_metrics
    from streams.worker.app import add_reader, add_window_timer, create_app, make_recovery

    totals = Totals()
    try:
        serve_metrics(totals, settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        print(
            f"salewatch worker: cannot serve /metrics on {settings.metrics_host}:"
            f"{settings.metrics_port} ({exc.strerror}); set {ENV_PREFIX}METRICS_PORT "
            "or --metrics-port",
            file=sys.stderr,
        )
        return 1
    print(
        f"salewatch worker {settings.app_id}: /metrics on "
        f"http://{settings.metrics_host}:{settings.metrics_port}/metrics, "
        f"Kafka {settings.kafka_bootstrap}, ClickHouse "
        f"{settings.clickhouse_host}:{settings.clickhouse_port}/{settings.clickhouse_database}",
        flush=True,
    )
    app = create_app(settings)
    # rollup rows are named by partition (streams.counting.rollups.emitter), not by worker
    pipeline = Pipeline.from_settings(settings, totals)
    window_clock = make_clock(settings.window_clock)
    recovery = make_recovery(settings, totals, pipeline, window_clock, app)
    reader = add_reader(app, settings, totals, pipeline, window_clock, recovery)
    add_window_timer(app, pipeline, window_clock, reader, recovery)
    mode.loop.use("uvloop")  # what `faust -L uvloop` does: ~12 % less CPU per event
    # the chain allocates a few containers per event (decoded events, rows, records),
    # almost none of them in cycles: at CPython's default threshold (700 allocations) a
    # young-generation collection ran every ~100 events. Objects of the imports and the
    # set-up are frozen out of all collections. Issue 18: −12 % CPU for the chain alone.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    worker = faust.Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()
    return 0
