"""``run_backtest``: events file → replay → blocks → throwaway Prometheus → rules → report.

Order of work, each step in its own module:

1. load and ``promtool check`` the rules (fail before a long replay, ``rules``);
2. replay the file in event time (``replay``), writing every scrape tick as OpenMetrics
   (``openmetrics``) into 1-hour files that become TSDB blocks in the background while the
   replay goes on (``blocks``);
3. start a Prometheus on the blocks (``prometheus``), evaluate the recording rules level
   by level and the alerts (``evaluate``, ``alerting``);
4. check the TSDB against the replay (the funnel counters at the last tick must equal
   the replay's own totals: the series reached Prometheus intact), collect the plot
   series (``plot``), stop Prometheus and delete the working directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.backtest import plot
from streams.backtest.blocks import BlockWriter
from streams.backtest.errors import BacktestError
from streams.backtest.evaluate import eval_steps, evaluate_rules
from streams.backtest.openmetrics import TotalsScraper
from streams.backtest.prometheus import ThrowawayPrometheus
from streams.backtest.replay import Replay, ReplayStats
from streams.backtest.report import final_counters, firing_entries
from streams.backtest.rules import check_with_promtool, load_rules, rule_files
from streams.backtest.source import read_lines
from streams.metrics.totals import Totals
from streams.settings import Settings

WINDOW_MS = 3600 * 1000
READ_BUFFER = 1 << 20

Status = Callable[[str], None]


@dataclass(frozen=True)
class BacktestOptions:
    """How to run a backtest. ``eval_interval_ms`` None = the scrape interval (as live)."""

    rules: Path = Path("alerts")
    scrape_interval_ms: int = 5000
    eval_interval_ms: int | None = None
    parallel: int = field(default_factory=lambda: os.cpu_count() or 2)
    work_dir: Path | None = None
    keep_work_dir: bool = False
    plot: Path | None = None
    prometheus: str = "prometheus"
    promtool: str = "promtool"

    @property
    def eval_ms(self) -> int:
        return self.eval_interval_ms or self.scrape_interval_ms

    def check(self) -> None:
        if self.scrape_interval_ms < 1000 or self.scrape_interval_ms % 1000:
            raise BacktestError("the scrape interval must be whole seconds, at least 1s")
        if self.eval_ms % self.scrape_interval_ms:
            raise BacktestError(
                "the evaluation interval must be a multiple of the scrape interval"
                " (rules are evaluated on scraped samples, as live)"
            )


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=READ_BUFFER) as f:
        yield from f


def _replay_status(status: Status | None) -> Callable[[ReplayStats, int], None] | None:
    if status is None:
        return None
    from streams.backtest.report import iso

    last = [0.0]

    def show(stats: ReplayStats, clock_ms: int) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        status(
            f"replay: {stats.lines:,} lines ({stats.events_per_s:,.0f}/s) · invalid"
            f" {stats.invalid:,} · event clock {iso(clock_ms)} UTC · wall {stats.wall_s:.0f}s"
        )

    return show


def run_backtest(
    events: Path,
    settings: Settings,
    options: BacktestOptions | None = None,
    status: Status | None = None,
) -> dict[str, Any]:
    """Backtest ``events`` against the rules of ``options.rules``; return the report."""
    options = options or BacktestOptions()
    options.check()
    say: Status = status or (lambda _: None)
    started = time.monotonic()
    files = rule_files(options.rules)
    check_with_promtool(files, options.promtool)
    rules = load_rules(files)
    if not events.is_file():
        raise BacktestError(f"no events file at {events}")

    own_dir = options.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="salewatch-backtest-")) if own_dir else options.work_dir
    assert work is not None
    work.mkdir(parents=True, exist_ok=True)
    data = work / "tsdb"
    data.mkdir(exist_ok=True)
    prom = ThrowawayPrometheus(
        data, min(options.scrape_interval_ms, options.eval_ms) - 1, options.prometheus
    )
    writer = BlockWriter(work, data, "scrape", WINDOW_MS, options.parallel, options.promtool)
    try:
        scraper = TotalsScraper()

        def on_scrape(ts_ms: int, totals: Totals) -> None:
            writer.seal_before(ts_ms)
            writer.write(ts_ms, scraper.scrape(totals, ts_ms))

        replay = Replay(settings, options.scrape_interval_ms, on_scrape, _replay_status(status))
        stats = replay.run(read_lines(_lines(events)))
        replayed = time.monotonic()
        say(f"replay done: {stats.events:,} events in {stats.wall_s:.1f}s; finishing blocks")
        writer.close()
        blocks_done = time.monotonic()
        if stats.first_tick_ms is None or stats.last_tick_ms is None:
            raise BacktestError(f"no valid event in {events} ({stats.invalid:,} invalid lines)")
        first, last = stats.first_tick_ms, stats.last_tick_ms

        prom.start()
        steps = eval_steps(first, last, options.eval_ms)
        say(f"rules: {len(rules.rules)} rules, {rules.depth} levels, {len(steps):,} steps")
        result = evaluate_rules(
            prom,
            rules,
            steps,
            options.eval_ms,
            work,
            WINDOW_MS,
            options.parallel,
            lambda done, total, level: say(f"rules: level {level}, {done}/{total} queries"),
        )
        check = tsdb_check(prom, replay.totals, last)
        alerts = firing_entries(result.firings)
        if options.plot is not None:
            say("plot: reading the key series")
            lines = plot.collect(prom, first, last, options.scrape_interval_ms)
            plot.render(
                options.plot, lines, alerts, (first, last), f"salewatch backtest: {events.name}"
            )
    except BaseException:
        writer.abort()
        raise
    finally:
        prom.stop()
        if own_dir and not options.keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)
    finished = time.monotonic()
    return {
        "events_file": str(events),
        "events": stats.events,
        "invalid": stats.invalid,
        "invalid_by_reason": dict(sorted(stats.invalid_by_reason.items())),
        "events_by_topic": dict(sorted(stats.events_by_topic.items())),
        "lines": stats.lines,
        "period": {
            "start_ms": first,
            "end_ms": last,
            "duration_s": (last - first) / 1000,
            "first_event_ms": stats.first_event_ms,
            "last_event_ms": stats.last_event_ms,
        },
        "scrape_interval_s": options.scrape_interval_ms / 1000,
        "eval_interval_s": options.eval_ms / 1000,
        "rules": {
            "files": [str(f) for f in files],
            "recording": len(rules.recording),
            "alerting": len(rules.alerts),
            "levels": rules.depth,
            "steps": len(steps),
            "queries": result.queries,
            "prometheus_restarts": result.restarts,
        },
        "alerts": alerts,
        "counters": final_counters(replay.totals),
        "tsdb_check": check,
        "series": {
            "scraped": scraper.series,
            "scraped_samples": scraper.lines_written,
            "recorded_series": result.recorded_series,
            "recorded_samples": result.recorded_samples,
            "blocks": writer.blocks,
        },
        "timings": {
            "replay_s": round(stats.wall_s, 3),
            "replay_events_per_s": round(stats.events_per_s),
            "blocks_s": round(blocks_done - replayed, 3),
            "rules_s": round(result.wall_s, 3),
            "total_s": round(finished - started, 3),
        },
        "work_dir": str(work) if options.keep_work_dir or not own_dir else None,
    }


def tsdb_check(prom: ThrowawayPrometheus, totals: Totals, at_ms: int) -> dict[str, Any]:
    """Funnel counters read back from Prometheus at the last tick vs the replay's totals."""
    found = prom.query("sum by (step) (salewatch_funnel_sessions_total)", at_ms)
    from_tsdb = {labels.get("step", ""): value for labels, value in found}
    expected: dict[str, float] = {}
    for (step, _channel), value in totals.values.get("salewatch_funnel_sessions_total", {}).items():
        expected[step] = expected.get(step, 0.0) + value
    return {
        "funnel_sessions_in_tsdb": dict(sorted(from_tsdb.items())),
        "matches_replay": from_tsdb == expected,
    }
