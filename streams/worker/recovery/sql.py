"""The SQL a rebuild reads ClickHouse with: marks, newest events, sessions, orders, replays,
stored offsets, redelivered ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from streams.clickhouse.raw_rows import RAW_TABLE
from streams.counting.funnel import (
    CART,
    CHECKOUT,
    DETAIL,
    NO_STEP,
    PAID,
    VISIT,
)
from streams.counting.rollups import ROLLUP_TABLES
from streams.events.contract import EVENT_TYPES, TOPICS, Topic
from streams.metrics import labels as lv
from streams.worker.recovery.plan import RebuildPlan

# session activity in SQL, mirroring streams.counting.classify: the step an event means
# and the session's channel, packed with the event time into one sortable Int64
# (ts_ms * 64 + step * 8 + channel code) so that one sorted array per session holds all
_CHANNEL_CODES = {channel: code for code, channel in enumerate(sorted(lv.CHANNELS - {lv.OTHER}), 1)}
CHANNEL_NAMES = {code: channel for channel, code in _CHANNEL_CODES.items()}
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
    database: str,
    topic: Topic,
    partitions: Sequence[int],
    from_ms: int,
    to_ms: int | None = None,
    *,
    orders_through: Mapping[int, int] | None = None,
) -> str:
    """Stored events of ``topic`` from ``from_ms`` on (before ``to_ms``), oldest first, as
    ``kafka_partition`` then :data:`REPLAY_COLUMNS` (orders of every partition: see
    :func:`sessions_sql`). ``orders_through``: ``{orders partition: newest offset}`` the
    orders are read up to (:func:`stored_orders_sql`; partitions absent: none)."""
    where = _time_range(topic, from_ms, to_ms)
    if topic != "orders":
        where += f" AND {_owned(partitions)}"
    elif orders_through is not None:
        cases = ", ".join(
            f"kafka_partition = {int(p)}, kafka_offset <= {int(o)}"
            for p, o in sorted(orders_through.items())
        )
        where += f" AND multiIf({cases}, 0)" if cases else " AND 0"
    return (
        f"SELECT kafka_partition, {', '.join(REPLAY_COLUMNS[topic])} "
        f"FROM {database}.{RAW_TABLE[topic]} "
        f"WHERE {where} ORDER BY ts_ms"
    )


def stored_orders_sql(database: str, from_ms: int) -> str:
    """``(partition, highest stored offset)`` of each ``orders`` partition, over the orders
    of event time ``from_ms`` on: what ClickHouse holds when a rebuild starts."""
    return (
        f"SELECT kafka_partition, max(kafka_offset) FROM {database}.orders_raw "
        f"WHERE {_time_range('orders', from_ms)} GROUP BY kafka_partition"
    )


def next_event_sql(database: str, partitions: Sequence[int], from_ms: int) -> str:
    """Oldest event time (ms, 0 = none) from ``from_ms`` on among the events
    :func:`replay_sql` reads."""
    parts = []
    for topic in TOPICS:
        where = _time_range(topic, from_ms)
        if topic != "orders":
            where += f" AND {_owned(partitions)}"
        parts.append(
            f"SELECT min(ts_ms) AS ts, count() AS n FROM {database}.{RAW_TABLE[topic]} "
            f"WHERE {where}"
        )
    return f"SELECT minIf(ts, n > 0) FROM ({' UNION ALL '.join(parts)})"


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
