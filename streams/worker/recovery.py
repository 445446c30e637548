"""Rebuild a worker's counting state from ClickHouse when Kafka assigns it partitions.

Why: a worker keeps its open windows, sessions and recent order categories in memory, and
Faust's changelog recovery is unreliable on the local broker (``ListOffsets`` is wrong on
tansu, ``../shared/STACK.md``). ClickHouse holds every valid event the worker accepted (the
raw tables: a batch is acknowledged only after its rows are in) and every window it closed
(the rollup tables), so it is the durable truth the state is rebuilt from.

When: at every assignment (restart, rebalance), before the assigned partitions are read.
The state of *all* assigned partitions is rebuilt on a fresh pipeline and replaces the
in-memory one (:meth:`streams.counting.pipeline.Pipeline.adopt`); Prometheus totals are
never touched: the previous process counted those events already, and a counter reset on
restart is what PromQL ``increase``/``rate`` handle.

What, for the assigned partitions ``P`` (the same numbers on every topic: the reader's range
assignor co-partitions topics with equal partition counts):

1. **plan** (:func:`plan_rebuild`, pure): per partition p, the first window not emitted
   yet, ``from[p]``: after p's newest mark in ``window_emitters``, by whichever worker
   (:func:`streams.worker.window_emitters.plan_windows`), never more than
   :data:`MAX_CATCH_UP_MS` before the clock; ``replay_from`` is the oldest of them.
   Rollup rows are per partition (``p3``), so a window of p emitted again replaces its
   rows: a mark that did not make it (a crash between rows and mark, a store in flight
   during a rebalance) costs one window emitted twice under one key, never a double count.
2. **open windows**: every stored event of ``P`` with ``ts >= replay_from`` is counted again
   through :meth:`Pipeline.warm_up`, in event-time order, into window tallies (of p only
   from ``from[p]`` on: before, p's windows are emitted) and sessions. Windows that closed
   while the worker was down, or that a moved partition's previous owner did not emit, are
   among them; the next timer tick emits them, complete.
3. **sessions** that a future event can continue (last seen after ``replay_from - timeout``):
   one aggregate query over the session activity (``streams.counting.funnel``: clicks,
   carts, ``order_created``/``payment_succeeded``/``payment_failed``) of
   ``[replay_from - session lookback, replay_from)``, split at 30-minute gaps in SQL.
4. **order categories** of orders created in the last ``ORDER_MEMORY_MS`` + size + lateness.
5. **Kafka positions**: the next offset per source topic and partition is the newest stored
   offset + 1 (a partition's stored offsets are a prefix: the reader's insert queue stores
   batches in the order they were read); the reader seeks there before it reads, so
   nothing ClickHouse holds is read again — once ``streams.worker.offset_fence`` found, at the
   newest stored offset, a record holding an ``event_id`` stored there (else the log is
   another incarnation and the partition is read from the group's committed offset).
   ``orders_by_session`` has no stored offsets: the ids of the orders the rebuild
   replayed, and of recently stored orders of the windows before, are skipped once if
   Kafka delivers them again (:meth:`Pipeline.adopt`); never an order stored after the
   replay read (by another worker, while this one rebuilds): nothing counted it yet.

Ownership: clicks, carts and tickets rows carry their own partition (``kafka_partition``).
Orders rows carry the ``orders`` partition (keyed by ``order_id``), but an order is counted
by the owner of its session, ``murmur2(session_id) % partitions``
(:func:`kafka_partition_for`): the default partitioner of kafka-python and aiokafka, which
routes ``orders_by_session``. Producers are assumed to use it for clicks and carts too
(EVENTS.md keys), so a session's events all belong to one partition number.

Cost, measured on the 2-core dev box against ClickHouse 18.16 (synthetic 5k events/s
tables; the worker logs each rebuild's steps and times):

* open windows: reading the ~900k events of a 3-minute size + lateness takes ~1.8 s,
  turning rows into events ~0.8 s, counting them 7-12 µs/event (the counting core's own
  speed: 6-11 s): ~10-14 s for a worker that owns every partition at 5k events/s, less
  per worker when partitions are spread; the ground-truth integration test's restart (~1,200
  events) takes 0.15-0.2 s;
* sessions: the aggregate over a 33-minute lookback (10M rows, 250k sessions) takes ~2 s
  on the server and returns only the sessions a future event can continue; sorting each
  session's packed events costs ~25 % over plain min/max aggregates, and buys exact
  30-minute session splits;
* offsets, order categories, redelivered ids: key-range reads, < 0.1 s each.

Meanwhile the assigned partitions stay paused (lag grows, then drains); ``/metrics`` and
the window timer keep running.

Known gaps:

* the batch a worker was handling when it crashed was counted live but not stored; it is
  read again and counted again (a small double count in ``increase``), and if its window
  closed meanwhile its events are late; counts made after Prometheus' last scrape of the
  dead process are lost to Prometheus (not to ClickHouse);
* a producer's duplicate of an order whose first copy was stored before a restart is
  skipped as a redelivery instead of counted in ``salewatch_events_duplicate_total``;
* sessions continuously active for longer than the session lookback are rebuilt from their
  recent events only (an earlier funnel step may count again); late events stored raw, not
  counted live, take part in the rebuilt session state;
* the 5- and 15-minute distinct-user gauges start over with the windows closed after the
  restart (``active_users_1m`` in ClickHouse is unaffected);
* amounts with more than two decimals are stored truncated to cents, counted live rounded;
* a window emitted again is rebuilt from the stored events: events of it that the
  previous owner counted but had not stored when it died are read again and counted late
  (only when raw inserts lag window closings by more than the allowed lateness, e.g.
  during a ClickHouse outage), and late events it stored raw are counted in the new rows;
* after a takeover, the dead worker's backlog (events it never read) is counted late when
  the survivor's clock passed their windows + lateness before it could read them: with the
  wall clock, a takeover longer than ``allowed_lateness_s``; with the event clock, the
  survivor's own partitions move its clock while the moved ones wait
  (``salewatch_events_late_total`` counts them; the raw tables hold them);
* ``traffic_1m.active_users`` is distinct per partition, so summing it over partitions
  counts a user seen in two partitions' sessions twice (use ``active_users_1m``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from streams.clickhouse.client import is_connection_error, is_driver_error
from streams.clickhouse.raw_rows import RAW_TABLE
from streams.counting.classify import ORDER_MEMORY_MS
from streams.counting.clock import WindowClock
from streams.counting.funnel import (
    CART,
    CHECKOUT,
    DETAIL,
    NO_STEP,
    PAID,
    SESSION_TIMEOUT_MS,
    VISIT,
    Session,
)
from streams.counting.pipeline import NO_WINDOW, Pipeline
from streams.counting.rollups import ROLLUP_TABLES, RollupRow
from streams.events.contract import EVENT_TYPES, TOPICS, Topic
from streams.metrics import labels as lv
from streams.metrics.totals import Totals
from streams.worker.offset_fence import StoredPosition
from streams.worker.window_emitters import Mark, newest_marked_sql, plan_windows

log = logging.getLogger(__name__)

Query = Callable[[str], Sequence[Sequence[Any]]]
# stores rollup rows, then the marks of the windows they close (streams.worker.app)
StoreClosed = Callable[[list[RollupRow], list[Mark]], Awaitable[None]]

# how far back windows that closed while the worker was down are still emitted
MAX_CATCH_UP_MS = 60 * 60 * 1000
# stored offsets / redelivered ids are looked for among events of this span of event time
OFFSET_LOOKBACK_MS = 60 * 60 * 1000
# orders stored this recently (wall time) may still be delivered again on orders_by_session
REDELIVERY_HORIZON_S = 5 * 60

# session activity in SQL, mirroring streams.counting.classify: the step an event means
# and the session's channel, packed with the event time into one sortable Int64
# (ts_ms * 64 + step * 8 + channel code) so that one sorted array per session holds all
_CHANNEL_CODES = {channel: code for code, channel in enumerate(sorted(lv.CHANNELS - {lv.OTHER}), 1)}
_CHANNEL_NAMES = {code: channel for channel, code in _CHANNEL_CODES.items()}
_ORDER_SESSION_TYPES = ("order_created", "payment_succeeded", "payment_failed")


def _strings(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def _ints(values: Iterable[int]) -> str:
    return ", ".join(str(int(v)) for v in values)


_CHANNEL_SQL = (
    f"transform(toString(channel), [{_strings(_CHANNEL_CODES)}], "
    f"[{_ints(_CHANNEL_CODES.values())}], 0)"
)
_STEP_SQL: dict[Topic, str] = {
    "clicks": f"if(event_type = 'page_view', if(page_type = 'detail', {DETAIL}, {VISIT}), "
    f"{NO_STEP})",
    "carts": f"if(event_type = 'add_to_cart', {CART}, {NO_STEP})",
    "orders": f"multiIf(event_type = 'order_created', {CHECKOUT}, "
    f"event_type = 'payment_succeeded', {PAID}, {NO_STEP})",
}


# ------------------------------------------------------------------ ownership


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java client ``Utils.murmur2``, seed 0x9747b28c) as an unsigned
    32-bit int, like ``kafka.partitioner.default.murmur2`` (several times faster)."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def kafka_partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a non-empty UTF-8 key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# ------------------------------------------------------------------ plan (pure)


@dataclass(frozen=True)
class RebuildPlan:
    """Which stored events a rebuild reads, all in epoch ms of event time.

    ``replay_from``: first window start that is not emitted yet (aligned to the window
    size); ``clock_ms``: the window clock of the rebuilt state, at which exactly the
    windows before ``replay_from`` are closed; ``sessions_from``: start of the session
    lookback; ``live_after``: sessions last seen at or before it cannot be continued;
    ``orders_from``: oldest ``order_created`` whose category is still remembered;
    ``offsets_from``: oldest event time looked at for stored offsets; ``windows_from``:
    ``{partition: first window start it emits}`` (its events before only restore state).
    """

    replay_from: int
    clock_ms: int
    sessions_from: int
    live_after: int
    orders_from: int
    offsets_from: int
    windows_from: dict[int, int] = field(default_factory=dict)


def plan_rebuild(
    *,
    now_ms: int,
    partitions: Sequence[int],
    newest_marked: Mapping[int, int],
    any_emitted: int | None,
    live_emitted: Mapping[int, int] | None = None,
    size_ms: int,
    lateness_ms: int,
    timeout_ms: int = SESSION_TIMEOUT_MS,
    max_catch_up_ms: int = MAX_CATCH_UP_MS,
) -> RebuildPlan:
    """The rebuild plan of ``partitions`` at clock ``now_ms``.

    ``newest_marked``: newest marked window start (ms) of each partition in the catch-up
    horizon; ``any_emitted``: newest ``window_start`` of any rollup row (None: none), for a
    store without marks; ``live_emitted``: the newest window the running pipeline closed,
    for the partitions it holds. ``replay_from`` is the oldest first window of a partition
    (:func:`streams.worker.window_emitters.plan_windows`). The session lookback is ``timeout +
    size + lateness``: every session a future event can continue, seen over the session
    timeout and the grace the live store keeps it.
    """
    oldest = oldest_catch_up(now_ms, size_ms, max_catch_up_ms)
    windows_from = plan_windows(
        partitions=partitions,
        newest_marked_ms=newest_marked,
        live_emitted_ms=live_emitted or {},
        any_emitted_ms=any_emitted,
        oldest=oldest,
        size_ms=size_ms,
    )
    replay_from = min(windows_from.values(), default=oldest)
    plan = plan_from(replay_from, size_ms=size_ms, lateness_ms=lateness_ms, timeout_ms=timeout_ms)
    return replace(plan, windows_from=windows_from)


def oldest_catch_up(now_ms: int, size_ms: int, max_catch_up_ms: int = MAX_CATCH_UP_MS) -> int:
    """The oldest window start a rebuild at clock ``now_ms`` still emits."""
    oldest = now_ms - max_catch_up_ms
    return oldest - oldest % size_ms


def plan_from(replay_from: int, *, size_ms: int, lateness_ms: int, timeout_ms: int) -> RebuildPlan:
    """The plan whose first window not emitted yet starts at ``replay_from``."""
    return RebuildPlan(
        replay_from=replay_from,
        clock_ms=replay_from + lateness_ms,
        sessions_from=replay_from - timeout_ms - size_ms - lateness_ms,
        live_after=replay_from - timeout_ms,
        orders_from=replay_from - ORDER_MEMORY_MS - size_ms - lateness_ms,
        offsets_from=replay_from - OFFSET_LOOKBACK_MS,
    )


# ------------------------------------------------------------------ SQL


def _seconds(ms: int) -> int:
    return max(ms // 1000, 0)


def any_emitted_sql(database: str) -> str:
    """Newest ``window_start`` (epoch s, 0 = none) of any rollup row, by any emitter."""
    parts = " UNION ALL ".join(
        f"SELECT toUInt32(max(window_start)) AS anyone FROM {database}.{table}"
        for table in ROLLUP_TABLES
    )
    return f"SELECT max(anyone) FROM ({parts})"


def _time_range(
    topic: Topic, from_ms: int, to_ms: int | None = None, types: Iterable[str] = ()
) -> str:
    # event_type and event_time lead the raw tables' key: a range read, not a full scan
    cond = (
        f"event_type IN ({_strings(sorted(types or EVENT_TYPES[topic]))}) "
        f"AND event_time >= toDateTime({_seconds(from_ms)}) AND ts_ms >= {from_ms}"
    )
    if to_ms is not None:
        cond += f" AND event_time <= toDateTime({_seconds(to_ms)}) AND ts_ms < {to_ms}"
    return cond


def _owned(partitions: Sequence[int]) -> str:
    return f"kafka_partition IN ({_ints(partitions)})"


def newest_event_sql(database: str, partitions: Sequence[int], from_ms: int) -> str:
    """Newest stored event time (ms, 0 = none) of the partitions, from ``from_ms`` on."""
    parts = " UNION ALL ".join(
        f"SELECT max(ts_ms) AS ts FROM {database}.{RAW_TABLE[topic]} "
        f"WHERE {_time_range(topic, from_ms)} AND {_owned(partitions)}"
        for topic in TOPICS
    )
    return f"SELECT max(ts) FROM ({parts})"


def sessions_sql(
    database: str, partitions: Sequence[int], plan: RebuildPlan, timeout_ms: int
) -> str:
    """One row per session active in the lookback and still continuable, with the state of
    its current session (after its last 30-minute gap):
    ``(session_id, first_seen_ms, last_seen_ms, step, channel_code, from_owned_partition)``.

    Orders are read from every partition (their rows carry the ``orders`` partition, not the
    session's); ``from_owned_partition`` is 0 for a session seen only through orders, whose
    owner the caller checks with :func:`kafka_partition_for`.
    """
    selects = []
    for topic in ("clicks", "carts", "orders"):
        owned = "0" if topic == "orders" else "1"
        if topic == "orders":
            where = _time_range(topic, plan.sessions_from, plan.replay_from, _ORDER_SESSION_TYPES)
        else:
            where = _time_range(topic, plan.sessions_from, plan.replay_from)
            where += f" AND {_owned(partitions)}"
        # CAST, not toInt64: in 18.16 a function of a LowCardinality column can be
        # LowCardinality, which UNION ALL does not mix with plain types
        packed = f"ts_ms * 64 + {_STEP_SQL[topic]} * 8 + {_CHANNEL_SQL}"
        selects.append(
            f"SELECT session_id, CAST({packed} AS Int64) AS packed, toUInt8({owned}) AS owned "
            f"FROM {database}.{RAW_TABLE[topic]} WHERE {where}"
        )
    return f"""
SELECT session_id, intDiv(seg[1], 64) AS first_seen, intDiv(seg[-1], 64) AS last_seen,
    arrayReduce('max', arrayMap(x -> intDiv(x % 64, 8), seg)) AS step, seg[1] % 8 AS channel,
    from_owned
FROM (
    SELECT session_id, arraySort(groupArray(packed)) AS events, max(owned) AS from_owned,
        arrayReverse(arrayDifference(arrayMap(x -> intDiv(x, 64), events))) AS gaps_back,
        arrayFirstIndex(g -> g >= {timeout_ms}, gaps_back) AS back,
        arraySlice(events, if(back = 0, 1, length(events) - back + 1)) AS seg
    FROM ({" UNION ALL ".join(selects)})
    GROUP BY session_id
    HAVING max(packed) >= {(plan.live_after + 1) * 64}
)"""


def order_categories_sql(database: str, plan: RebuildPlan) -> str:
    """``(order_id, session_id, category of the first item, ts_ms)`` of recent orders with
    items, created before the replayed windows (all partitions: see :func:`sessions_sql`)."""
    return (
        f"SELECT order_id, session_id, `items.category`[1], ts_ms FROM {database}.orders_raw "
        f"WHERE event_type = 'order_created' AND notEmpty(`items.category`) "
        f"AND event_time >= toDateTime({_seconds(plan.orders_from)}) "
        f"AND ts_ms >= {plan.orders_from} AND ts_ms < {plan.replay_from}"
    )


def paying_orders_sql(database: str, plan: RebuildPlan) -> str:
    """``(order_id, session_id, payment_method, failed once, first ts_ms)`` of the recent
    orders' payment attempts before the replayed windows, per order and method (so that a
    retry after a restart is not counted as a new paying or failed order)."""
    return (
        f"SELECT order_id, session_id, payment_method, "
        f"max(event_type = 'payment_failed'), min(ts_ms) FROM {database}.orders_raw "
        f"WHERE event_type IN ('payment_succeeded', 'payment_failed') "
        f"AND event_time >= toDateTime({_seconds(plan.orders_from)}) "
        f"AND ts_ms >= {plan.orders_from} AND ts_ms < {plan.replay_from} "
        f"GROUP BY order_id, session_id, payment_method"
    )


# the columns a replayed event needs (what streams.counting.classify reads), per topic
REPLAY_COLUMNS: dict[Topic, tuple[str, ...]] = {
    "clicks": (
        "event_id",
        "event_type",
        "ts_ms",
        "user_id",
        "session_id",
        "channel",
        "page_type",
        "traffic_source",
        "load_ms",
    ),
    "carts": ("event_id", "event_type", "ts_ms", "session_id", "channel"),
    "orders": (
        "event_id",
        "event_type",
        "ts_ms",
        "session_id",
        "channel",
        "region",
        "order_id",
        "amount",
        "payment_method",
        "coupon_code",
        "failure_reason",
        "length(`items.category`)",
        "`items.category`[1]",
    ),
    "tickets": ("event_id", "event_type", "ts_ms", "ticket_id", "kind", "reason"),
}


def replay_sql(
    database: str, topic: Topic, partitions: Sequence[int], from_ms: int, to_ms: int | None = None
) -> str:
    """Stored events of ``topic`` from ``from_ms`` on (before ``to_ms``), oldest first, as
    ``kafka_partition`` then :data:`REPLAY_COLUMNS` (orders of every partition: see
    :func:`sessions_sql`)."""
    where = _time_range(topic, from_ms, to_ms)
    if topic != "orders":
        where += f" AND {_owned(partitions)}"
    return (
        f"SELECT kafka_partition, {', '.join(REPLAY_COLUMNS[topic])} "
        f"FROM {database}.{RAW_TABLE[topic]} "
        f"WHERE {where} ORDER BY ts_ms"
    )


def stored_offsets_sql(database: str, partitions: Sequence[int], from_ms: int) -> str:
    """``(topic, partition, newest stored offset, an event_id stored at it)`` of every source
    topic and partition: the offset most recently stored (newest ``ingested_at``, then
    highest offset), so that after a topic's new incarnation was stored, its offsets count,
    not the higher ones of the old log (``streams.worker.offset_fence``)."""
    newest = "(ingested_at, kafka_offset)"
    return " UNION ALL ".join(
        f"SELECT '{topic}' AS topic, kafka_partition, argMax(kafka_offset, {newest}), "
        f"argMax(event_id, {newest}) "
        f"FROM {database}.{RAW_TABLE[topic]} "
        f"WHERE {_time_range(topic, from_ms)} AND {_owned(partitions)} GROUP BY kafka_partition"
        for topic in TOPICS
    )


def redelivered_sql(database: str, from_ms: int, to_ms: int, ingested_after_s: int) -> str:
    """``(event_id, ts_ms)`` of order events of ``[from_ms, to_ms)`` stored since
    ``ingested_after_s`` (wall time)."""
    return (
        f"SELECT event_id, ts_ms FROM {database}.orders_raw "
        f"WHERE {_time_range('orders', from_ms, to_ms)} "
        f"AND ingested_at >= toDateTime({ingested_after_s})"
    )


# ------------------------------------------------------------------ rows → state (pure)


def replay_event(topic: Topic, row: Sequence[Any]) -> dict[str, Any]:
    """A stored row of :data:`REPLAY_COLUMNS` as an event the classifier counts the same way
    as the original (absent optional strings are stored as ``''``, which also counts as
    ``other``; only an order's first item category is kept, the only one counted)."""
    if topic == "clicks":
        event_id, event_type, ts, user_id, session_id, channel, page_type, source, load = row
        return {
            "event_id": event_id,
            "event_type": event_type,
            "ts": int(ts),
            "user_id": user_id,
            "session_id": session_id,
            "channel": channel,
            "page_type": page_type,
            "traffic_source": source,
            "load_ms": None if load is None else int(load),
        }
    if topic == "carts":
        event_id, event_type, ts, session_id, channel = row
        return {
            "event_id": event_id,
            "event_type": event_type,
            "ts": int(ts),
            "session_id": session_id,
            "channel": channel,
        }
    if topic == "orders":
        (event_id, event_type, ts, session_id, channel, region, order_id, amount, method,
         coupon, reason, n_items, category) = row  # fmt: skip
        event = {
            "event_id": event_id,
            "event_type": event_type,
            "ts": int(ts),
            "session_id": session_id,
            "channel": channel,
            "region": region,
            "order_id": order_id,
            "amount": amount,
            "payment_method": method,
            "coupon_code": coupon,
            "failure_reason": reason,
        }
        if int(n_items):
            event["items"] = [{"category": category}]
        return event
    event_id, event_type, ts, ticket_id, kind, reason = row
    return {
        "event_id": event_id,
        "event_type": event_type,
        "ts": int(ts),
        "ticket_id": ticket_id,
        "kind": kind,
        "reason": reason,
    }


def session_from_row(row: Sequence[Any]) -> tuple[str, Session]:
    """A row of :func:`sessions_sql` as ``(session_id, Session)``."""
    session_id, first_seen, last_seen, step, channel, _ = row
    return session_id, Session(
        int(step), _CHANNEL_NAMES.get(int(channel), lv.OTHER), int(first_seen), int(last_seen)
    )


def merge_by_time(
    streams: Mapping[Topic, Sequence[tuple[int, Mapping[str, Any]]]],
) -> Iterator[tuple[Topic, int, Mapping[str, Any]]]:
    """``(topic, partition, event)`` of several time-sorted lists of ``(partition, event)``,
    in event-time order (ties: in ``TOPICS`` order, so clicks before carts before orders)."""

    def tagged(rank: int, topic: Topic) -> Iterator[tuple[int, int, Topic, int, Mapping[str, Any]]]:
        return ((event["ts"], rank, topic, p, event) for p, event in streams[topic])

    lists = [tagged(rank, topic) for rank, topic in enumerate(TOPICS) if topic in streams]
    for _ts, _rank, topic, partition, event in heapq.merge(
        *lists, key=lambda item: (item[0], item[1])
    ):
        yield topic, partition, event


# ------------------------------------------------------------------ rebuild (blocking)


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


class _Owners:
    """Which partition a session or ticket belongs to (memoised murmur2)."""

    def __init__(self, partition_count: int) -> None:
        self.partition_count = partition_count
        self._cache: dict[str, int] = {}

    def of(self, key: str) -> int:
        partition = self._cache.get(key)
        if partition is None:
            partition = self._cache[key] = kafka_partition_for(key, self.partition_count)
        return partition


def _restore(
    timed: Callable[[str, str], Sequence[Sequence[Any]]],
    pipeline: Pipeline,
    plan: RebuildPlan,
    *,
    database: str,
    partitions: Sequence[int],
    owners: _Owners,
    stats: RebuildStats,
) -> tuple[int | None, dict[str, int]]:
    """Restore sessions, order categories and paying orders of ``partitions`` before
    ``plan.replay_from``, then count their stored events from ``replay_from`` on into
    ``pipeline``'s windows (an event of partition p before ``plan.windows_from[p]`` updates
    state only). An order is counted under its session's partition (``orders_by_session``'s,
    where the live worker counts it), every other event under its own. Returns the newest
    replayed event time (None: none) and ``{event_id: ts}`` of the replayed orders."""
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

    events: dict[Topic, list[tuple[int, dict[str, Any]]]] = {}
    for topic in TOPICS:
        rows = timed("read", replay_sql(database, topic, partitions, plan.replay_from))
        started = time.perf_counter()
        if topic == "orders":
            by_session = ((owners.of(row[4]), replay_event(topic, row[1:])) for row in rows)
            converted = [(p, e) for p, e in by_session if p in owned]
        else:
            converted = [(int(row[0]), replay_event(topic, row[1:])) for row in rows]
        events[topic] = converted
        stats.seconds["convert"] = stats.seconds.get("convert", 0.0) + time.perf_counter() - started

    started = time.perf_counter()
    stats.replayed += pipeline.warm_up(merge_by_time(events), plan.clock_ms, plan.windows_from)
    stats.seconds["count"] = stats.seconds.get("count", 0.0) + time.perf_counter() - started
    newest = max((e[-1][1]["ts"] for e in events.values() if e), default=None)
    return newest, {e["event_id"]: int(e["ts"]) for _, e in events["orders"]}


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
) -> Rebuilt:
    """Read the stored state of ``partitions`` and count it into ``new_pipeline()``.

    Blocking (ClickHouse reads, counting): run it in a thread. ``clock_now_ms`` is the live
    window clock (0 for an event clock that has seen nothing yet: then the newest stored
    event time is the clock). ``live_emitted``: the newest window the live pipeline closed,
    for the partitions it holds already. Each partition's windows start after its newest
    mark (:func:`plan_rebuild`), whichever worker wrote it.
    """
    pipeline = new_pipeline()
    stats = RebuildStats()
    size_ms = pipeline.windows.size_ms

    def timed(step: str, sql: str) -> Sequence[Sequence[Any]]:
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
    next_offsets = {(topic, int(p)): int(offset) + 1 for topic, p, offset, _ in stored}
    fingerprints = {(topic, int(p)): str(event_id) for topic, p, _, event_id in stored}
    owners = _Owners(partition_count)
    newest_replayed, replayed_orders = _restore(
        timed,
        pipeline,
        plan,
        database=database,
        partitions=partitions,
        owners=owners,
        stats=stats,
    )
    if newest_replayed is not None:
        newest = max(newest or newest_replayed, newest_replayed)

    # orders Kafka may deliver again on orders_by_session, to skip once: those replayed
    # above, and those of the windows before (emitted); never an order stored after the
    # replay read (another worker's, while this one rebuilds): it was counted nowhere yet
    horizon_s = int(wall_now_s) - REDELIVERY_HORIZON_S
    redelivered = dict(replayed_orders)
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


