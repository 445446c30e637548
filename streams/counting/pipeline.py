"""The counting core's facade: events in, Prometheus totals and rollup rows out.

Callers: the Faust worker (per batch of validated events, clock = wall time), the
backtest (clock = event time) and tests. No I/O, no logging, no Faust.

Per event, in order:

1. **duplicate**: an ``event_id`` seen among the last ``dedupe_capacity`` events
   (``streams.counting.dedupe``) is counted in ``salewatch_events_duplicate_total`` and
   nothing else;
2. **late**: an event whose 1-minute window has closed at the clock (window end +
   ``lateness_ms`` <= now) is counted in ``salewatch_events_late_total`` and nothing else
   (the worker still stores it raw), so every counter equals the sum of its rollup rows;
3. otherwise it is counted: counters in ``Totals`` (after each batch), its window's
   tally (rollup rows when the window closes) and its session (funnel).

Timer: :meth:`Pipeline.close_windows` must be called every few seconds even when no event
arrives; it returns the rows of the windows that closed, sets the distinct-user gauges
and expires idle sessions. Memory is flat: closed windows are forgotten, idle sessions
expire, the dedupe memory and the distinct-user history are bounded.

Windows hold one tally per Kafka partition (the partition number of the events' source
topic; ``orders_by_session``'s for orders): a window's rollup rows are emitted per partition,
named :func:`streams.counting.rollups.emitter` (``p3``), so emitting a window of a partition
again — from any worker, after a crash or a rebalance — replaces its rows instead of adding
to them (``streams.worker.window_emitters``).

Restart and rebalance (``streams.worker.recovery``): a worker rebuilds its counting state from
the events stored in ClickHouse on a fresh pipeline, through :meth:`Pipeline.warm_up`
(windows and sessions only: those events are already in the Prometheus totals) and
:meth:`Pipeline.restore_session` / :meth:`Pipeline.restore_order_category` /
:meth:`Pipeline.restore_paying_order`, then the live
pipeline continues from it with :meth:`Pipeline.adopt`, keeping its own totals.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from streams.counting.active_users import SPANS_MINUTES, ActiveUsers
from streams.counting.classify import Classifier
from streams.counting.counters import add_to_totals, set_active_users
from streams.counting.dedupe import DEFAULT_CAPACITY, RecentIds
from streams.counting.expiring import ExpiringDict
from streams.counting.funnel import (
    SESSION_TIMEOUT_MS,
    MemorySessionStore,
    Session,
    SessionStore,
    SessionTracker,
)
from streams.counting.rollups import RollupRow, emitter, rollup_rows
from streams.counting.sketch import DEFAULT_PRECISION
from streams.counting.tally import Tally, merge_users
from streams.counting.windows import DEFAULT_LATENESS_MS, DEFAULT_SIZE_MS, TumblingWindows
from streams.events.contract import TOPICS, Topic
from streams.metrics import labels as lv
from streams.metrics.defs import REGION_VALUES
from streams.metrics.totals import Totals
from streams.settings import Settings

LATE = "salewatch_events_late_total"
DUPLICATE = "salewatch_events_duplicate_total"
WINDOW_CLOSED = "salewatch_window_closed_timestamp_seconds"
NO_WINDOW = -(1 << 62)  # "before any window"


class Pipeline:
    """Counts validated events into ``totals`` and per-window rollups.

    ``process(topic, events, now_ms, partition)`` takes one batch of one topic and
    partition (call it with batches, not single events: the per-batch overhead is a few
    µs), ``close_windows(now_ms)`` returns the :class:`RollupRow` of every window whose end +
    lateness is at or before ``now_ms``, once, one set of rows per partition with events in
    it. ``sessions`` is where session state lives (in memory unless a store is given).
    """

    def __init__(
        self,
        totals: Totals,
        sessions: SessionStore | None = None,
        *,
        size_ms: int = DEFAULT_SIZE_MS,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        regions: Iterable[str] = REGION_VALUES,
        categories: frozenset[str] = lv.DEFAULT_CATEGORIES,
        dedupe_capacity: int = DEFAULT_CAPACITY,
        sketch_precision: int = DEFAULT_PRECISION,
        max_sessions: int | None = None,
        max_order_categories: int | None = None,
    ) -> None:
        self.totals = totals
        # per window: {partition: tally}
        self.windows: TumblingWindows[dict[int, Tally]] = TumblingWindows(
            dict, size_ms, lateness_ms
        )
        self.sessions = SessionTracker(
            sessions if sessions is not None else MemorySessionStore(max_sessions),
            session_timeout_ms,
            grace_ms=size_ms + lateness_ms,
        )
        self.recent = RecentIds(dedupe_capacity)
        # orders read from orders_by_session, as (source record, event id) keys: a second
        # copy is a forward again, not a duplicate (streams.worker.reforwards); like the
        # dedupe memory, part of the state a rebuild replaces (adopt)
        self.forwarded = RecentIds(dedupe_capacity)
        self.active_users = ActiveUsers(size_ms, sketch_precision)
        self.classifier = Classifier(self.sessions, regions, categories, max_order_categories)
        self._evictions_reported: dict[str, int] = {}
        self._handlers = self.classifier.by_topic()
        self._reported_window = NO_WINDOW
        # start of the newest window this pipeline has closed (and returned rows for)
        self.emitted_through = NO_WINDOW
        # ids of events counted before a restart that Kafka may deliver again (adopt)
        self._counted_before: Collection[str] = frozenset()
        self._counted_before_start = NO_WINDOW

    @classmethod
    def from_settings(
        cls, settings: Settings, totals: Totals, sessions: SessionStore | None = None
    ) -> Pipeline:
        """A pipeline with the configured lateness and regions."""
        return cls(
            totals,
            sessions,
            lateness_ms=settings.allowed_lateness_s * 1000,
            regions=settings.regions,
            dedupe_capacity=settings.dedupe_capacity,
            max_sessions=settings.max_live_sessions,
            max_order_categories=settings.max_order_categories,
        )

    def process(
        self,
        topic: Topic,
        events: Sequence[Mapping[str, Any]],
        now_ms: int,
        partition: int = 0,
        into_totals: bool = True,
    ) -> None:
        """Count one batch of valid events of ``topic``'s ``partition`` at clock ``now_ms``.

        ``into_totals=False``: events a previous owner of the partition already counted
        into its Prometheus totals (``streams.worker.handover``): they go into windows,
        sessions and the dedupe memory as above, and no total is touched (duplicates and
        late events are skipped uncounted).
        """
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}")
        handle = self._handlers[topic]
        seen = self.recent.seen
        size = self.windows.size_ms
        first_open = self.windows.open_from(now_ms)
        batch: dict[int, Tally] = {}
        current_start = -1
        current = Tally()
        late = duplicates = 0
        counted_before = self._counted_before
        for event in events:
            event_id = event["event_id"]
            if counted_before and event_id in counted_before:
                continue  # counted by this worker's previous process: not a duplicate
            if seen(event_id):
                duplicates += 1
                continue
            ts = event["ts"]
            start = ts - ts % size
            if start < first_open:
                late += 1
                continue
            if start != current_start:
                found = batch.get(start)
                current = batch[start] = Tally() if found is None else found
                current_start = start
            handle(event, current)
        self.sessions.flush()
        for start, tally in batch.items():
            by_partition = self.windows.get(start)
            found = by_partition.get(partition)
            if found is None:
                by_partition[partition] = tally
            else:
                found.merge(tally)
            if into_totals:
                add_to_totals(tally, self.totals)
        if not into_totals:
            return
        if late:
            self.totals.inc(LATE, (topic,), late)
        if duplicates:
            self.totals.inc(DUPLICATE, (topic,), duplicates)

    def close_windows(self, now_ms: int) -> list[RollupRow]:
        """Rows of every window closed at ``now_ms`` (each window once), oldest first; within
        a window, partition by partition."""
        rows: list[RollupRow] = []
        for start, by_partition in self.windows.close(now_ms):
            self.active_users.add_window(start, _users_of(by_partition.values()))
            for partition, tally in sorted(by_partition.items()):
                rows.extend(rollup_rows(tally, start, emitter(partition), now_ms))
            self.emitted_through = max(self.emitted_through, start)
        newest = self.windows.newest_closed()
        if newest > self._reported_window:
            self._reported_window = newest
            for minutes, by_channel in self.active_users.counts(newest).items():
                set_active_users(self.totals, minutes, by_channel)
            self.totals.set(WINDOW_CLOSED, (), (newest + self.windows.size_ms) / 1000)
            longest = max(SPANS_MINUTES) - 1
            self.active_users.forget_before(newest - longest * self.windows.size_ms)
        self.sessions.expire(now_ms)
        self.classifier.expire(now_ms, grace_ms=self.sessions.grace_ms)
        self.report_state()
        if self._counted_before and self._counted_before_start <= newest:
            self._counted_before = frozenset()  # any redelivery of them is late by now
        return rows

    def report_state(self) -> None:
        """Set the state-size gauges (entries and capacity of sessions, order categories,
        dedupe ids) and count evictions by the caps since the last report."""
        totals = self.totals
        store = self.sessions.store
        caps: list[tuple[str, int, int | None, int]] = [
            ("dedupe_ids", len(self.recent), self.recent.capacity, 0),
            (
                "order_categories",
                len(self.classifier.order_categories),
                self.classifier.order_categories.capacity,
                self.classifier.order_categories.evicted,
            ),
        ]
        if isinstance(store, ExpiringDict):
            caps.append(("sessions", len(store), store.capacity, store.evicted))
        for state, entries, capacity, evicted in caps:
            totals.set("salewatch_state_entries", (state,), entries)
            if capacity is not None:
                totals.set("salewatch_state_capacity", (state,), capacity)
            # a store adopted from a rebuild starts its own count
            reported = self._evictions_reported.get(state, 0)
            if evicted != reported:
                if evicted > reported:
                    totals.inc("salewatch_state_evictions_total", (state,), evicted - reported)
                self._evictions_reported[state] = evicted

    def warm_up(
        self,
        events: Iterable[tuple[Topic, int, Mapping[str, Any]]],
        now_ms: int,
        windows_from: Mapping[int, int] | None = None,
    ) -> int:
        """Count events again into windows and sessions only; return how many counted.

        For events that a previous process already counted into the Prometheus totals
        (replayed from ClickHouse by ``streams.worker.recovery``): ``events`` are ``(topic,
        partition, event)`` triples of any topics, in event-time order; duplicates and
        events late at ``now_ms`` are skipped as in :meth:`process`, and no total is
        touched. An event of partition p before ``windows_from[p]`` updates sessions and
        order memory but no window (that window of p is emitted already); it is not
        counted in the result.
        """
        handlers = self._handlers
        seen = self.recent.seen
        windows = self.windows
        size = windows.size_ms
        first_open = windows.open_from(now_ms)
        limits = windows_from or {}
        scratch = Tally()
        counted = 0
        for topic, partition, event in events:
            if seen(event["event_id"]):
                continue
            ts = event["ts"]
            start = ts - ts % size
            if start < limits.get(partition, NO_WINDOW):
                handlers[topic](event, scratch)
                continue
            if start < first_open:
                continue
            by_partition = windows.get(start)
            tally = by_partition.get(partition)
            if tally is None:
                tally = by_partition[partition] = Tally()
            handlers[topic](event, tally)
            counted += 1
        self.sessions.flush()
        return counted

    def restore_session(self, session_id: str, session: Session) -> None:
        """Start from a known session state (rebuilt from stored events)."""
        self.sessions.store.set(session_id, session)

    def restore_order_category(self, order_id: str, category: str, created_ms: int) -> None:
        """Remember the (raw) category of an order created before a restart."""
        classifier = self.classifier
        classifier.order_categories.set(order_id, (classifier.category(category), created_ms))

    def restore_paying_order(
        self, order_id: str, payment_method: str, failed: bool, first_ms: int
    ) -> None:
        """Remember an order's payment attempts with a method before a restart."""
        self.classifier.restore_paying_order(order_id, payment_method, failed, first_ms)

    def adopt(
        self,
        rebuilt: Pipeline,
        counted_before: Collection[str] = frozenset(),
        counted_before_until_ms: int = NO_WINDOW,
    ) -> None:
        """Continue counting from ``rebuilt``'s state, keeping this pipeline's totals.

        Takes the open windows, sessions, order categories and dedupe memories of
        ``rebuilt`` (same configuration, filled by :meth:`warm_up` and the ``restore_*``
        methods) and forgets this pipeline's own; the Prometheus totals, the distinct-user
        history and the gauges stay. Windows of ``rebuilt`` older than the clock (a moved
        partition's windows its previous owner did not emit) close at the next
        :meth:`close_windows`. Events whose id is in ``counted_before`` are then skipped
        silently (not as duplicates) until the window of ``counted_before_until_ms``
        closes: they were counted before the restart and Kafka may deliver them again.
        """
        windows = rebuilt.windows
        self.windows = windows
        self.sessions = rebuilt.sessions
        self.classifier = rebuilt.classifier
        self._handlers = rebuilt._handlers
        self.recent = rebuilt.recent
        self.forwarded = rebuilt.forwarded
        # the adopted stores count from 0; evictions during the rebuild are reported too:
        # the state they dropped is missing from here on
        self._evictions_reported = {}
        self._counted_before = counted_before
        self._counted_before_start = windows.start_of(counted_before_until_ms)


def _users_of(tallies: Iterable[Tally]) -> dict[tuple[str, str], set[str]]:
    """Distinct users by ``(channel, traffic_source)`` over several partitions' tallies."""
    merged: dict[tuple[str, str], set[str]] = {}
    for tally in tallies:
        merge_users(merged, tally.users)
    return merged
