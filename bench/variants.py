"""The worker configurations the benchmark compares.

``worker`` is ``salewatch worker`` exactly as shipped. The others change only Faust-level
things the worker does not expose (``bench.tuned_worker``), one step at a time, so each
step's gain shows on its own; ``proposed`` is all of them together, the configuration the
results propose for ``streams/app.py`` / ``streams/worker.py``. ``batch`` is the prototype
of ``bench.batch_worker``: what the chain does without Faust's per-message path.
"""

from __future__ import annotations

from bench.throughput import WorkerSpec

TUNED = ("-m", "bench.tuned_worker")

VARIANTS: dict[str, WorkerSpec] = {
    "worker": WorkerSpec(),
    "uvloop": WorkerSpec((*TUNED, "--uvloop")),
    "uvloop+no-monitor": WorkerSpec((*TUNED, "--uvloop", "--no-monitor")),
    "proposed": WorkerSpec((*TUNED, "--uvloop", "--no-monitor", "--fast-drain")),
    "batch": WorkerSpec(("-m", "bench.batch_worker", "--uvloop")),
    # the shipped worker, logging live objects by type every 20 s (memory investigation)
    "worker+memory-probe": WorkerSpec((*TUNED, "--memory-probe", "20")),
}

DESCRIPTIONS: dict[str, str] = {
    "worker": "salewatch worker as shipped (asyncio, Faust defaults)",
    "uvloop": "+ uvloop event loop",
    "uvloop+no-monitor": "+ uvloop, Faust Monitor sensor off",
    "proposed": "+ uvloop, Monitor off, direct fetch hand-off (no wait_first per message)",
    "batch": "prototype: same chain fed by aiokafka getmany batches inside the Faust app",
    "worker+memory-probe": "salewatch worker as shipped, logging live objects by type",
}

# freshness runs: (variant, load events/s, seconds held), full and quick
FRESHNESS_RUNS = tuple(
    (variant, rate, seconds)
    for variant in ("worker", "proposed", "batch")
    for rate, seconds in ((5_000, 60.0), (20_000, 30.0), (50_000, 60.0))
)
FRESHNESS_RUNS_QUICK = (("worker", 5_000, 8.0), ("proposed", 5_000, 8.0), ("proposed", 50_000, 6.0))

# Settings a variant runs its freshness runs with. Faust's take buffer flushes after
# ``batch_within_s`` of quiet (restarted after every batch), so at 5,000 events/s over two
# workers, four topics each, batches never fill and every event waits up to that long:
# the proposed configuration shortens it (ClickHouse then gets ~4 inserts/s per table).
FRESHNESS_ENV: dict[str, dict[str, str]] = {
    "proposed": {"SALEWATCH_BATCH_WITHIN_S": "0.25"},
}
