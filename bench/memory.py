"""Worker RSS after 1M, 5M and 10M events from a population of 1M users.

One worker replays a long stream (``SALEWATCH_WINDOW_CLOCK=event``): events are spread
over event time so that the first checkpoint already covers ``FIRST_CHECKPOINT_SPAN_S``
(40 minutes) — longer than a session's expiry (30 min idle + window grace), so what
must stay bounded (open sessions, recent event ids, order categories, open windows)
has reached its steady size before the first RSS reading, and anything that still grows
afterwards is a leak. Users are visited in a cycle through all 1M (``bench.workload``),
so the 10M stream touches ~1M distinct users.

Production stays at most ``BACKLOG`` events ahead of the worker, as in a live system
that keeps up: a backlog of millions would measure the consumer's prefetch buffers
instead (seen: with a checkpoint-sized backlog of gzip batches, aiokafka held ~180k
decoded records at once), and uncompressed, for the same reason (a 1 MB compressed fetch
of this synthetic data decompresses to ~10 MB per partition). Clicks go in SDK arrays of
up to 10 events to get through 10M events in minutes; that changes no state a worker
keeps per event. RSS is read from ``/proc/<pid>/status`` once the worker has stored
every event up to the checkpoint and a few timer ticks have passed.

Two things would make the worker count most of the replay late (only stored, not
counted: sessions and windows would then hold a fraction of their real size), so each
reading records the share of late events so far (``late_share``):

* **where event time lies**: a worker that starts on an empty database with the event
  clock takes the wall clock as "now" for its state rebuild (``streams.worker.recovery``) and
  treats every window older than ``MAX_CATCH_UP_MS`` (1 h) before it as closed. The
  stream therefore starts ``START_BEFORE_NOW_S`` (30 min) before the worker and runs
  into the future (6.7 h for 10M events; events up to ``max_future_s``, 24 h, ahead are
  valid). Seen with a stream that ended at the start instead: 100 % late up to the last
  hour of event time;
* **how far production runs ahead**: the event clock is the newest event time of any
  partition, and the reader does not drain all 20 partitions evenly, so the events of a
  chunk produced at once can be read minutes of event time apart. ``BACKLOG`` (40,000:
  chunks of 20,000 events, ~50 s of event time) keeps that below the lateness. Seen
  with 200,000 (chunks of 4 minutes): 32–55 % of the events late;
* **concurrent sessions**: ``CONCURRENT_SESSIONS`` (2,000), not the throughput workload's
  20,000: at this event-time rate (~420 events/s) a session of 20,000 gets an event every
  ~48 s, so an SDK array of its 10 events would span ~8 minutes of event time, older
  than the window lateness behind the newest event. With 2,000 a session's events are
  ~5 s apart, as from one browser.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import kafka_io
from bench.throughput import WorkerSpec
from bench.workers import BenchEnv, MachineLoad, WorkerProc, events_done, metric_sum
from bench.workload import Message, Workload, WorkloadConfig
from streams.settings import Settings

FIRST_CHECKPOINT_SPAN_S = 2400
START_BEFORE_NOW_S = 1800
CONCURRENT_SESSIONS = 2_000
SETTLE_S = 3.0
MAX_ARRAY = 10
BACKLOG = 40_000

Log = Callable[[str], None]


def _stream(workload: Workload, total: int, start_ms: int, rate: float) -> Iterator[Message]:
    step = 1000.0 / rate
    for i in range(total):
        yield from workload.next_messages(start_ms + int(i * step))
    yield from workload.flush()


def late_share(metrics: str) -> float:
    """Share of the valid events so far that were counted late, from a /metrics text."""
    late = metric_sum(metrics, "salewatch_events_late_total")
    valid = metric_sum(metrics, "salewatch_events_valid_total")
    return round(late / valid, 4) if valid else 0.0


def measure(
    base: Settings,
    log_dir: Path,
    checkpoints: Sequence[int],
    log: Log,
    port: int = 9200,
    spec: WorkerSpec | None = None,
    users: int = 1_000_000,
    timeout_s: float = 7200.0,
) -> dict[str, Any]:
    spec = spec or WorkerSpec()
    total = max(checkpoints)
    rate = checkpoints[0] / FIRST_CHECKPOINT_SPAN_S
    start_ms = int(time.time() * 1000) - START_BEFORE_NOW_S * 1000
    workload = Workload(
        WorkloadConfig(
            users=users,
            max_array=MAX_ARRAY,
            seed=11,
            concurrent_sessions=CONCURRENT_SESSIONS,
        )
    )
    stream = _stream(workload, total, start_ms, rate)
    env = BenchEnv.create(base, log_dir, window_clock="event")
    env.create_topics()
    env.migrate()
    worker = WorkerProc(env, port, spec.command, dict(spec.extra_env or {}))
    readings: list[dict[str, float]] = []
    trace: list[tuple[float, float]] = []
    produced = 0
    load = MachineLoad()
    deadline = time.monotonic() + timeout_s
    try:
        worker.start()
        worker.wait_ready()
        for checkpoint in sorted(checkpoints):
            done = 0.0
            next_report = time.monotonic() + 15
            while produced < checkpoint or done < produced:
                if produced < checkpoint and done >= produced - BACKLOG // 2:
                    chunk: list[Message] = []
                    target = min(checkpoint, produced + BACKLOG // 2)
                    while produced < target:
                        message = next(stream)
                        chunk.append(message)
                        produced += message.events
                    asyncio.run(kafka_io.produce(env.settings.kafka_bootstrap, env.topic, chunk))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"memory run timed out at {done:,.0f} events")
                if worker.proc is not None and worker.proc.poll() is not None:
                    raise RuntimeError(f"worker died:\n{worker.log_text()[-3000:]}")
                done = events_done(worker.metrics_text())
                trace.append((done, worker.rss_mb()))
                if time.monotonic() > next_report:
                    log(f"    {done:,.0f} / {checkpoint:,} events, RSS {worker.rss_mb():.0f} MiB")
                    next_report += 15
                if done < produced:
                    time.sleep(0.5)
            time.sleep(SETTLE_S)
            rss = worker.rss_mb()
            late = late_share(worker.metrics_text())
            readings.append({"events": produced, "rss_mb": round(rss, 1), "late_share": late})
            log(f"    after {produced:,} events: RSS {rss:.0f} MiB, {late:.1%} counted late")
    finally:
        worker.stop()
        env.cleanup()
    first, last = readings[0]["rss_mb"], readings[-1]["rss_mb"]
    return {
        "readings": readings,
        "trace": trace[:: max(1, len(trace) // 400)],
        "growth_mb": round(last - first, 1),
        "growth_pct": round(100 * (last - first) / first, 1),
        "distinct_users": min(workload.sessions_started, users),
        "sessions": workload.sessions_started,
        "event_time_rate": rate,
        "event_time_span_h": round(total / rate / 3600, 1),
        "machine": load.finish(),
    }
