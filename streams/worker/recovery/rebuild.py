"""Rebuild (blocking): read the stored state of assigned partitions and count it into a fresh
pipeline; see ``streams.worker.recovery`` for the design."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.counting.pipeline import NO_WINDOW, Pipeline
from streams.events.contract import TOPICS, Topic
from streams.kafka.partitioner import kafka_partition_for
from streams.worker.recovery.plan import RebuildPlan, oldest_catch_up, plan_rebuild
from streams.worker.recovery.rows import merge_by_time, replay_event, session_from_row
from streams.worker.recovery.sql import (
    any_emitted_sql,
    newest_event_sql,
    next_event_sql,
    order_categories_sql,
    paying_orders_sql,
    redelivered_sql,
    replay_sql,
    sessions_sql,
    stored_offsets_sql,
    stored_orders_sql,
)
from streams.worker.window_emitters import newest_marked_sql

Query = Callable[[str], Sequence[Sequence[Any]]]
Event = Mapping[str, Any]

# a replay is read in slices of event time (replay_slices): memory holds one slice's rows,
# not the catch-up's (~50,000 rows at 5,000 events/s); a slice is halved down to
# MIN_SLICE_MS while it reads more than REPLAY_SLICE_ROWS rows, doubled up to MAX_SLICE_MS
# while it reads fewer than a quarter (a quiet catch-up is not hundreds of queries)
REPLAY_SLICE_MS = 10_000
REPLAY_SLICE_ROWS = 60_000
MIN_SLICE_MS = 100
MAX_SLICE_MS = 5 * 60_000
# orders stored this recently (wall time) may still be delivered again on orders_by_session
REDELIVERY_HORIZON_S = 5 * 60


@dataclass
class RebuildStats:
    """What a rebuild read and how long each step took (seconds)."""

    replayed: int = 0
    sessions: int = 0
    orders: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        steps = ", ".join(f"{name} {s:.2f}s" for name, s in self.seconds.items())
        return (
            f"{self.replayed} events replayed, {self.sessions} sessions and "
            f"{self.orders} order categories restored ({steps})"
        )


@dataclass
class Rebuilt:
    """A rebuilt counting state, ready for :meth:`Pipeline.adopt`.

    ``next_offsets``: ``{(topic, partition): offset}`` to resume each source topic at;
    ``fingerprints``: ``{(topic, partition): event_id}`` of an event stored at the offset
    before it (``streams.worker.offset_fence``: the seek is fenced to that record's incarnation);
    ``counted_before``: ids of stored order events Kafka may deliver again on
    ``orders_by_session``, up to event time ``counted_before_until_ms``;
    ``newest_event_ms``: newest stored event time of the partitions (None: none).
    """

    pipeline: Pipeline
    plan: RebuildPlan
    next_offsets: dict[tuple[Topic, int], int]
    fingerprints: dict[tuple[Topic, int], str]
    counted_before: frozenset[str]
    counted_before_until_ms: int
    newest_event_ms: int | None
    stats: RebuildStats


ClockKind = Literal["wall", "event"]


class RebuildAbandoned(Exception):
    """The assignment a rebuild was for is gone (a new rebalance revoked it): the rebuild
    stops at its next query instead of counting on for nobody."""


class _Owners:
    """Which partition a session or ticket belongs to (memoised murmur2; the memo is
    emptied at ``MEMO_SIZE`` keys: a session's events are close in time, and a replay's
    sessions are not held beyond what the rebuilt state keeps)."""

    MEMO_SIZE = 100_000

    def __init__(self, partition_count: int) -> None:
        self.partition_count = partition_count
        self._cache: dict[str, int] = {}

    def of(self, key: str) -> int:
        partition = self._cache.get(key)
        if partition is None:
            if len(self._cache) >= self.MEMO_SIZE:
                self._cache.clear()
            partition = self._cache[key] = kafka_partition_for(key, self.partition_count)
        return partition


def _restore(
    timed: Callable[[str, str], Sequence[Sequence[Any]]],
    pipeline: Pipeline,
    plan: RebuildPlan,
    *,
    database: str,
    partitions: Sequence[int],
    orders_through: Mapping[int, int],
    owners: _Owners,
    stats: RebuildStats,
) -> tuple[int | None, dict[str, int]]:
    """Restore sessions, order categories and paying orders of ``partitions`` before
    ``plan.replay_from``, then count their stored events from ``replay_from`` on into
    ``pipeline``'s windows (an event of partition p before ``plan.windows_from[p]`` updates
    state only). An order is counted under its session's partition (``orders_by_session``'s,
    where the live worker counts it), every other event under its own. Returns the newest
    replayed event time (None: none) and ``{event_id: ts}`` of the replayed orders (those
    stored up to ``orders_through``, ``{orders partition: offset}``)."""
    owned = set(partitions)
    owns_all = owned >= set(range(owners.partition_count))

    def owns_session(session_id: str) -> bool:
        return owns_all or owners.of(session_id) in owned

    timeout_ms = pipeline.sessions.timeout_ms
    for row in timed("sessions", sessions_sql(database, partitions, plan, timeout_ms)):
        if row[5] or owns_session(row[0]):
            pipeline.restore_session(*session_from_row(row))
            stats.sessions += 1
    for order_id, session_id, category, ts in timed("orders", order_categories_sql(database, plan)):
        if owns_session(session_id):
            pipeline.restore_order_category(order_id, category, int(ts))
            stats.orders += 1
    for order_id, session_id, method, failed, ts in timed(
        "payments", paying_orders_sql(database, plan)
    ):
        if owns_session(session_id):
            pipeline.restore_paying_order(order_id, method, bool(failed), int(ts))

    replayed_orders: dict[str, int] = {}
    newest: int | None = None

    def converted(topic: Topic, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[int, Event]]:
        # one event dict at a time: a slice holds rows (tuples), never all its events
        if topic == "orders":
            for row in rows:
                partition = owners.of(row[4])
                if partition in owned:
                    event = replay_event(topic, row[1:])
                    replayed_orders[event["event_id"]] = event["ts"]
                    yield partition, event
        else:
            for row in rows:
                yield int(row[0]), replay_event(topic, row[1:])

    def replay() -> Iterator[tuple[Topic, int, Event]]:
        nonlocal newest
        slices = replay_slices(timed, database, partitions, plan.replay_from, orders_through)
        for rows in slices:
            for item in merge_by_time({topic: converted(topic, r) for topic, r in rows.items()}):
                newest = item[2]["ts"]  # in time order: the last is the newest
                yield item

    started = time.perf_counter()
    read_before = stats.seconds.get("read", 0.0)
    stats.replayed += pipeline.warm_up(replay(), plan.clock_ms, plan.windows_from)
    read = stats.seconds.get("read", 0.0) - read_before
    stats.seconds["count"] = time.perf_counter() - started - read
    return newest, replayed_orders


def replay_slices(
    timed: Callable[[str, str], Sequence[Sequence[Any]]],
    database: str,
    partitions: Sequence[int],
    from_ms: int,
    orders_through: Mapping[int, int],
    *,
    slice_ms: int = REPLAY_SLICE_MS,
    slice_rows: int = REPLAY_SLICE_ROWS,
) -> Iterator[dict[Topic, Sequence[Sequence[Any]]]]:
    """The stored events to replay from ``from_ms`` on, as consecutive slices of event time
    (``{topic: rows of replay_sql, oldest first}``; only topics with rows): so that a
    rebuild holds one slice, not the whole catch-up (up to ``MAX_CATCH_UP_MS`` of every
    topic: ~18 M rows at 5,000 events/s). Events of one millisecond are in one slice, so
    merging each slice by time is merging the whole replay by time.

    A slice starts at ``slice_ms``, is halved while it reads more than ``slice_rows`` rows
    (a flood does not make slices large) and doubled up to ``MAX_SLICE_MS`` while it reads
    fewer than a quarter (a quiet partition is not read in hundreds of queries); a stretch
    of event time without events is skipped with one query for the next stored event time.
    A clicks, carts or tickets row stored while the rebuild reads is replayed or not
    depending on where its event time falls; either way the reader reads it again from
    Kafka (the offsets were read first, :func:`rebuild`) and the dedupe memory or the
    live count has it once. Orders are read up to ``orders_through`` only."""
    cursor, span = from_ms, slice_ms
    while True:
        until = cursor + span
        rows = {
            topic: timed(
                "read",
                replay_sql(
                    database, topic, partitions, cursor, until, orders_through=orders_through
                ),
            )
            for topic in TOPICS
        }
        found = {topic: r for topic, r in rows.items() if r}
        if found:
            yield found
        else:
            ((next_ms,),) = timed("read", next_event_sql(database, partitions, until))
            if int(next_ms) < until:
                return
            until = int(next_ms)
        read = sum(len(r) for r in found.values())
        if read > slice_rows and span > MIN_SLICE_MS:
            span //= 2
        elif read < slice_rows // 4 and span < MAX_SLICE_MS:
            span *= 2
        cursor = until


def rebuild(
    query: Query,
    *,
    database: str,
    partitions: Sequence[int],
    partition_count: int,
    new_pipeline: Callable[[], Pipeline],
    clock_kind: ClockKind,
    clock_now_ms: int,
    live_emitted: Mapping[int, int],
    wall_now_s: float,
    abandoned: Callable[[], bool] = lambda: False,
) -> Rebuilt:
    """Read the stored state of ``partitions`` and count it into ``new_pipeline()``.

    Blocking (ClickHouse reads, counting): run it in a thread. Before each query (a replay
    slice is one) it asks ``abandoned()`` and raises :class:`RebuildAbandoned` when true.
    ``clock_now_ms`` is the live window clock (0 for an event clock that has seen nothing
    yet: then the newest stored event time is the clock). ``live_emitted``: the newest
    window the live pipeline closed, for the partitions it holds already. Each partition's
    windows start after its newest mark (:func:`plan_rebuild`), whichever worker wrote it.
    """
    pipeline = new_pipeline()
    stats = RebuildStats()
    size_ms = pipeline.windows.size_ms

    def timed(step: str, sql: str) -> Sequence[Sequence[Any]]:
        if abandoned():
            raise RebuildAbandoned(f"abandoned before its {step} query")
        started = time.perf_counter()
        rows = query(sql)
        stats.seconds[step] = stats.seconds.get(step, 0.0) + time.perf_counter() - started
        return rows

    ((any_s,),) = timed("emitted", any_emitted_sql(database))
    anyone = int(any_s) * 1000 or None
    newest: int | None = None
    now_ms = clock_now_ms
    if clock_kind == "event" and not now_ms:
        ((ts,),) = timed("newest", newest_event_sql(database, partitions, anyone or 0))
        newest = int(ts) or None
        now_ms = newest or int(wall_now_s * 1000)
    oldest = oldest_catch_up(now_ms, size_ms)
    marked = timed("marks", newest_marked_sql(database, oldest))
    plan = plan_rebuild(
        now_ms=now_ms,
        partitions=partitions,
        newest_marked={int(p): int(s) * 1000 for p, s in marked},
        any_emitted=anyone,
        live_emitted=live_emitted,
        size_ms=size_ms,
        lateness_ms=pipeline.windows.lateness_ms,
        timeout_ms=pipeline.sessions.timeout_ms,
    )
    # offsets before the replay: a row stored in between is replayed and read again, a
    # duplicate the dedupe memory skips; read after, it would be skipped uncounted
    stored = timed("offsets", stored_offsets_sql(database, partitions, plan.offsets_from))
    # and the orders the replay may read: it reads in slices, for as long as counting takes,
    # while the orders partitions' owners store more; an order stored after this is
    # counted by this worker when orders_by_session delivers it (nobody counted it yet)
    orders_through = {
        int(p): int(offset)
        for p, offset in timed("offsets", stored_orders_sql(database, plan.offsets_from))
    }
    next_offsets = {(topic, int(p)): int(offset) + 1 for topic, p, offset, _ in stored}
    fingerprints = {(topic, int(p)): str(event_id) for topic, p, _, event_id in stored}
    owners = _Owners(partition_count)
    newest_replayed, replayed_orders = _restore(
        timed,
        pipeline,
        plan,
        database=database,
        partitions=partitions,
        orders_through=orders_through,
        owners=owners,
        stats=stats,
    )
    if newest_replayed is not None:
        newest = max(newest or newest_replayed, newest_replayed)

    # orders Kafka may deliver again on orders_by_session, to skip once: those replayed
    # above, and those of the windows before (emitted); never an order stored after the
    # replay read (another worker's, while this one rebuilds): it was counted nowhere yet
    horizon_s = int(wall_now_s) - REDELIVERY_HORIZON_S
    redelivered = replayed_orders  # no copy: it can hold every order of the catch-up
    for event_id, ts in timed(
        "redelivered", redelivered_sql(database, plan.offsets_from, plan.replay_from, horizon_s)
    ):
        redelivered[event_id] = int(ts)
    return Rebuilt(
        pipeline=pipeline,
        plan=plan,
        next_offsets=next_offsets,
        fingerprints=fingerprints,
        counted_before=frozenset(redelivered),
        counted_before_until_ms=max(redelivered.values(), default=NO_WINDOW),
        newest_event_ms=newest,
        stats=stats,
    )
