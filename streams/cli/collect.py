"""``salewatch collect``: the beacon collector (``streams.collector``).

Start-up order: settings (a bad one exits 2 naming it) → collector flags (exit 2) → the
``clicks`` topic exists and Kafka answers (else exit 1 with one line) → listen on
``--host``/``--port`` (a taken port exits 1 naming the flag) → serve until SIGTERM/SIGINT,
then produce what is still waiting and flush the producer.

Also runnable alone, ``python -m streams.cli.collect``, before ``salewatch`` knows it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from streams.collector.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_REGION,
    HOST_ENV,
    PORT_ENV,
    REGION_ENV,
    CollectorConfig,
    CollectorConfigError,
    from_flags_and_env,
)
from streams.settings import ConfigError, load_settings

HELP = "receive web-vitals beacons from shop pages, produce page_view events"
_LIMITS = CollectorConfig()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("collect", help=HELP)
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help=f"listen address (else {HOST_ENV}, else {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, help=f"listen port (else {PORT_ENV}, else {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--region", help=f"region of the events (else {REGION_ENV}, else {DEFAULT_REGION})"
    )
    parser.add_argument("--max-body-bytes", type=int, default=_LIMITS.max_body_bytes)
    parser.add_argument(
        "--rate", type=float, default=_LIMITS.rate_per_s, help="beacons/s per client address"
    )
    parser.add_argument(
        "--burst", type=int, default=_LIMITS.burst, help="beacons at once per client address"
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=_LIMITS.settle_s,
        help="seconds the beacons of one page load are merged before its event is produced",
    )
    parser.add_argument("--max-pending", type=int, default=_LIMITS.max_pending)
    parser.add_argument(
        "--trust-x-forwarded-for",
        action="store_true",
        help="behind a reverse proxy: the client is the last X-Forwarded-For address",
    )
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning"])


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        config = from_flags_and_env(
            os.environ,
            host=args.host,
            port=args.port,
            region=args.region,
            limits=CollectorConfig(
                max_body_bytes=args.max_body_bytes,
                rate_per_s=args.rate,
                burst=args.burst,
                settle_s=args.settle_s,
                max_pending=args.max_pending,
                trust_forwarded_for=args.trust_x_forwarded_for,
            ),
        )
    except CollectorConfigError as exc:
        print(f"salewatch collect: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "aiokafka"):  # connection chatter at INFO
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # imported here: aiohttp and aiokafka are not needed to build the parser
    from streams.collector.server import serve

    return asyncio.run(serve(config, settings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="salewatch collect", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"salewatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
