"""Replay routed lines in event time through the worker's own validation and counting.

The clock is the event time of the data, quantised to scrape ticks: events are read in
file order and collected until one reaches the next tick ``T`` (a multiple of the scrape
interval); then the collected events are counted as one batch per topic at clock ``T``,
windows due at ``T`` are closed and the :class:`~streams.metrics.totals.Totals` are handed to
``on_scrape(T, totals)``, exactly what a Prometheus scrape at ``T`` would read from a live
worker that had received those events by then.

What is the same code as the live worker:

* validation: ``streams.events.decode.validate_event`` (events) and ``decode_message`` (raw
  messages), with ``now`` = the replay clock ``T``, so old data is judged against its own
  time (a 2017 event is not "too old", an event more than 24 h ahead of the replay is
  "in the future"); refused events are counted like dead letters;
* pipeline-health counters (received, valid, invalid, dead letters, newest event time,
  lag = ``T`` - event time): ``streams.worker.ingest.BatchProcessor``'s own counting step;
* business counting: ``streams.counting.pipeline.Pipeline`` with ``now_ms = T``, the
  configured lateness and regions, and ``close_windows(T)`` at every tick.

Events of one tick are processed topic by topic (clicks, carts, orders, tickets), as the
worker's reader prepares a fetch; a session's steps do not depend on that order. The first
tick is the first valid event's time rounded up; the last is the first tick after the
last event. A gap in the data is replayed as ticks without events (a flat stretch); a
valid event can be at most 24 h ahead of the clock (``max_future_s``), so a gap is too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.backtest.source import Line
from streams.counting.pipeline import Pipeline
from streams.events.contract import TOPICS, Topic
from streams.events.decode import Invalid, decode_message, validate_event
from streams.metrics.labels import OTHER
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.ingest import BatchProcessor, limits_from

WORKER_NAME = "backtest"
PROGRESS_EVERY_LINES = 1 << 16

ScrapeSink = Callable[[int, Totals], None]


@dataclass
class ReplayStats:
    """What the replay read and counted; times are epoch ms of event time."""

    lines: int = 0
    events: int = 0
    invalid: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    events_by_topic: Counter[str] = field(default_factory=Counter)
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    first_tick_ms: int | None = None
    last_tick_ms: int | None = None
    ticks: int = 0
    wall_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return (self.events + self.invalid) / self.wall_s if self.wall_s > 0 else 0.0


class _NoRawSink:
    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        pass


async def _no_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
    pass


class Replay:
    """Feeds :class:`Line` s through validation and counting at event-time scrape ticks.

    ``run(lines)`` consumes the lines, calls ``on_scrape(T, totals)`` once per tick in
    increasing ``T`` and returns the :class:`ReplayStats`; ``progress(stats, clock_ms)``
    is called every ``PROGRESS_EVERY_LINES`` lines. One replay per instance.
    """

    def __init__(
        self,
        settings: Settings,
        scrape_interval_ms: int,
        on_scrape: ScrapeSink,
        progress: Callable[[ReplayStats, int], None] | None = None,
    ) -> None:
        if scrape_interval_ms <= 0:
            raise ValueError("scrape_interval_ms must be > 0")
        self.interval = scrape_interval_ms
        self.on_scrape = on_scrape
        self.progress = progress
        self.totals = Totals()
        self.pipeline = Pipeline.from_settings(settings, self.totals)
        self.health = BatchProcessor(settings, self.totals, _NoRawSink(), _no_dead_letters)
        self.limits = limits_from(settings)
        self.stats = ReplayStats()
        self.clock: int | None = None  # the next tick: events before it are collected
        self._batches: dict[Topic, list[dict[str, Any]]] = {t: [] for t in TOPICS}
        self._invalid: dict[Topic, Counter[str]] = {t: Counter() for t in TOPICS}
        self._unroutable: Counter[str] = Counter()
        self._early: list[Line] = []  # raw messages read before the clock was known

    def run(self, lines: Iterable[Line]) -> ReplayStats:
        started = time.monotonic()
        stats = self.stats
        for line in lines:
            stats.lines += 1
            if line.topic is None:
                self._unroutable[line.reason or "malformed_json"] += 1
            elif line.event is not None:
                self._add(line.topic, line.event)
            elif self.clock is None:
                self._early.append(line)
            else:
                self._add_raw(line)
            if self.progress is not None and stats.lines % PROGRESS_EVERY_LINES == 0:
                stats.wall_s = time.monotonic() - started
                self.progress(stats, self.clock or 0)
        if self.clock is not None:
            self._tick()
        else:  # no valid event at all: nothing was ticked, everything read was bad
            leftovers = Counter(self._unroutable)
            for invalid in self._invalid.values():
                leftovers.update(invalid)
            if self._early:
                leftovers["unreplayed_raw_message"] += len(self._early)
            stats.invalid += sum(leftovers.values())
            stats.invalid_by_reason.update(leftovers)
        stats.wall_s = time.monotonic() - started
        return stats

    def _add(self, topic: Topic, event: dict[str, Any]) -> None:
        clock = self.clock
        if clock is None:
            ts = event.get("ts")
            now = ts if type(ts) is int else 0
        else:
            now = clock
        try:
            validate_event(event, topic, now, self.limits)
        except Invalid as exc:
            self._invalid[topic][exc.reason] += 1
            return
        ts = event["ts"]
        if clock is None:
            self._start(ts)
        else:
            while ts >= clock:
                clock = self._tick()
        self._batches[topic].append(event)

    def _add_raw(self, line: Line) -> None:
        clock = self.clock
        assert line.topic is not None and line.raw is not None and clock is not None
        decoded = decode_message(line.raw, line.topic, clock, self.limits)
        for rejected in decoded.rejected:
            self._invalid[line.topic][rejected.reason] += 1
        for event in decoded.events:
            while event["ts"] >= clock:
                clock = self._tick()
            self._batches[line.topic].append(event)

    def _start(self, first_ts: int) -> None:
        self.clock = first_ts - first_ts % self.interval + self.interval
        self.stats.first_tick_ms = self.clock
        early, self._early = self._early, []
        for line in early:
            self._add_raw(line)

    def _tick(self) -> int:
        """Count what was collected before the clock, close due windows, scrape; return
        the next tick."""
        clock = self.clock
        assert clock is not None
        totals, stats = self.totals, self.stats
        for topic in TOPICS:
            events, invalid = self._batches[topic], self._invalid[topic]
            if not events and not invalid:
                continue
            # the worker's pipeline-health counting step, on the event-time clock
            self.health._count_pipeline(topic, events, invalid, clock)
            if invalid:
                rejected = sum(invalid.values())
                totals.inc("salewatch_dead_letters_total", (topic,), rejected)
                stats.invalid += rejected
                stats.invalid_by_reason.update(invalid)
                self._invalid[topic] = Counter()
            if events:
                self.pipeline.process(topic, events, clock)
                self._note_events(topic, events)
                self._batches[topic] = []
        if self._unroutable:
            # cannot be put on a topic: counted the way a worker counts a bad message
            n = sum(self._unroutable.values())
            totals.inc("salewatch_events_received_total", (OTHER,), n)
            totals.inc("salewatch_dead_letters_total", (OTHER,), n)
            for reason, count in self._unroutable.items():
                totals.inc("salewatch_events_invalid_total", (OTHER, reason), count)
            stats.invalid += n
            stats.invalid_by_reason.update(self._unroutable)
            self._unroutable = Counter()
        self.pipeline.close_windows(clock)
        self.on_scrape(clock, totals)
        stats.ticks += 1
        stats.last_tick_ms = clock
        self.clock = clock + self.interval
        return self.clock

    def _note_events(self, topic: Topic, events: list[dict[str, Any]]) -> None:
        stats = self.stats
        stats.events += len(events)
        stats.events_by_topic[topic] += len(events)
        oldest = min(e["ts"] for e in events)
        newest = max(e["ts"] for e in events)
        if stats.first_event_ms is None or oldest < stats.first_event_ms:
            stats.first_event_ms = oldest
        if stats.last_event_ms is None or newest > stats.last_event_ms:
            stats.last_event_ms = newest
