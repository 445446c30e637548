"""Events/s of the ceiling, the Faust floor and salewatch workers on identical topics.

Each consumer reads its own copy of the same pre-produced events (same seed, same bytes,
same keys and partitions): a salewatch worker writes ``orders_by_session`` and
``dead_letters`` under its topic prefix, so a second run on the same prefix would find the
first run's re-keyed orders. Copies are produced before the consumer starts, never while
it runs. Rates are steady rates (``bench.stats.steady_rate``, 10 %→90 % of the events),
so the group join and the last partial batches are not in them.

Workers replay with ``SALEWATCH_WINDOW_CLOCK=event``: the events carry event times of a
sale peak that ended just before the run, and the wall clock would call most of them late
(late events are only stored, not counted: cheaper, and not what we want to measure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ceiling, kafka_io
from bench.stats import steady_cost, steady_rate
from bench.workers import (
    SOURCE_TOPICS,
    BenchEnv,
    MachineLoad,
    WorkerProc,
    cpu_seconds,
    events_done,
)
from bench.workload import Message
from streams.settings import Settings

POLL_S = 0.5  # each poll is a /metrics scrape of every worker: keep them rare
STALL_S = 60.0

Log = Callable[[str], None]


def produce_copy(
    base: Settings, log_dir: Path, messages: Sequence[Message], log: Log, **overrides: Any
) -> BenchEnv:
    """A fresh environment (topics, migrated database) holding ``messages``."""
    env = BenchEnv.create(base, log_dir, **overrides)
    env.create_topics()
    env.migrate()
    count, events, seconds = asyncio.run(
        kafka_io.produce(env.settings.kafka_bootstrap, env.topic, messages)
    )
    log(
        f"  produced {events:,} events in {count:,} messages to {env.settings.topic_prefix}* "
        f"in {seconds:.1f} s"
    )
    return env


def measure_ceiling(env: BenchEnv, events: int) -> dict[str, Any]:
    load = MachineLoad()
    rate, cost = ceiling.run(
        env.settings.kafka_bootstrap,
        [env.topic(t) for t in SOURCE_TOPICS],
        env.settings.topic_partitions,
        events,
    )
    return {"rate": rate, "cpu_us_per_event": _us(cost), "machine": load.finish()}


def measure_floor(
    env: BenchEnv, events: int, log: Log, uvloop: bool = False, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Run the bare Faust agent (``bench.faust_floor``) over the copy of ``env``."""
    out = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "samples.json"
    app_id = f"{env.settings.app_id}-floor{'-uvloop' if uvloop else ''}"
    command = [
        sys.executable,
        "-m",
        "bench.faust_floor",
        "--app-id",
        app_id,
        "--bootstrap",
        env.settings.kafka_bootstrap,
        "--topics",
        ",".join(env.topic(t) for t in SOURCE_TOPICS),
        "--expect",
        str(events),
        "--out",
        str(out),
        *(["--uvloop"] if uvloop else []),
    ]
    log_path = env.log_dir / f"floor-{env.tag}{'-uvloop' if uvloop else ''}.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    load = MachineLoad()
    deadline = time.monotonic() + timeout_s
    usage: list[tuple[float, float]] = []
    try:
        while not out.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"faust floor exited early; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"faust floor not done after {timeout_s:.0f}s")
            usage.append((time.perf_counter(), cpu_seconds(proc.pid)))
            time.sleep(0.2)
        time.sleep(0.2)  # let the write finish
        usage.append((time.perf_counter(), cpu_seconds(proc.pid)))
        samples = [(t, float(n)) for t, n in json.loads(out.read_text())]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    return {
        "rate": steady_rate(samples, events),
        "cpu_us_per_event": _us(steady_cost(samples, usage, events)),
        "machine": load.finish(),
    }


@dataclass
class WorkerSpec:
    """How to start a worker (``salewatch worker`` by default) and its extra environment."""

    command: tuple[str, ...] = ("-m", "streams.cli", "worker")
    extra_env: dict[str, str] | None = None


def measure_workers(
    env: BenchEnv,
    events: int,
    log: Log,
    workers: int = 1,
    port_base: int = 9200,
    spec: WorkerSpec | None = None,
    timeout_s: float = 1200.0,
) -> dict[str, Any]:
    """Run ``workers`` workers over the copy of ``env`` until every event is stored."""
    spec = spec or WorkerSpec()
    procs = [
        WorkerProc(env, port_base + i, spec.command, dict(spec.extra_env or {}))
        for i in range(workers)
    ]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready()
        load = MachineLoad()
        cpu0 = [p.cpu_s() for p in procs]
        samples, usage, per_worker = _follow(procs, events, log, timeout_s)
        machine = load.finish()
        cpu = [p.cpu_s() - c for p, c in zip(procs, cpu0, strict=True)]
        rss = [p.rss_mb() for p in procs]
    finally:
        for proc in procs:
            proc.stop()
    rate = steady_rate(samples, events)
    return {
        "rate": rate,
        "workers": workers,
        "per_worker_events": per_worker,
        "cpu_s": [round(c, 1) for c in cpu],
        "cpu_us_per_event": _us(steady_cost(samples, usage, events)),
        # ready → everything stored: the figure of runs too short for a steady window
        # (bench.committed)
        "cpu_us_per_event_run": _us(sum(cpu) / max(samples[-1][1] if samples else 0, 1)),
        "rss_mb": [round(r, 1) for r in rss],
        "machine": machine,
        "done": samples[-1][1] if samples else 0,
    }


def _follow(
    procs: Sequence[WorkerProc], events: int, log: Log, timeout_s: float
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[float]]:
    samples: list[tuple[float, float]] = []
    usage: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout_s
    last_change = time.monotonic()
    next_report = time.monotonic() + 10
    done = 0.0
    per_worker = [0.0] * len(procs)
    while done < events:
        now = time.monotonic()
        for i, proc in enumerate(procs):
            with contextlib.suppress(OSError):
                per_worker[i] = events_done(proc.metrics_text())
        total = sum(per_worker)
        at = time.perf_counter()
        samples.append((at, total))
        usage.append((at, sum(p.cpu_s() for p in procs)))
        if total > done:
            last_change = now
        done = total
        if now > next_report:
            log(f"    {done:,.0f} / {events:,} events stored")
            next_report = now + 10
        if now > deadline or now - last_change > STALL_S:
            log(f"    stopped waiting at {done:,.0f} / {events:,} events")
            break
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"worker died:\n{proc.log_text()[-3000:]}")
        time.sleep(POLL_S)
    return samples, usage, per_worker


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 1)
