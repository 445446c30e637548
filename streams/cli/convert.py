"""``salewatch convert DATASET FILE --out EVENTS.jsonl``: a public dataset → EVENTS.md JSON
lines (the ``simulate --out`` format), to replay with ``salewatch backtest``.

Datasets: ``taobao`` (Tianchi UserBehavior CSV; see ``streams.convert.taobao`` for what is
taken, derived and invented). Exit codes: 0 done, 1 cannot read or write a file, 2 bad
arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.convert import taobao
from streams.convert.jsonl import write_events
from streams.events.contract import Topic

Converter = Callable[[Iterable[str], int, Any], Iterator[tuple[Topic, dict[str, Any]]]]

DATASETS: dict[str, tuple[Converter, Callable[[], Any], str]] = {
    "taobao": (
        taobao.convert,
        taobao.ConvertStats,
        "Taobao UserBehavior CSV (user_id,item_id,category_id,behavior_type,timestamp)",
    ),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a public e-commerce dataset into EVENTS.md JSON lines",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument(
        "dataset",
        choices=sorted(DATASETS),
        help="; ".join(f"{name}: {d[2]}" for name, d in DATASETS.items()),
    )
    p.add_argument("input", type=Path, metavar="FILE", help="the dataset file")
    p.add_argument("--out", type=Path, required=True, metavar="EVENTS.jsonl", help="output")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the invented fields (prices, channels, regions, payment methods)",
    )
    p.set_defaults(func=run)


def _iso(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def run(args: argparse.Namespace) -> int:
    convert, new_stats, _ = DATASETS[args.dataset]
    stats = new_stats()
    started = time.monotonic()
    try:
        with args.input.open(encoding="utf-8", newline="") as src:
            events = convert(src, args.seed, stats)
            with args.out.open("wb", buffering=1 << 20) as out:
                written = write_events(events, out)
    except OSError as exc:
        print(f"salewatch convert: error: {exc}", file=sys.stderr)
        return 1
    wall = time.monotonic() - started
    summary: dict[str, Any] = stats.as_dict()
    skipped = sum(summary["skipped"].values())
    print(
        f"salewatch convert {args.dataset}: {summary['rows']:,} rows ({skipped:,} skipped)"
        f" → {written:,} events in {args.out} ({wall:.1f}s)"
    )
    print(f"  period   {_iso(summary['first_ms'])} → {_iso(summary['last_ms'])}")
    print(f"  users    {summary['users']:,}   sessions {summary['sessions']:,}")
    for key in ("behaviours", "events", "skipped"):
        if summary[key]:
            detail = "  ".join(f"{k} {v:,}" for k, v in sorted(summary[key].items()))
            print(f"  {key:<8} {detail}")
    return 0
