"""The ``salewatch`` command: one entry point, one sub-command per job.

Each sub-command lives in its own module and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (a callable taking the parsed args and returning an exit
code). Configuration errors are printed as one line naming the setting, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from streams.settings import ConfigError

# module path of every sub-command; each has ``register(subparsers) -> None``
COMMAND_MODULES = (
    "streams.stack.cli",
    "streams.cli.migrate",
    "streams.cli.worker",
    "streams.cli.simulate",
    "streams.cli.backtest",
    "streams.cli.convert",
    "streams.cli.dashboards",
    "streams.cli.collect",
    "streams.cli.bench",
    "streams.cli.skip",
    "streams.cli.recap",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salewatch", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"salewatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
