"""The worker configurations the benchmark compares.

``worker`` is ``salewatch worker`` exactly as shipped (the batch reader of
``streams.worker.reader``, uvloop, Faust's consumer and sensors off). The other entries
change only settings the worker reads from its environment, so they need no code of their
own: each answers one question the results ask about the shipped reader. The memory probe
runs the unchanged worker with a logging thread (``bench.probed_worker``).
"""

from __future__ import annotations

from bench.throughput import WorkerSpec

VARIANTS: dict[str, WorkerSpec] = {
    "worker": WorkerSpec(),
    # fetches of up to 80,000 records (4 × batch size) and inserts of up to 80,000 rows:
    # how much of the per-event cost is per fetch / per insert rather than per event
    "worker+batch-20k": WorkerSpec(extra_env={"SALEWATCH_BATCH_SIZE": "20000"}),
    # raw inserts at once, as before round 3 (no linger): what the linger costs or saves
    "worker+linger-0": WorkerSpec(extra_env={"SALEWATCH_INSERT_LINGER_S": "0"}),
    # the shipped worker logging its largest containers every 20 s (memory step only:
    # ``--memory-variant worker+memory-probe``)
    "worker+memory-probe": WorkerSpec(("-m", "bench.probed_worker", "20")),
}

DESCRIPTIONS: dict[str, str] = {
    "worker": "salewatch worker as shipped (batch reader, uvloop)",
    "worker+batch-20k": "as shipped, SALEWATCH_BATCH_SIZE=20000 (default 5000)",
    "worker+linger-0": "as shipped, SALEWATCH_INSERT_LINGER_S=0 (default 1.0)",
    "worker+memory-probe": "as shipped, logging its largest containers",
}

# freshness runs: (variant, load events/s, seconds held), full and quick
FRESHNESS_RUNS = tuple(
    ("worker", rate, seconds) for rate, seconds in ((5_000, 60.0), (20_000, 30.0), (50_000, 60.0))
)
FRESHNESS_RUNS_QUICK = (("worker", 5_000, 8.0), ("worker", 50_000, 6.0))