# ------------------------------------------------------------------ the worker's side


class Recovery:
    """Rebuilds the live pipeline's state for an assignment, off the event loop.

    :meth:`on_assigned` returns the Kafka offsets to resume the source topics at, for the
    caller (``streams.worker.reader``) to seek to before it reads. Until it returns the caller
    must not feed the pipeline events of the assigned partitions. ClickHouse errors are
    retried with backoff for ``retry_for_s``; after that the worker goes on from an empty
    state (logged as an error, counted in ``salewatch_rebuild_failures_total{reason}``)
    rather than not counting at all. Any other exception is a bug and propagates: the
    reader stops the worker (``streams.worker.reader.TaskDied``). ``held``: the partitions
    the live pipeline counts (the window timer marks its closings with them).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        window_clock: WindowClock,
        new_pipeline: Callable[[], Pipeline],
        make_query: Callable[[], tuple[Query, Callable[[], None]]],
        *,
        database: str,
        partition_count: int,
        clock_kind: ClockKind,
        store_closed: StoreClosed,
        retry_for_s: float = 60.0,
        wall: Callable[[], float] = time.time,
        totals: Totals | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.window_clock = window_clock
        self.new_pipeline = new_pipeline
        self.make_query = make_query
        self.database = database
        self.partition_count = partition_count
        self.clock_kind: ClockKind = clock_kind
        self.store_closed = store_closed
        self.retry_for_s = retry_for_s
        self.wall = wall
        self.totals = totals
        self.held: tuple[int, ...] = ()

    def _rebuild_blocking(
        self, partitions: Sequence[int], clock_now_ms: int, live_emitted: Mapping[int, int]
    ) -> Rebuilt:
        def retryable(exc: BaseException) -> bool:
            return is_driver_error(exc) or is_connection_error(exc)

        def attempt() -> Rebuilt:
            query, close = self.make_query()
            try:
                return rebuild(
                    query,
                    database=self.database,
                    partitions=partitions,
                    partition_count=self.partition_count,
                    new_pipeline=self.new_pipeline,
                    clock_kind=self.clock_kind,
                    clock_now_ms=clock_now_ms,
                    live_emitted=live_emitted,
                    wall_now_s=self.wall(),
                )
            finally:
                close()

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            wait=wait_exponential(multiplier=0.25, min=0.25, max=5),
            stop=stop_after_delay(self.retry_for_s),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "rebuilding counting state from ClickHouse failed (%s); retrying",
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        return retrying(attempt)

    async def on_assigned(
        self, partitions: Sequence[int]
    ) -> dict[tuple[Topic, int], StoredPosition]:
        """Rebuild the state of ``partitions``, adopt it; return, per source topic and
        partition, the newest stored offset and its fingerprint (the reader resumes after it
        once ``streams.worker.offset_fence`` confirmed the log is the one stored)."""
        partitions = sorted(set(partitions))
        if not partitions:
            self.pipeline.adopt(self.new_pipeline())
            self.held = ()
            return {}
        started = time.perf_counter()
        clock_now = self.window_clock.now_ms()
        emitted = self.pipeline.emitted_through
        live = {p: emitted for p in self.held} if emitted != NO_WINDOW else {}
        try:
            rebuilt = await asyncio.to_thread(self._rebuild_blocking, partitions, clock_now, live)
        except Exception as exc:
            if not (is_driver_error(exc) or is_connection_error(exc)):
                raise  # a bug: the worker must stop, not count from a wrong state
            reason = "clickhouse_unreachable" if is_connection_error(exc) else "clickhouse_error"
            if self.totals is not None:
                self.totals.inc("salewatch_rebuild_failures_total", (reason,))
            log.error(
                "cannot rebuild the counting state of partitions %s from ClickHouse (%s); "
                "counting goes on from an empty state: open windows and sessions of these "
                "partitions start over",
                partitions,
                exc,
            )
            # what was open may hold partitions given away: their next owner counts them
            self.pipeline.adopt(self.new_pipeline())
            self.held = tuple(partitions)
            return {}
        moved = sorted(set(partitions) - set(self.held))
        if moved:
            log.info(
                "partitions %s moved here: each is emitted from the window after its newest "
                "mark (%s); windows of it before are left to the rows its previous owner wrote",
                moved,
                ", ".join(f"p{p} {_hh_mm(rebuilt.plan.windows_from[p])}" for p in moved),
            )
        self.held = tuple(partitions)
        self.pipeline.adopt(
            rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms
        )
        if self.clock_kind == "event" and rebuilt.newest_event_ms is not None:
            self.window_clock.observe(rebuilt.newest_event_ms)
        log.info(
            "counting state of partitions %s rebuilt from ClickHouse in %.2fs: windows from %s, %s",
            partitions,
            time.perf_counter() - started,
            ", ".join(f"p{p} {_hh_mm(ms)}" for p, ms in sorted(rebuilt.plan.windows_from.items())),
            rebuilt.stats.describe(),
        )
        return {
            key: StoredPosition(offset - 1, rebuilt.fingerprints[key])
            for key, offset in rebuilt.next_offsets.items()
        }


def _hh_mm(ms: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ms / 1000))
