"""Two workers on a real 2×2 ClickHouse cluster (``tests/cluster/conftest.py``), against
ground truth, with the faults a cluster adds.

The stream, the workers and the checks are those of ``tests/faults/test_two_workers.py``
(event-time windows, 10,000 carts and orders over 12 event-minutes), run with
``SALEWATCH_CLICKHOUSE_CLUSTER`` set: ``migrate`` creates replicated local tables on all
four nodes and Distributed tables over them, the workers insert through the Distributed
tables synchronously, recovery and the checks read through them (``FINAL`` per shard).
Every 50th event is delivered twice on purpose (right after the original, same key).

Scenarios (one module fixture each):

- ``replicas_and_worker_killed``: one replica of each shard SIGKILLed at a third of the
  stream and started again at half; worker ``b`` SIGKILLed at two thirds. Nothing lost,
  nothing doubled (raw ``FINAL`` = distinct ids = events sent; rollups = truth), and each
  killed replica holds what its sibling holds once back.
- ``zookeeper_stopped``: ZooKeeper stopped for 30 s mid-stream. Replicated tables turn
  read-only, inserts fail and back off (``salewatch_clickhouse_write_errors_total``), counting
  goes on (events received during the outage), and everything is stored after it returns.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest

from streams import stack
from streams.settings import Settings
from streams.stack import processes
from streams.stack.layout import StateLayout
from tests.cluster.conftest import SHAPE, cluster_node_settings
from tests.faults.support import Producer
from tests.faults.test_two_workers import (
    EMITTERS,
    RATE,
    Outcome,
    Stream,
    move_b_away,
    received,
    settle,
    start_both,
    two_workers,
)
from tests.integration.support import ch_scalar, clickhouse, metric_value, wait_until

pytestmark = pytest.mark.integration

DUPLICATE_EVERY = 50
ZOOKEEPER_DOWN_S = 30
RAW_LOCAL = ("orders_raw_local", "carts_raw_local")
REDELIVERED = 300


@dataclass
class ClusterOutcome:
    outcome: Outcome
    duplicates_sent: int
    physical_rows: int  # raw rows before FINAL, over the shards (one replica each)
    seconds: float
    replicas: dict[str, dict[int, tuple[int, ...]]]  # table -> shard -> count per replica
    write_errors: float = 0.0
    received_while_down: float = 0.0
    redelivered: tuple[int, int] = (0, 0)  # orders_raw (physical, FINAL) after redelivering


def with_duplicates(run: Stream) -> int:
    """Make the producer send every DUPLICATE_EVERY-th event twice in a row."""
    items = run.producer.items
    doubled = []
    for i, item in enumerate(items):
        doubled.append(item)
        if i % DUPLICATE_EVERY == 0:
            doubled.append(item)
    run.producer = Producer(run.settings, doubled, per_second=RATE)
    return len(doubled) - len(items)


def stop_workers(run: Stream) -> None:
    """Stop the producer and both workers. The database is left to the cluster's teardown
    (stack down, state dir removed): 18.16 once took minutes to drop a replicated table
    right after its sibling replica had been killed and restarted (DROP waits for the
    table's background fetches), which is no part of what these tests check."""
    run.producer.running.set()
    run.b.stop()
    run.a.stop()


def node_pid(settings: Settings, name: str) -> int:
    pid = processes.read_pid(StateLayout.from_settings(settings).pid_file(name))
    assert pid is not None, f"{name} has no PID file"
    return pid


def replica_counts(settings: Settings) -> dict[str, dict[int, tuple[int, ...]]]:
    """Rows of each raw local table on every replica, by shard."""
    out: dict[str, dict[int, tuple[int, ...]]] = {}
    for table in RAW_LOCAL:
        by_shard: dict[int, tuple[int, ...]] = {}
        for shard in range(SHAPE.shards):
            by_shard[shard + 1] = tuple(
                int(
                    ch_scalar(
                        cluster_node_settings(settings, shard * SHAPE.replicas + r),
                        f"SELECT count() FROM {table}",
                    )
                )
                for r in range(SHAPE.replicas)
            )
        out[table] = by_shard
    return out


def replicas_agree(counts: dict[str, dict[int, tuple[int, ...]]]) -> bool:
    return all(len(set(c)) == 1 for by_shard in counts.values() for c in by_shard.values())


def redeliver_rows(settings: Settings, n: int) -> tuple[int, int]:
    """Insert ``n`` stored orders again through the Distributed table, as a worker does
    after a crash between insert and offset commit; (physical rows, rows FINAL) after."""
    client = clickhouse(settings)
    try:
        client.execute(
            f"INSERT INTO orders_raw SELECT * FROM orders_raw LIMIT {n}",
            settings={"insert_distributed_sync": 1},
        )
    finally:
        client.disconnect()
    return (
        int(ch_scalar(settings, "SELECT count() FROM orders_raw")),
        int(ch_scalar(settings, "SELECT count() FROM orders_raw FINAL")),
    )


def physical(settings: Settings) -> int:
    return sum(int(ch_scalar(settings, f"SELECT count() FROM {t[:-6]}")) for t in RAW_LOCAL)


@pytest.fixture(scope="module")
def replicas_and_worker_killed(
    cluster_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> ClusterOutcome:
    started = time.monotonic()
    run = two_workers(cluster_settings, tmp_path_factory.mktemp("cluster-kill"))
    duplicates = with_duplicates(run)
    sent_total = len(run.producer.items)
    try:
        start_both(run)
        wait_until(lambda: run.producer.sent, lambda s: s >= sent_total // 3, 90, "1/3 produced")
        second_replicas = [f"clickhouse-s{s}r2" for s in range(1, SHAPE.shards + 1)]
        for name in second_replicas:
            os.kill(node_pid(cluster_settings, name), signal.SIGKILL)
        wait_until(lambda: run.producer.sent, lambda s: s >= sent_total // 2, 90, "1/2 produced")
        stack.up(cluster_settings, cluster_shape=SHAPE, echo=lambda _: None)
        wait_until(
            lambda: run.producer.sent, lambda s: s >= 2 * sent_total // 3, 90, "2/3 produced"
        )
        before = (received(run.a), received(run.b))
        moved_s = move_b_away(run, signal.SIGKILL)
        outcome = settle(run, before, moved_s)
        replicas = wait_until(
            lambda: replica_counts(run.settings), replicas_agree, 60, "replicas caught up"
        )
        rows = physical(run.settings)
        return ClusterOutcome(
            outcome,
            duplicates,
            rows,
            time.monotonic() - started,
            replicas,
            redelivered=redeliver_rows(run.settings, REDELIVERED),
        )
    finally:
        stop_workers(run)


@pytest.fixture(scope="module")
def zookeeper_stopped(
    cluster_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> ClusterOutcome:
    started = time.monotonic()
    run = two_workers(cluster_settings, tmp_path_factory.mktemp("cluster-zk"))
    duplicates = with_duplicates(run)
    sent_total = len(run.producer.items)
    try:
        start_both(run)
        wait_until(lambda: run.producer.sent, lambda s: s >= sent_total // 4, 90, "1/4 produced")
        zk = node_pid(cluster_settings, "zookeeper")
        processes.stop(zk, 10)
        down_at = time.monotonic()
        received_at_stop = received(run.a) + received(run.b)
        time.sleep(ZOOKEEPER_DOWN_S)
        received_while_down = received(run.a) + received(run.b) - received_at_stop
        write_errors = metric_value(
            run.a.metrics_text(), "salewatch_clickhouse_write_errors_total"
        ) + metric_value(run.b.metrics_text(), "salewatch_clickhouse_write_errors_total")
        stack.up(cluster_settings, cluster_shape=SHAPE, echo=lambda _: None)
        print(f"\nZooKeeper down {time.monotonic() - down_at:.1f} s")
        # no worker move here: b stays; settle() reads b's log for what moved
        run.a_log_at_move = len(run.a.log_text())
        outcome = settle(run, (0.0, 0.0), 0.0)
        replicas = wait_until(
            lambda: replica_counts(run.settings), replicas_agree, 60, "replicas caught up"
        )
        return ClusterOutcome(
            outcome,
            duplicates,
            physical(run.settings),
            time.monotonic() - started,
            replicas,
            write_errors,
            received_while_down,
        )
    finally:
        stop_workers(run)


@pytest.fixture(params=["replicas_and_worker_killed", "zookeeper_stopped"])
def scenario(request: pytest.FixtureRequest) -> ClusterOutcome:
    result: ClusterOutcome = request.getfixturevalue(request.param)
    print(
        f"\n{request.param}: {result.seconds:.0f} s, replicas {result.replicas}, "
        f"{result.duplicates_sent} duplicates sent, {result.physical_rows} raw rows before "
        f"FINAL, redelivered (physical, FINAL) {result.redelivered}, write errors "
        f"{result.write_errors:.0f}, received while ZooKeeper was down "
        f"{result.received_while_down:.0f}"
    )
    return result


def test_raw_tables_hold_every_event_exactly_once(scenario: ClusterOutcome) -> None:
    """Through the Distributed tables: ``FINAL`` rows = distinct ids = events, although
    duplicates were delivered (on purpose and by redelivery) and are stored."""
    outcome = scenario.outcome
    assert outcome.counts["orders_raw"][:2] == (outcome.n_orders, outcome.n_orders)
    assert outcome.counts["carts_raw"][:2] == (outcome.n_carts, outcome.n_carts)


def test_a_redelivered_row_lands_on_its_originals_shard_and_final_collapses_it(
    replicas_and_worker_killed: ClusterOutcome,
) -> None:
    """Sharded by ``cityHash64(event_id)``: ``FINAL``, applied per shard, sees both copies."""
    physical_rows, final_rows = replicas_and_worker_killed.redelivered
    n_orders = replicas_and_worker_killed.outcome.n_orders
    assert final_rows == n_orders
    assert physical_rows >= n_orders + REDELIVERED  # stored twice, counted once


def test_rollups_of_closed_windows_match_ground_truth(scenario: ClusterOutcome) -> None:
    assert scenario.outcome.rollups == scenario.outcome.truth, scenario.outcome.diff


def test_nothing_was_counted_late(scenario: ClusterOutcome) -> None:
    assert scenario.outcome.late == 0


def test_rollup_rows_are_named_by_partition(scenario: ClusterOutcome) -> None:
    assert scenario.outcome.emitters == EMITTERS, scenario.outcome.emitters


def test_every_replica_holds_what_its_sibling_holds(scenario: ClusterOutcome) -> None:
    assert replicas_agree(scenario.replicas), scenario.replicas


def test_the_survivor_took_over_the_killed_workers_partitions(
    replicas_and_worker_killed: ClusterOutcome,
) -> None:
    outcome = replicas_and_worker_killed.outcome
    assert outcome.moved_to_a == outcome.b_held_before_move, outcome.a_log_from_move[-3000:]


def test_inserts_backed_off_while_zookeeper_was_down_and_counting_went_on(
    zookeeper_stopped: ClusterOutcome,
) -> None:
    assert zookeeper_stopped.write_errors > 0
    assert zookeeper_stopped.received_while_down > 0


def test_cluster_tests_fit_the_ci_budget(scenario: ClusterOutcome) -> None:
    assert scenario.seconds < 180, scenario.seconds
