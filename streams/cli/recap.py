"""``salewatch recap --from ISO --to ISO [--compare-from ISO] --out DIR``: the day after.

Reads ClickHouse (raw tables, bounded by the window) and Prometheus' ``ALERTS`` (skipped
with a note when Prometheus is unreachable), writes ``DIR/recap.json`` (the numbers) and
``DIR/index.html`` (one self-contained page). The GMV target and the time zone come from
the sale file (``sale.toml``) unless ``--target`` / ``--timezone`` say otherwise. A
progress line on stderr names the step running.

Exit codes: 0 written, 1 ClickHouse failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.clickhouse.client import ClickHouseError, checked_executor, make_client
from streams.recap import alerts, compute, render
from streams.sale import SaleConfigError, load_sale, parse_time
from streams.settings import get_settings

STEPS = 9  # progress() calls of compute.recap with a compared sale, + alerts + page


class ProgressLine:
    """One line on a terminal, rewritten in place; plain lines when not a terminal."""

    def __init__(self, out: TextIO = sys.stderr, total: int = STEPS) -> None:
        self.out, self.total, self.done = out, total, 0
        self.started = time.monotonic()
        self.tty = out.isatty()

    def __call__(self, step: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        line = f"recap [{self.done}/{self.total}] {elapsed:5.1f}s {step}"
        if self.tty:
            self.out.write("\r\033[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


def _time(value: str) -> int:
    try:
        return parse_time(value, "time")
    except SaleConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "recap",
        help="the day-after report of a sale: DIR/index.html and DIR/recap.json",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--from", dest="from_s", type=_time, required=True, metavar="ISO")
    parser.add_argument("--to", dest="to_s", type=_time, required=True, metavar="ISO")
    parser.add_argument(
        "--compare-from",
        dest="compare_from_s",
        type=_time,
        metavar="ISO",
        help="start of a sale to compare with, aligned by minutes since start",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--target", type=float, help="GMV target (default: the sale file's)")
    parser.add_argument("--timezone", help="time zone of the page (default: the sale file's)")
    parser.add_argument("--title", default="", help="page title (default: the sale's name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.to_s <= args.from_s:
        print("salewatch recap: --to must be after --from", file=sys.stderr)
        return 2
    settings = get_settings()
    try:
        sale = load_sale(settings.sale_file)
    except SaleConfigError as exc:
        print(f"salewatch recap: {exc}", file=sys.stderr)
        return 2
    timezone = args.timezone or sale.timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"salewatch recap: unknown time zone {timezone!r}", file=sys.stderr)
        return 2
    target = args.target if args.target is not None else sale.gmv_target
    progress = ProgressLine(total=STEPS - (args.compare_from_s is None))
    client = make_client(settings, client_name="salewatch-recap", send_receive_timeout_s=600)
    try:
        recap: dict[str, Any] = compute.recap(
            checked_executor(client, settings),
            compute.Window(args.from_s, args.to_s),
            compare_from_s=args.compare_from_s,
            target=target,
            progress=progress,
        )
    except ClickHouseError as exc:
        progress.close()
        print(f"salewatch recap: {exc}", file=sys.stderr)
        return 1
    finally:
        client.disconnect()
    progress("alerts from Prometheus")
    try:
        firings = alerts.fired(settings.prometheus_url, args.from_s, args.to_s)
        recap["alerts"] = [f.as_dict() for f in firings]
    except alerts.PrometheusUnreachable as exc:
        recap["alerts"] = None
        recap["alerts_note"] = f"Prometheus not reachable ({exc})"
    progress("page")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recap.json").write_text(json.dumps(recap, indent=2) + "\n", encoding="utf-8")
    page = render.render(recap, title=args.title or f"{sale.name} · recap", timezone=timezone)
    (args.out / "index.html").write_text(page, encoding="utf-8")
    progress.close()
    print(f"wrote {args.out / 'index.html'} and {args.out / 'recap.json'}")
    return 0
