"""Command-line options of the benchmark run (shared by ``salewatch bench`` and ``bench.run``)."""

from __future__ import annotations

import argparse
from pathlib import Path

STEPS = ("throughput", "variants", "scaleout", "freshness", "memory", "rebuild")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and short runs (about 2 minutes)"
    )
    parser.add_argument(
        "--events", type=int, help="events of the pre-produced topics (default 1M; quick 50k)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=STEPS, help="run only these steps (default: all)"
    )
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="steps to skip")
    parser.add_argument(
        "--memory-events",
        type=int,
        nargs="+",
        help="RSS checkpoints in events (default 1M 5M 10M; quick 50k 100k 200k)",
    )
    parser.add_argument(
        "--max-array",
        type=int,
        default=1,
        help="send clicks as SDK-style JSON arrays of up to N events (EVENTS.md) in the "
        "throughput and freshness steps; 1 (default) = one event per message",
    )
    parser.add_argument(
        "--memory-variant",
        default="worker",
        help="worker variant of the memory step (default: worker, as shipped)",
    )
    parser.add_argument(
        "--memory-env",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the memory step's worker (e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument(
        "--rebuild-minutes",
        type=float,
        nargs="+",
        help="catch-up lengths of the rebuild step, minutes at 5,000 events/s "
        "(default 5 10 20 60; quick 1 2 4)",
    )
    parser.add_argument(
        "--rebuild-baseline",
        default="main",
        help="commit whose rebuild the rebuild step compares with (default: main)",
    )
    parser.add_argument(
        "--rebuild-baseline-up-to",
        type=float,
        default=20.0,
        help="longest catch-up (minutes) the baseline rebuild runs on: it holds the whole "
        "replay in memory, ~650 MiB per million events (default 20)",
    )
    parser.add_argument(
        "--freshness-rates",
        nargs="+",
        metavar="RATE:SECONDS",
        help="the freshness step's loads, events/s for seconds each (default 5000:60 "
        "20000:30 50000:60; the issue's 5-minute 50k run: 50000:300)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        help="worker variants to run (default: all of bench.variants; quick: worker)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results.json"), help="where to write results"
    )
    parser.add_argument("--chart", type=Path, default=Path("bench/results.png"))
    parser.add_argument(
        "--port-base", type=int, default=9200, help="first /metrics port of bench workers"
    )
