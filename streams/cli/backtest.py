"""``salewatch backtest EVENTS.jsonl``: replay events in event time through the counting
code, evaluate the real recording and alerting rules over the period, report every firing.

Output: a progress line and a closing summary with a table of firings on stderr/stdout,
``--out`` the JSON report, ``--plot`` a PNG of the key series with firings shaded.
Exit codes: 0 done (whether or not alerts fired), 1 the backtest failed (one line saying
why: missing ``prometheus``/``promtool``, bad rules, no valid event), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streams.backtest import BacktestError, BacktestOptions, run_backtest
from streams.backtest.report import format_summary, format_table
from streams.backtest.rules import parse_duration
from streams.backtest.score import format_score, load_incidents, score
from streams.settings import load_settings


def _interval(text: str) -> int:
    try:
        ms = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ms < 1000 or ms % 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: whole seconds, at least 1s")
    return ms


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="replay events and report which alerts would have fired",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("events", type=Path, metavar="EVENTS.jsonl", help="events file (JSON lines)")
    p.add_argument(
        "--rules",
        type=Path,
        default=Path("alerts"),
        help="rule file or directory of *.rules.yml (default alerts/)",
    )
    p.add_argument("--out", type=Path, default=None, metavar="REPORT.json", help="JSON report")
    p.add_argument("--plot", type=Path, default=None, metavar="REPORT.png", help="PNG plot")
    p.add_argument(
        "--scrape-interval",
        type=_interval,
        default=None,
        metavar="D",
        help="event time between two scrapes (default SALEWATCH_SCRAPE_INTERVAL_S, 5s)",
    )
    p.add_argument(
        "--eval-interval",
        type=_interval,
        default=None,
        metavar="D",
        help="rule evaluation interval, a multiple of the scrape interval (default: the"
        " scrape interval, as the live Prometheus); larger is faster and coarser",
    )
    p.add_argument(
        "--keep-work-dir",
        action="store_true",
        help="keep the blocks and logs (the path is printed) for ad-hoc PromQL",
    )
    p.add_argument(
        "--incidents",
        type=Path,
        default=None,
        metavar="FILE",
        help="score the run: the simulator's --summary-json, or a JSON list of"
        " {kind, arg, start_ms, end_ms}; prints precision, recall and delay per alert"
        " and incident (added to --out as 'score')",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


class StatusLine:
    """One progress line on stderr: rewritten in place on a terminal; elsewhere (logs, CI)
    one line every ``LOG_EVERY_S`` at most, and every change of phase."""

    LOG_EVERY_S = 10.0

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.open = False
        self.phase = ""
        self.logged_at = 0.0

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text)
            self.open = True
        else:
            phase = text.split(":", 1)[0]
            now = time.monotonic()
            if phase == self.phase and now - self.logged_at < self.LOG_EVERY_S:
                return
            self.phase, self.logged_at = phase, now
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            self.open = False


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    scrape_ms = args.scrape_interval or settings.scrape_interval_s * 1000
    options = BacktestOptions(
        rules=args.rules,
        scrape_interval_ms=scrape_ms,
        eval_interval_ms=args.eval_interval,
        keep_work_dir=args.keep_work_dir,
        plot=args.plot,
    )
    try:
        options.check()
    except BacktestError as exc:
        print(f"salewatch backtest: error: {exc}", file=sys.stderr)
        return 2
    status = StatusLine(args.quiet)
    try:
        incidents = None if args.incidents is None else load_incidents(args.incidents)
        report: dict[str, Any] = run_backtest(args.events, settings, options, status)
        if incidents is not None:
            report["score"] = score(report["alerts"], incidents)
    except BacktestError as exc:
        status.end()
        print(f"salewatch backtest: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        status.end()
        return 130
    status.end()
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(format_summary(report))
    print()
    print(format_table(report["alerts"]))
    if "score" in report:
        print()
        print(format_score(report["score"], report["period"]["start_ms"]))
    if not report["tsdb_check"]["matches_replay"]:
        print("warning: the funnel counters read back from Prometheus differ from the replay's")
    for path, what in ((args.out, "report"), (args.plot, "plot")):
        if path is not None:
            print(f"{what}: {path}")
    if report["work_dir"]:
        print(f"work dir (blocks, logs): {report['work_dir']}")
    return 0
