"""``salewatch bench`` parses the benchmark options (``streams.cli.bench``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from streams.cli import bench as bench_cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_defaults() -> None:
    args = parse()
    assert (args.quick, args.events, args.skip, args.out) == (
        False,
        None,
        [],
        Path("bench/results.json"),
    )
    assert args.func is bench_cli.run


def test_options() -> None:
    args = parse("--quick", "--events", "1000", "--only", "throughput", "memory")
    assert (args.quick, args.events, args.only) == (True, 1000, ["throughput", "memory"])


def test_unknown_step_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--only", "everything")
