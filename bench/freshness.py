"""Freshness under load: production → /metrics and production → ClickHouse, per marker.

Method (see ``bench.loadgen`` for the markers): workers start and join first; then the
load generator runs at a fixed rate for a fixed time, 20 markers/s among the load. Two
pollers in this process watch them:

* /metrics of every worker every ``METRICS_POLL_S``: marker ``i`` of partition ``p`` is
  visible at the first response whose marker counter for ``p`` (summed over workers) is
  ``≥ i``;
* ClickHouse every ``CLICKHOUSE_POLL_S``: ``clicks_raw`` rows of marker event ids (a
  primary-key range: ``event_type``, ``event_time`` of the last ``CLICKHOUSE_LOOKBACK_S``).
  The range slides: a poll from the start of the run would read every page view stored so
  far, ten times a second, and in a 5-minute run at 50k events/s that scan took more of
  ClickHouse's CPU than the inserts it measures. A marker stored more than
  ``CLICKHOUSE_LOOKBACK_S`` after it was sent is never seen, so it counts as missing
  (infinitely late): the window can only make a figure worse, never better.

Latency = the wall time at the end of the poll that first showed the marker minus the time
the generator handed it to the producer (same machine, same clock). Resolution: one poll
interval plus the poll's own duration (both reported); the figure is an upper bound by at
most that much. Markers of the first ``WARMUP_S`` (first inserts, connections) are left
out. A marker never seen before the drain deadline (``DRAIN_S`` after the load stopped)
counts as infinitely late in the percentiles (so a p99 is never flattered by the markers
a falling-behind worker did not get to) and is also reported as missing.

The load generator shares the 2 cores with the workers, the broker and ClickHouse; its
CPU seconds are in the results.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench.loadgen import MARKER_CHANNELS, MARKER_PAGE, MARKER_SOURCE
from bench.stats import summarize
from bench.throughput import WorkerSpec
from bench.workers import BenchEnv, MachineLoad, WorkerProc, events_done, metric_samples

METRICS_POLL_S = 0.1
CLICKHOUSE_POLL_S = 0.1
CLICKHOUSE_LOOKBACK_S = 60
WARMUP_S = 2.0
DRAIN_S = 30.0

Log = Callable[[str], None]


@dataclass
class Observations:
    """What the pollers saw: marker counts per partition over time, ClickHouse first seen."""

    metrics: list[tuple[float, tuple[int, ...]]] = field(default_factory=list)
    clickhouse: dict[str, float] = field(default_factory=dict)
    metrics_poll_s: list[float] = field(default_factory=list)
    clickhouse_poll_s: list[float] = field(default_factory=list)
    done: list[tuple[float, float]] = field(default_factory=list)
    rss_max_mib: list[float] = field(default_factory=list)  # per worker, sampled every 1 s
    stop: threading.Event = field(default_factory=threading.Event)


def marker_counts(texts: Sequence[str], partitions: int) -> tuple[int, ...]:
    counts = [0] * partitions
    for text in texts:
        for labels, value in metric_samples(text, "salewatch_page_views_total"):
            if labels.get("traffic_source") != MARKER_SOURCE:
                continue
            if labels.get("page_type") != MARKER_PAGE:
                continue
            channel = labels.get("channel", "")
            if channel in MARKER_CHANNELS[:partitions]:
                counts[MARKER_CHANNELS.index(channel)] += int(value)
    return tuple(counts)


def _poll_metrics(procs: Sequence[WorkerProc], partitions: int, seen: Observations) -> None:
    last_done = 0.0
    while not seen.stop.is_set():
        started = time.time()
        texts = []
        for proc in procs:
            with contextlib.suppress(OSError):
                texts.append(proc.metrics_text(timeout_s=2.0))
        finished = time.time()
        seen.metrics.append((finished, marker_counts(texts, partitions)))
        seen.metrics_poll_s.append(finished - started)
        if finished - last_done > 1.0:
            seen.done.append((finished, sum(events_done(t) for t in texts)))
            last_done = finished
            with contextlib.suppress(OSError):
                rss = [proc.rss_mb() for proc in procs]
                seen.rss_max_mib = [
                    max(a, b) for a, b in zip_longest(seen.rss_max_mib, rss, fillvalue=0.0)
                ]
        seen.stop.wait(max(0.0, METRICS_POLL_S - (time.time() - started)))


def _poll_clickhouse(env: BenchEnv, since_s: int, seen: Observations) -> None:
    client = env.clickhouse()
    db = env.settings.clickhouse_database
    query = (
        f"SELECT event_id FROM {db}.clicks_raw WHERE event_type = 'page_view' "
        "AND event_time >= toDateTime(%(since)s) "
        f"AND traffic_source = '{MARKER_SOURCE}' AND page_type = '{MARKER_PAGE}'"
    )
    try:
        while not seen.stop.is_set():
            started = time.time()
            since = max(since_s, int(started) - CLICKHOUSE_LOOKBACK_S)
            rows = client.execute(query, {"since": since})
            finished = time.time()
            for (event_id,) in rows:
                seen.clickhouse.setdefault(event_id, finished)
            seen.clickhouse_poll_s.append(finished - started)
            seen.stop.wait(max(0.0, CLICKHOUSE_POLL_S - (time.time() - started)))
    finally:
        client.disconnect()


def latencies(
    markers: Sequence[tuple[int, int, str, float]], seen: Observations, first_s: float
) -> tuple[list[float], list[float], int, int]:
    """(to /metrics, to ClickHouse, missing on /metrics, missing in ClickHouse)."""
    to_metrics: list[float] = []
    to_clickhouse: list[float] = []
    missing_m = missing_c = 0
    pointer = 0
    # markers of one partition are counted in order, so scan the poll history once
    by_partition: dict[int, list[tuple[int, float]]] = {}
    for p, i, _event_id, sent_at in markers:
        by_partition.setdefault(p, []).append((i, sent_at))
    visible: dict[tuple[int, int], float] = {}
    for p, items in by_partition.items():
        pointer = 0
        for i, _sent in sorted(items):
            while pointer < len(seen.metrics) and seen.metrics[pointer][1][p] < i:
                pointer += 1
            if pointer < len(seen.metrics):
                visible[(p, i)] = seen.metrics[pointer][0]
    for p, i, event_id, sent_at in markers:
        if sent_at < first_s:
            continue
        at = visible.get((p, i))
        if at is None:
            missing_m += 1
        to_metrics.append(math.inf if at is None else max(0.0, at - sent_at))
        at = seen.clickhouse.get(event_id)
        if at is None:
            missing_c += 1
        to_clickhouse.append(math.inf if at is None else max(0.0, at - sent_at))
    return to_metrics, to_clickhouse, missing_m, missing_c


def measure(
    env: BenchEnv,
    rate: float,
    duration_s: float,
    log: Log,
    workers: int = 2,
    port_base: int = 9200,
    spec: WorkerSpec | None = None,
    max_array: int = 1,
) -> dict[str, Any]:
    """Run ``workers`` workers under ``rate`` events/s for ``duration_s``; latencies."""
    spec = spec or WorkerSpec()
    partitions = env.settings.topic_partitions
    procs = [
        WorkerProc(env, port_base + i, spec.command, dict(spec.extra_env or {}))
        for i in range(workers)
    ]
    workdir = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    markers_path, summary_path = workdir / "markers.jsonl", workdir / "summary.json"
    seen = Observations()
    pollers: list[threading.Thread] = []
    generator: subprocess.Popen[bytes] | None = None
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready()
        time.sleep(3)  # a second worker may still be rebalancing its first assignment
        started = time.time()
        pollers = [
            threading.Thread(target=_poll_metrics, args=(procs, partitions, seen), daemon=True),
            threading.Thread(
                target=_poll_clickhouse, args=(env, int(started) - 5, seen), daemon=True
            ),
        ]
        for poller in pollers:
            poller.start()
        load = MachineLoad()
        cpu0 = [p.cpu_s() for p in procs]
        command = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--bootstrap",
            env.settings.kafka_bootstrap,
            "--prefix",
            env.settings.topic_prefix,
            "--partitions",
            str(partitions),
            "--rate",
            str(rate),
            "--duration",
            str(duration_s),
            "--max-array",
            str(max_array),
            "--tag",
            env.tag,
            "--markers",
            str(markers_path),
            "--summary",
            str(summary_path),
        ]
        with (env.log_dir / f"loadgen-{env.tag}.log").open("ab") as out:
            generator = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        next_report = time.time() + 10
        while generator.poll() is None:
            if time.time() > next_report:
                done = seen.done[-1][1] if seen.done else 0
                log(f"    {time.time() - started:.0f} s: {done:,.0f} events stored")
                next_report += 10
            if time.time() > started + duration_s + 60:
                raise RuntimeError("load generator did not finish")
            time.sleep(0.2)
        load_end = time.time()
        summary = json.loads(summary_path.read_text())
        markers = read_markers(markers_path)
        _wait_for_markers(markers, seen, partitions)
        machine = load.finish()
        cpu = [p.cpu_s() - c for p, c in zip(procs, cpu0, strict=True)]
    finally:
        seen.stop.set()
        for poller in pollers:
            poller.join(10)
        if generator is not None and generator.poll() is None:
            os.killpg(generator.pid, signal.SIGTERM)
            generator.wait(10)
        for proc in procs:
            proc.stop()
    first_sent = min((m[3] for m in markers), default=started)
    to_metrics, to_ch, missing_m, missing_c = latencies(markers, seen, first_sent + WARMUP_S)
    done_at_load_end = max((d for t, d in seen.done if t <= load_end), default=0.0)
    return {
        "rate_target": rate,
        "rate_produced": summary["events"] / summary["seconds"],
        "workers": workers,
        "duration_s": duration_s,
        "markers": len(markers),
        "to_metrics": summarize(to_metrics).as_dict(),
        "to_clickhouse": summarize(to_ch).as_dict(),
        "missing_metrics": missing_m,
        "missing_clickhouse": missing_c,
        "backlog_at_load_end": summary["events"] - done_at_load_end,
        "metrics_poll_s": _mean(seen.metrics_poll_s) + METRICS_POLL_S,
        "clickhouse_poll_s": _mean(seen.clickhouse_poll_s) + CLICKHOUSE_POLL_S,
        "loadgen_cpu_s": summary["cpu_s"],
        "loadgen_cores": summary["cpu_s"] / summary["seconds"],
        "worker_cores": [round(c / machine["wall_s"], 2) for c in cpu],
        "worker_rss_max_mib": [round(r) for r in seen.rss_max_mib],
        "machine": machine,
    }


Marker = tuple[int, int, str, float]


def read_markers(path: Path) -> list[Marker]:
    """``(partition, i, event_id, sent_at)`` of every marker the load generator sent."""
    out: list[Marker] = []
    for line in path.read_text().splitlines():
        p, i, event_id, sent_at = json.loads(line)
        out.append((int(p), int(i), str(event_id), float(sent_at)))
    return out


def _wait_for_markers(
    markers: Sequence[tuple[int, int, str, float]], seen: Observations, partitions: int
) -> None:
    final = [0] * partitions
    for p, i, _e, _s in markers:
        final[p] = max(final[p], i)
    ids = {m[2] for m in markers}
    deadline = time.time() + DRAIN_S
    while time.time() < deadline:
        counts = seen.metrics[-1][1] if seen.metrics else (0,) * partitions
        metrics_ok = all(c >= f for c, f in zip(counts, final, strict=True))
        if metrics_ok and ids <= seen.clickhouse.keys():
            return
        time.sleep(0.2)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
