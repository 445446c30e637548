"""``salewatch bench``: run the issue-8 benchmarks on the local stack (see ``bench/``).

The benchmark code lives in the top-level ``bench`` package of the source checkout (it is
not installed with the wheel), so this command works from a checkout only and says so
otherwise. Options are those of ``python -m bench.run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure throughput, freshness, memory and scale-out (issue 8)"
    )
    try:
        options = importlib.import_module("bench.options")
    except ModuleNotFoundError:
        options = None
    if options is not None:
        options.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        bench_run = importlib.import_module("bench.run")
    except ModuleNotFoundError as exc:
        if exc.name is None or not "bench.run".startswith(exc.name):
            raise
        print(
            "salewatch bench: the bench package is not importable; run it from the source "
            "checkout (cd to the repository root)",
            file=sys.stderr,
        )
        return 1
    result: int = bench_run.run(args)
    return result
