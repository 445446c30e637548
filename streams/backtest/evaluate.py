"""Evaluate the real rules over the replayed period with real PromQL, level by level.

Recording rules: every rule of level 1 (reading only scraped series) is evaluated with
``query_range`` over the whole period at the evaluation interval; its result series,
named and labelled as Prometheus would record them (``record`` name, result labels, rule
labels), are written back as OpenMetrics, turned into blocks and loaded by restarting
the throwaway Prometheus. Then level 2 reads them, and so on. Each recorded sample sits on
the step it was computed for, so a rule at step ``t`` reads the recorded values of step
``t``, as within a live rule group evaluated in order (the rule files put each recording
rule before its readers; across groups live Prometheus may read the value of the previous
evaluation instead, one interval older). Recording rules are never inlined, so every
alert reads exactly the expressions and series it reads live.

Alerting rules: the expression is evaluated the same way at its level; the steps where
each label set is present go through ``streams.backtest.alerting`` (``for`` and
``keep_firing_for``). Queries of one level run ``parallel`` at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from streams.backtest.alerting import Episode, episodes
from streams.backtest.blocks import BlockWriter
from streams.backtest.openmetrics import format_timestamp, series_of
from streams.backtest.prometheus import Series, ThrowawayPrometheus
from streams.backtest.rules import Rule, RuleSet

Progress = Callable[[int, int, int], None]  # (queries done, queries in all, level)


@dataclass(frozen=True)
class Firing:
    """One alert episode with the rule it came from."""

    rule: Rule
    episode: Episode


@dataclass
class EvaluationResult:
    steps: int
    queries: int = 0
    recorded_series: int = 0
    recorded_samples: int = 0
    restarts: int = 0
    firings: list[Firing] = field(default_factory=list)
    wall_s: float = 0.0


def eval_steps(first_ms: int, last_ms: int, step_ms: int) -> list[int]:
    """Evaluation times: multiples of ``step_ms`` within ``[first_ms, last_ms]``."""
    start = -(-first_ms // step_ms) * step_ms
    return list(range(start, last_ms + 1, step_ms))


def alert_labels(rule: Rule, result_labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The alert's identity: result labels without ``__name__``, rule labels, alertname."""
    labels = {k: v for k, v in result_labels.items() if k != "__name__"}
    labels.update(rule.labels)
    labels["alertname"] = rule.name
    return tuple(sorted(labels.items()))


def as_recorded(rule: Rule, result: list[Series]) -> dict[str, dict[int, str]]:
    """The series ``rule`` records from a range result: series text → {ts: value}.

    Result series that differ only in ``__name__`` (``a or b`` takes some steps from
    ``a``, others from ``b``) are one recorded series, as live where every instant's
    result is renamed to the rule's name. Two values for one series at one step make
    live Prometheus fail that evaluation ("same labelset after applying rule labels"):
    that step is recorded for neither.
    """
    merged: dict[str, dict[int, str]] = {}
    clashes: dict[str, set[int]] = {}
    for series in result:
        labels = {k: v for k, v in series.labels.items() if k != "__name__"}
        labels.update(rule.labels)
        key = series_of(rule.name, labels)
        samples = merged.setdefault(key, {})
        for ts, value in series.samples:
            if ts in samples:
                clashes.setdefault(key, set()).add(ts)
            samples[ts] = value
    for key, times in clashes.items():
        for ts in times:
            del merged[key][ts]
    return merged


def write_recorded(writer: BlockWriter, rule: Rule, result: list[Series]) -> int:
    """Write ``rule``'s result as recorded series; return the number of samples."""
    window = writer.window_ms
    written = 0
    for key, samples in as_recorded(rule, result).items():
        by_window: dict[int, list[str]] = {}
        for ts in sorted(samples):
            by_window.setdefault(ts - ts % window, []).append(
                f"{key} {samples[ts]} {format_timestamp(ts)}\n"
            )
        for start, lines in by_window.items():
            writer.write(start, "".join(lines))
        written += len(samples)
    return written


def evaluate_rules(
    prom: ThrowawayPrometheus,
    rules: RuleSet,
    steps: list[int],
    step_ms: int,
    work_dir: Path,
    window_ms: int,
    parallel: int = 2,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate every rule over ``steps`` (Prometheus must be running on the scraped
    blocks); returns the alert firings and the recorded series."""
    started = time.monotonic()
    result = EvaluationResult(steps=len(steps))
    if not steps:
        return result
    first, last = steps[0], steps[-1]
    total = len(rules.rules)
    depth = rules.depth

    def run(rule: Rule) -> tuple[Rule, list[Series]]:
        return rule, prom.query_range(rule.expr, first, last, step_ms)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for level in range(1, depth + 1):
            level_rules = rules.at_level(level)
            writer: BlockWriter | None = None
            needed_later = level < depth
            for rule, series in pool.map(run, level_rules):
                result.queries += 1
                if progress is not None:
                    progress(result.queries, total, level)
                if rule.is_alert:
                    result.firings.extend(_firings(rule, series, steps))
                    continue
                result.recorded_series += len(series)
                if needed_later and series:
                    if writer is None:
                        writer = BlockWriter(
                            work_dir, prom.data_dir, f"level{level}", window_ms, parallel
                        )
                    result.recorded_samples += write_recorded(writer, rule, series)
            if writer is not None:
                writer.close()
                prom.restart()
                result.restarts += 1
    result.firings.sort(key=lambda f: (f.episode.fired_at_ms, f.rule.name, f.episode.labels))
    result.wall_s = time.monotonic() - started
    return result


def _firings(rule: Rule, result: list[Series], steps: list[int]) -> list[Firing]:
    present: dict[tuple[tuple[str, str], ...], set[int]] = {}
    for series in result:
        present.setdefault(alert_labels(rule, series.labels), set()).update(
            ts for ts, _ in series.samples
        )
    out: list[Firing] = []
    for labels, times in present.items():
        for episode in episodes(labels, steps, times, rule.for_ms, rule.keep_firing_for_ms):
            out.append(Firing(rule, episode))
    return out
