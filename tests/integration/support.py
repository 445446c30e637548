"""Helpers for integration tests against the real local stack.

Each test gets its own Kafka topic prefix, ClickHouse database and consumer group (tansu
can wedge a group id whose join was interrupted, STACK.md), so tests never see each other's
data. Workers run as real ``salewatch worker`` subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_driver import Client

from streams.settings import Settings, settings_env
from streams.worker.reader import READY_LINE

T = TypeVar("T")


def scraped_worker_port(settings: Settings) -> int:
    """The worker port tests use: the last target the stack's Prometheus scrapes
    (``Settings.metrics_targets``; 9109 by default), so a demo worker on the first one
    (9108) does not collide."""
    return int(settings.metrics_targets[-1].rsplit(":", 1)[1])


WORKER_READY_TIMEOUT_S = 60.0


def isolated_settings(base: Settings, **overrides: Any) -> Settings:
    """``base`` with a fresh topic prefix, database and consumer group."""
    tag = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = {
        "topic_prefix": f"t{tag}.",
        "clickhouse_database": f"sw_test_{tag}",
        "app_id": f"sw-test-{tag}",
        "metrics_port": scraped_worker_port(base),
        **overrides,
    }
    return base.model_copy(update=fields)


def run_cli(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``salewatch ARGS`` in a subprocess with ``settings`` as its environment."""
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_group(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30.0
) -> None:
    """Send ``sig`` to the process group of ``proc`` (started with ``start_new_session``),
    wait up to ``timeout_s``, then SIGKILL the group. Nothing if it has already exited."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_until(probe: Callable[[], T], done: Callable[[T], bool], timeout_s: float, what: str) -> T:
    """Poll ``probe`` until ``done(value)``; AssertionError with the last value on timeout."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}: {value!r}")
        time.sleep(0.25)
        value = probe()
    return value


class WorkerProcess:
    """A ``salewatch worker`` subprocess with its log in ``log_path``."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready_mark = self.log_path.read_text(errors="replace").count(READY_LINE)
        wait_until(
            lambda: (self.proc.poll() if self.proc else 0, self.log_text()),
            lambda v: v[0] is not None or v[1].count(READY_LINE) > ready_mark,
            WORKER_READY_TIMEOUT_S,
            "the worker to become ready",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        if self.proc is not None:
            stop_group(self.proc, sig, timeout_s)

    def metrics_text(self) -> str:
        url = f"http://{self.settings.metrics_host}:{self.settings.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())


@contextmanager
def running_worker(settings: Settings, log_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings, log_path)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


def clickhouse(settings: Settings) -> Client:
    return Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=settings.clickhouse_database,
    )


def ch_rows(settings: Settings, query: str) -> list[Any]:
    client = clickhouse(settings)
    try:
        rows: list[Any] = client.execute(query)
        return rows
    finally:
        client.disconnect()


def ch_scalar(settings: Settings, query: str) -> Any:
    return ch_rows(settings, query)[0][0]


def metric_value(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def prometheus_query(settings: Settings, promql: str) -> list[dict[str, Any]]:
    """Instant query against the stack's Prometheus; returns the result vector."""
    url = f"{settings.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def read_dead_letters(
    settings: Settings, expected: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The envelopes on the settings' ``dead_letters`` topic: read until ``expected`` or timeout.

    Fetch sizes allow the largest envelope (a truncated 10 MB blob is 64 KiB, but a batch
    of them is not).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        fetch_max_bytes=50 * 1024 * 1024,
        max_partition_fetch_bytes=50 * 1024 * 1024,
    )
    try:
        topic = settings.kafka_topic("dead_letters")
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        letters: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(letters) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                letters.extend(json.loads(r.value) for r in records)
        return letters
    finally:
        consumer.close()


def wait_for_rollups(client: Client, timeout_s: float = 150) -> None:
    """Wait until the worker's first closed windows are in the rollups the dashboards read
    (orders, tickets, payment failures, category sales)."""
    wait_until(
        lambda: client.execute(
            "SELECT (SELECT count() FROM orders_1m) * (SELECT count() FROM tickets_1m)"
            " * (SELECT count() FROM payment_failures_1m)"
            " * (SELECT count() FROM category_sales_1m)"
        )[0][0],
        bool,
        timeout_s,
        "the worker's first closed windows in the rollups",
    )
