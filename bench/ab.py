"""Before/after in one run: workers of several revisions, alternating, CPU µs per event.

Each revision is a directory holding its ``streams`` package (``git archive REV streams |
tar -x -C DIR``); its worker runs as ``python -P -m streams.cli worker`` with
``PYTHONPATH=DIR``, each on its own fresh copy of the same seeded events (exactly as
``salewatch bench``'s throughput step: ``bench.throughput.measure_workers``). Rounds
alternate the revisions so that the neighbours' load falls on all of them alike; the
figure compared is the worker's CPU per event, not events/s (``bench/RESULTS.md``).

    python -m bench.ab base=/tmp/rev/base head=/tmp/rev/head --events 300000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import throughput
from bench.run import INVALID_SHARE, PEAK_RATE, log
from bench.throughput import WorkerSpec
from bench.workload import WorkloadConfig, pre_produced
from streams.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("revisions", nargs="+", help="NAME=DIR (DIR holds streams/)")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=9560)
    parser.add_argument("--out", type=Path, default=None, help="results as JSON")
    args = parser.parse_args()
    revisions = [tuple(r.split("=", 1)) for r in args.revisions]
    for name, directory in revisions:
        if not (Path(directory) / "streams" / "__init__.py").is_file():
            parser.error(f"{name}: no streams/ package in {directory}")
    settings = load_settings()
    log_dir = Path(settings.state_dir) / "bench" / "logs"
    start_ms = int(time.time() * 1000) - args.events * 1000 // PEAK_RATE - 1000
    config = WorkloadConfig(invalid_share=INVALID_SHARE)
    messages = list(pre_produced(config, args.events, start_ms, PEAK_RATE))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in revisions}
    for round_no in range(1, args.rounds + 1):
        for name, directory in revisions:
            spec = WorkerSpec(
                ("-P", "-m", "streams.cli", "worker"),
                {"PYTHONPATH": str(Path(directory).resolve())},
            )
            env = throughput.produce_copy(settings, log_dir, messages, log, window_clock="event")
            try:
                result = throughput.measure_workers(
                    env, args.events, log, port_base=args.port_base, spec=spec
                )
            finally:
                env.cleanup()
            result["load_1m"] = round(os.getloadavg()[0], 1)
            runs[name].append(result)
            log(
                f"round {round_no} {name}: {result['cpu_us_per_event']} µs/event steady, "
                f"{result['cpu_us_per_event_run']} whole run, {result['rate']:,.0f} events/s, "
                f"RSS {result['rss_mb']} MiB, load {result['load_1m']}"
            )
    for name, results in runs.items():
        steady = [r["cpu_us_per_event"] for r in results]
        whole = [r["cpu_us_per_event_run"] for r in results]
        log(
            f"{name}: steady {steady} median {statistics.median(steady)}; "
            f"whole run {whole} median {statistics.median(whole)}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=1, default=str))


if __name__ == "__main__":
    main()
