"""Isolated benchmark environments and worker subprocesses.

Every measurement gets its own topic prefix, ClickHouse database (migrated) and consumer
group (``BenchEnv``), like the integration tests, so runs never see each other's data and
a wedged tansu group id (STACK.md) cannot stall a later run. Workers are real
``salewatch worker`` processes (variants differ only in their environment), started in
their own session and stopped by PID.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickhouse_driver import Client

from bench import kafka_io
from streams.clickhouse.client import checked_executor, make_client
from streams.clickhouse.migrations import apply_migrations, discover_migrations
from streams.events.contract import DEAD_LETTER_TOPIC, ORDERS_BY_SESSION_TOPIC, TOPICS
from streams.settings import ENV_PREFIX, Settings, settings_env

READY_MARK = "salewatch worker: ready"
READY_TIMEOUT_S = 90.0
SOURCE_TOPICS: tuple[str, ...] = tuple(TOPICS)
ALL_TOPICS: tuple[str, ...] = (*TOPICS, DEAD_LETTER_TOPIC, ORDERS_BY_SESSION_TOPIC)


@dataclass
class BenchEnv:
    """One isolated run: topics ``bench<tag>.*``, database ``sw_bench_<tag>``, group."""

    settings: Settings
    log_dir: Path

    @classmethod
    def create(cls, base: Settings, log_dir: Path, **overrides: Any) -> BenchEnv:
        tag = uuid.uuid4().hex[:8]
        settings = base.model_copy(
            update={
                "topic_prefix": f"bench{tag}.",
                "clickhouse_database": f"sw_bench_{tag}",
                "app_id": f"sw-bench-{tag}",
                **overrides,
            }
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings, log_dir)

    @property
    def tag(self) -> str:
        return self.settings.app_id.removeprefix("sw-bench-")

    def topic(self, name: str) -> str:
        return self.settings.kafka_topic(name)

    def create_topics(self) -> None:
        names = [self.topic(t) for t in ALL_TOPICS]
        asyncio.run(
            kafka_io.create_topics(
                self.settings.kafka_bootstrap, names, self.settings.topic_partitions
            )
        )

    def migrate(self) -> None:
        client = make_client(self.settings, use_database=False, send_receive_timeout_s=600.0)
        try:
            execute = checked_executor(client, self.settings)
            apply_migrations(execute, self.settings.clickhouse_database, discover_migrations())
        finally:
            client.disconnect()

    def clickhouse(self) -> Client:
        return make_client(self.settings, client_name="salewatch-bench")

    def cleanup(self) -> None:
        """Drop the database and delete every topic of this run."""
        client = make_client(self.settings, use_database=False)
        try:
            client.execute(f"DROP DATABASE IF EXISTS {self.settings.clickhouse_database}")
        finally:
            client.disconnect()
        bootstrap = self.settings.kafka_bootstrap
        prefix = self.settings.topic_prefix
        names = [n for n in asyncio.run(kafka_io.list_topics(bootstrap)) if n.startswith(prefix)]
        asyncio.run(kafka_io.delete_topics(bootstrap, names))


@dataclass
class WorkerProc:
    """A worker subprocess with its own /metrics port and log file."""

    env: BenchEnv
    metrics_port: int
    command: Sequence[str] = ("-m", "streams.cli", "worker")
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.env.log_dir / f"worker-{self.env.tag}-{self.metrics_port}.log"

    def start(self) -> None:
        env = {
            **os.environ,
            **settings_env(self.env.settings),
            f"{ENV_PREFIX}METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *self.command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while READY_MARK not in self.log_text():
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {timeout_s:.0f}s")
            time.sleep(0.1)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics_text(self, timeout_s: float = 5.0) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return str(response.read().decode())

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def load_average() -> float:
    """The 1-minute load average of the machine."""
    return os.getloadavg()[0]


_SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of every sample of ``name`` in a /metrics text (fast scan)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        out.append((labels, float(match.group(3))))
    return out


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for lbl, v in metric_samples(text, name) if labels.items() <= lbl.items())


def events_done(text: str) -> float:
    """Events a worker has fully handled: raw rows accepted by ClickHouse + dead letters."""
    rows = sum(
        v
        for lbl, v in metric_samples(text, "salewatch_clickhouse_rows_written_total")
        if lbl.get("table", "").endswith("_raw")
    )
    return rows + metric_sum(text, "salewatch_dead_letters_total")


def _cpu_ticks() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


STACK_SERVICES = {"broker_cores": "kafka", "clickhouse_cores": "clickhouse"}


@functools.cache
def _stack_pids() -> dict[str, int | None]:
    """PIDs of the local stack's broker and ClickHouse (``salewatch stack status``)."""
    from streams.settings import get_settings
    from streams.stack.lifecycle import status

    stack = status(get_settings())
    pids: dict[str, int | None] = {}
    for key, service in STACK_SERVICES.items():
        try:
            pids[key] = stack[service].pid
        except KeyError:
            pids[key] = None
    return pids


def _stack_cpu() -> dict[str, float]:
    """CPU seconds so far of the stack's broker and ClickHouse (NaN when unknown)."""
    used: dict[str, float] = {}
    for key, pid in _stack_pids().items():
        try:
            used[key] = cpu_seconds(pid) if pid is not None else math.nan
        except OSError:
            used[key] = math.nan
    return used


@dataclass
class MachineLoad:
    """CPU use of the whole machine over an interval, to put a figure in context.

    ``busy_cores`` counts every process (this benchmark's workers, the broker, ClickHouse,
    and whatever else runs on the shared machine); ``broker_cores`` and
    ``clickhouse_cores`` are the stack's share of it; the 1-minute load average is
    sampled at the start and the end.
    """

    load_start: float = field(default_factory=load_average)
    _start: tuple[int, int] = field(default_factory=_cpu_ticks)
    _stack: dict[str, float] = field(default_factory=_stack_cpu)
    _t0: float = field(default_factory=time.monotonic)

    def finish(self) -> dict[str, float]:
        busy0, total0 = self._start
        busy1, total1 = _cpu_ticks()
        cores = os.cpu_count() or 1
        share = (busy1 - busy0) / max(total1 - total0, 1)
        wall = time.monotonic() - self._t0
        stack = {k: round((v - self._stack[k]) / wall, 2) for k, v in _stack_cpu().items()}
        return {
            "load1_start": round(self.load_start, 2),
            "load1_end": round(load_average(), 2),
            "busy_cores": round(share * cores, 2),
            **stack,
            "wall_s": round(wall, 1),
        }
