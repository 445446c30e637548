"""Restart recovery (streams.worker.recovery): session ownership, the rebuild plan, stored rows read
back as events, session state from SQL, and the property that matters — a worker that
crashes and rebuilds from ClickHouse ends with the same rollups and totals as one that
never crashed.

The SQL runs here on current ClickHouse (chdb, in-process); the same queries run on the
local 18.16 server in tests/integration/test_counting_ground_truth.py (the worker's own
rebuild). chdb allows one data directory per process at a time: sessions are closed at
teardown.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from streams.clickhouse.raw_rows import RAW_COLUMNS, RAW_TABLE, raw_row
from streams.counting.funnel import CART, CHECKOUT, DETAIL, NO_STEP, PAID, VISIT, Session
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import ROLLUP_COLUMNS, RollupRow
from streams.events.contract import KEY_FIELD, TOPICS, Topic
from streams.kafka.partitioner import kafka_partition_for, murmur2
from streams.metrics.totals import Totals
from streams.worker.recovery.plan import MAX_CATCH_UP_MS, RebuildPlan, plan_rebuild
from streams.worker.recovery.rebuild import Query, rebuild, replay_slices
from streams.worker.recovery.rows import merge_by_time, replay_event, session_from_row
from streams.worker.recovery.sql import REPLAY_COLUMNS, replay_sql, sessions_sql
from streams.worker.window_emitters import COLUMNS as MARK_COLUMNS
from streams.worker.window_emitters import TABLE as MARKS
from streams.worker.window_emitters import Mark, marks_for
from tests.unit.chdb_store import migrated_chdb
from tests.unit.events_factory import DROP, make_event

chdb_session = pytest.importorskip("chdb.session")

DB = "salewatch_recovery"
MIN = 60_000
T0 = 1_795_000_020_000 - 1_795_000_020_000 % MIN  # a window start
SIZE, LATENESS, TIMEOUT = MIN, 2 * MIN, 30 * MIN
PARTITIONS = 4
WALL_S = 1_800_000_000  # "now" on the wall clock: every stored row is recent


# ------------------------------------------------------------------ ownership


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(b"a", id="1 byte"),
        pytest.param(b"ab", id="2 bytes"),
        pytest.param(b"abc", id="3 bytes"),
        pytest.param(b"abcd", id="4 bytes"),
        pytest.param(b"session-12345", id="13 bytes"),
        pytest.param("会话-ü-🛒".encode(), id="utf-8"),
        pytest.param(bytes(range(256)), id="every byte value"),
        pytest.param(b"", id="empty"),
    ],
)
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == kafka_python_murmur2(key)


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 7, 16])
def test_session_owner_is_the_default_partitioners_choice(partitions: int) -> None:
    """aiokafka (Faust's producer for orders_by_session) and kafka-python (producers of
    clicks/carts) put a session_id key on the partition kafka_partition_for says."""
    aiokafka_partition = DefaultPartitioner()
    everyone = list(range(partitions))
    for i in range(300):
        key = f"s-{i}-{'x' * (i % 9)}"
        expected = aiokafka_partition(key.encode(), everyone, everyone)
        assert kafka_partition_for(key, partitions) == expected
        assert (kafka_python_murmur2(key.encode()) & 0x7FFFFFFF) % partitions == expected


# ------------------------------------------------------------------ plan (pure)

NOW = T0 + 90 * MIN + 17_000
W = NOW - 17_000  # the window start NOW is in


@pytest.mark.parametrize(
    ("marked", "anyone", "live", "windows_from"),
    [
        pytest.param({}, None, {}, {0: W - 60 * MIN, 1: W - 60 * MIN}, id="nothing: catch up"),
        pytest.param(
            {0: W - 4 * MIN, 1: W - 6 * MIN},
            None,
            {},
            {0: W - 3 * MIN, 1: W - 5 * MIN},
            id="each partition after its own newest mark",
        ),
        pytest.param(
            {0: W - 4 * MIN},
            W - 2 * MIN,
            {},
            {0: W - 3 * MIN, 1: W - 60 * MIN},
            id="a partition never marked while others are: from the horizon",
        ),
        pytest.param(
            {}, W - 4 * MIN, {}, {0: W - 3 * MIN, 1: W - 3 * MIN}, id="a store without marks"
        ),
        pytest.param(
            {0: W - 5 * MIN, 1: W - 5 * MIN},
            None,
            {0: W - 3 * MIN},
            {0: W - 2 * MIN, 1: W - 4 * MIN},
            id="the running pipeline closed more than its marks say",
        ),
        pytest.param(
            {0: T0 - 600 * MIN}, None, {}, {0: W - 60 * MIN, 1: W - 60 * MIN}, id="capped"
        ),
        pytest.param(
            {0: W + 5 * MIN, 1: W + 5 * MIN},
            None,
            {},
            {0: W + 6 * MIN, 1: W + 6 * MIN},
            id="emitted ahead of the clock",
        ),
    ],
)
def test_plan_starts_each_partition_after_its_newest_mark(
    marked: dict[int, int], anyone: int | None, live: dict[int, int], windows_from: dict[int, int]
) -> None:
    plan = plan_rebuild(
        now_ms=NOW,
        partitions=[0, 1],
        newest_marked={p: ms for p, ms in marked.items() if ms >= W - 60 * MIN},
        any_emitted=anyone,
        live_emitted=live,
        size_ms=SIZE,
        lateness_ms=LATENESS,
    )
    assert plan.windows_from == windows_from
    assert plan.replay_from == min(windows_from.values())
    assert plan.replay_from % SIZE == 0
    assert plan.replay_from >= NOW - MAX_CATCH_UP_MS - SIZE
    # the rebuilt windows' clock closes exactly the windows before replay_from
    assert plan.clock_ms - SIZE - LATENESS < plan.replay_from <= plan.clock_ms - LATENESS
    assert plan.sessions_from == plan.replay_from - TIMEOUT - SIZE - LATENESS
    assert plan.live_after == plan.replay_from - TIMEOUT
    assert plan.orders_from == plan.replay_from - 30 * MIN - SIZE - LATENESS


# ------------------------------------------------------------------ chdb


def chdb_query(session: Any) -> Query:
    """Rows like clickhouse-driver's: 64-bit ints as ints, decimals as Decimal."""
    session.query("SET output_format_json_quote_64bit_integers = 0")

    def query(sql: str) -> list[list[Any]]:
        raw = session.query(sql, "JSONCompact").bytes()
        if not raw.strip():
            return []
        data: list[list[Any]] = json.loads(raw, parse_float=Decimal)["data"]
        return data

    return query


@pytest.fixture
def query(tmp_path: Path) -> Iterator[Query]:
    with migrated_chdb(tmp_path / "chdb", DB, chdb_query) as q:
        yield q


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def key_partition(topic: Topic, event: dict[str, Any]) -> int:
    return kafka_partition_for(event[KEY_FIELD[topic]], PARTITIONS)


def store(
    query: Query, items: Sequence[tuple[Topic, dict[str, Any]]], ingested_s: int = WALL_S
) -> None:
    """Store events as the worker does: one raw row each, partition by the message key,
    offsets counting up per topic partition."""
    offsets: Counter[tuple[Topic, int]] = Counter()
    for t, table in RAW_TABLE.items():
        counts = f"SELECT kafka_partition, count() FROM {DB}.{table} GROUP BY kafka_partition"
        for partition, n in query(counts):
            offsets[(t, int(partition))] = int(n)
    by_topic: dict[Topic, list[str]] = {}
    for topic, event in items:
        partition = key_partition(topic, event)
        row = raw_row(topic, event, partition, offsets[(topic, partition)], ingested_s)
        offsets[(topic, partition)] += 1
        by_topic.setdefault(topic, []).append("(" + ", ".join(literal(v) for v in row) + ")")
    for topic, values in by_topic.items():
        columns = ", ".join(f"`{c}`" for c in RAW_COLUMNS[topic])
        query(f"INSERT INTO {DB}.{RAW_TABLE[topic]} ({columns}) VALUES {', '.join(values)}")


def store_marks(query: Query, marks: Sequence[Mark], version: int = 1) -> None:
    values = ", ".join("(" + ", ".join(literal(v) for v in m.row(version)) + ")" for m in marks)
    if values:
        query(f"INSERT INTO {DB}.{MARKS} ({', '.join(MARK_COLUMNS)}) VALUES {values}")


def store_rollups(query: Query, rows: list[RollupRow]) -> None:
    for table, columns in ROLLUP_COLUMNS.items():
        values = [
            "(" + ", ".join(literal(r.row[c]) for c in columns) + ")"
            for r in rows
            if r.table == table
        ]
        if values:
            query(f"INSERT INTO {DB}.{table} ({', '.join(columns)}) VALUES {', '.join(values)}")


# ------------------------------------------------------------------ stored rows read back


def every_kind_of_event() -> list[tuple[Topic, dict[str, Any]]]:
    """One event of each shape the classifier distinguishes, all in one window."""
    shapes: list[tuple[Topic, dict[str, Any]]] = [
        ("clicks", {}),
        ("clicks", {"page_type": "home", "load_ms": DROP, "traffic_source": DROP}),
        ("clicks", {"event_type": "click", "load_ms": DROP, "channel": "tv"}),
        ("clicks", {"page_type": "wormhole", "traffic_source": "carrier_pigeon", "load_ms": 0}),
        ("carts", {}),
        ("carts", {"event_type": "remove_from_cart", "channel": "kiosk"}),
        ("orders", {"amount": 19.99, "coupon_code": DROP}),
        ("orders", {"items": DROP, "region": "XX-00", "payment_method": "barter"}),
        ("orders", {"event_type": "payment_succeeded", "items": DROP, "order_id": "o-1"}),
        ("orders", {"event_type": "payment_failed", "failure_reason": "timeout", "items": DROP}),
        ("orders", {"event_type": "payment_failed", "items": DROP, "order_id": "o-x"}),
        ("orders", {"event_type": "order_cancelled", "coupon_code": ""}),
        ("orders", {"event_type": "order_refunded", "items": [], "amount": 0.1}),
        ("tickets", {}),
        ("tickets", {"event_type": "ticket_resolved", "kind": "teleport", "order_id": DROP}),
    ]
    return [
        (topic, make_event(topic, event_id=f"e-{i}", ts=T0 + 1_000 * i, **overrides))
        for i, (topic, overrides) in enumerate(shapes)
    ]


def test_stored_events_count_like_the_originals(query: Query) -> None:
    events = every_kind_of_event()
    store(query, events)
    replayed: dict[Topic, list[tuple[int, dict[str, Any]]]] = {}
    for topic in RAW_TABLE:
        rows = query(replay_sql(DB, topic, range(PARTITIONS), T0))
        assert all(len(r) == 1 + len(REPLAY_COLUMNS[topic]) for r in rows)
        replayed[topic] = [(0, replay_event(topic, r[1:])) for r in rows]

    original, again = Pipeline(Totals()), Pipeline(Totals())
    original.warm_up([(t, 0, e) for t, e in events], T0)
    again.warm_up(merge_by_time(replayed), T0)

    assert again.close_windows(T0 + 10 * MIN) == original.close_windows(T0 + 10 * MIN)


SESSION_KEYED_AND_TICKETS: tuple[Topic, ...] = ("clicks", "carts", "tickets")


def test_replay_reads_only_owned_partitions_and_time(query: Query) -> None:
    events = [
        (
            topic,
            make_event(
                topic, event_id=f"{topic}-{i}", session_id=f"s-{i}", ticket_id=f"t-{i}", ts=T0 + i
            ),
        )
        for topic in TOPICS
        for i in range(40)
    ]
    store(query, events)
    owned = [1, 3]
    for topic in SESSION_KEYED_AND_TICKETS:
        rows = query(replay_sql(DB, topic, owned, T0 + 10))
        ids = {r[1] for r in rows}
        # each row says which partition it was read from
        assert all(int(r[0]) == key_partition(topic, replay_event(topic, r[1:])) for r in rows)
        expected = {
            e["event_id"]
            for t, e in events
            if t == topic and e["ts"] >= T0 + 10 and key_partition(t, e) in owned
        }
        assert ids == expected
    # orders carry the orders-topic partition: all are read, the owner is checked by session
    orders = query(replay_sql(DB, "orders", owned, T0))
    assert len(orders) == 40


@pytest.mark.parametrize(
    ("offsets_ms", "slice_rows"),
    [
        pytest.param([0, 1, 9_999, 10_000, 25_000], 60_000, id="slice-edges"),
        pytest.param([0, 1_000, 3 * 3_600_000, 3 * 3_600_000 + 1], 60_000, id="hours-gap"),
        pytest.param([i * 100 for i in range(300)], 20, id="halved-when-full"),
        pytest.param([], 60_000, id="nothing-stored"),
    ],
)
def test_replay_slices_read_every_event_once_in_time_order(
    query: Query, offsets_ms: list[int], slice_rows: int
) -> None:
    """Slices of event time, in order, together hold every replayed row once; an empty
    stretch is skipped with one query, not one per slice; a full slice is halved."""
    topics = list(TOPICS)
    events = [
        (topics[i % 4], make_event(topics[i % 4], event_id=f"e-{i}", session_id="s", ts=T0 + dt))
        for i, dt in enumerate(offsets_ms)
    ]
    store(query, events)
    sqls: list[str] = []

    def timed(step: str, sql: str) -> Sequence[Sequence[Any]]:
        sqls.append(sql)
        return query(sql)

    through = {p: 10**9 for p in range(PARTITIONS)}
    slices = list(replay_slices(timed, DB, range(PARTITIONS), T0, through, slice_rows=slice_rows))
    read = [
        (int(r[3]), r[1]) for rows in slices for topic_rows in rows.values() for r in topic_rows
    ]
    assert sorted(read) == sorted((e["ts"], e["event_id"]) for _, e in events)
    newest = [max(int(r[3]) for rows in s.values() for r in rows) for s in slices]
    oldest = [min(int(r[3]) for rows in s.values() for r in rows) for s in slices]
    assert all(n < o for n, o in zip(newest, oldest[1:], strict=False))
    assert len(sqls) < 4 * (len(slices) + 4)


def test_merge_by_time_interleaves_topics_in_event_time_order() -> None:
    streams: dict[Topic, list[tuple[int, dict[str, Any]]]] = {
        "clicks": [(0, {"ts": 1}), (1, {"ts": 5})],
        "orders": [(2, {"ts": 2}), (0, {"ts": 5})],
        "carts": [(3, {"ts": 3})],
    }
    merged = [(topic, p, e["ts"]) for topic, p, e in merge_by_time(streams)]
    assert merged == [
        ("clicks", 0, 1),
        ("orders", 2, 2),
        ("carts", 3, 3),
        ("clicks", 1, 5),
        ("orders", 0, 5),
    ]


# ------------------------------------------------------------------ session state from SQL

REPLAY_FROM = T0 + 40 * MIN
PLAN = RebuildPlan(
    replay_from=REPLAY_FROM,
    clock_ms=REPLAY_FROM + LATENESS,
    sessions_from=REPLAY_FROM - TIMEOUT - SIZE - LATENESS,
    live_after=REPLAY_FROM - TIMEOUT,
    orders_from=REPLAY_FROM - TIMEOUT - SIZE - LATENESS,
    offsets_from=REPLAY_FROM - 60 * MIN,
)
B = REPLAY_FROM - 2 * MIN  # a moment of the lookback, before replay_from


def activity(topic: Topic, dt: int, **overrides: Any) -> tuple[Topic, dict[str, Any]]:
    return topic, {"ts": B + dt, "session_id": "s", "load_ms": DROP, **overrides}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [activity("clicks", 0, page_type="home")],
            Session(VISIT, "app", B, B),
            id="one page view: visit",
        ),
        pytest.param(
            [activity("clicks", 0, event_type="click")],
            Session(NO_STEP, "app", B, B),
            id="a click starts a session without a step",
        ),
        pytest.param(
            [activity("clicks", 0, page_type="home"), activity("clicks", 9, page_type="detail")],
            Session(DETAIL, "app", B, B + 9),
            id="detail page",
        ),
        pytest.param(
            [activity("orders", 0, event_type="payment_succeeded", items=DROP)],
            Session(PAID, "app", B, B),
            id="deep link straight to paid",
        ),
        pytest.param(
            [activity("carts", 5), activity("clicks", 0, page_type="home", channel="web")],
            Session(CART, "web", B, B + 5),
            id="out of order: earliest event's channel",
        ),
        pytest.param(
            [
                activity("clicks", -TIMEOUT + 1, page_type="detail", channel="h5"),
                activity("clicks", 0, page_type="home"),
            ],
            Session(DETAIL, "h5", B - TIMEOUT + 1, B),
            id="gap 29:59.999 continues",
        ),
        pytest.param(
            [
                activity("clicks", -TIMEOUT, page_type="detail", channel="h5"),
                activity("clicks", 0, page_type="home"),
            ],
            Session(VISIT, "app", B, B),
            id="gap 30:00.000 starts a new session",
        ),
        pytest.param(
            [
                activity("clicks", -TIMEOUT, page_type="home"),
                activity("orders", 0, event_type="order_created"),
                activity("orders", 1, event_type="order_cancelled"),
                activity("orders", 2, event_type="payment_failed", channel="web"),
            ],
            Session(CHECKOUT, "app", B, B + 2),
            id="cancel is not session activity",
        ),
        pytest.param(
            [activity("carts", 0, channel="kiosk", event_type="remove_from_cart")],
            Session(NO_STEP, "other", B, B),
            id="unknown channel is other",
        ),
        pytest.param(
            [activity("clicks", REPLAY_FROM - B, page_type="detail"), activity("carts", -1)],
            Session(CART, "app", B - 1, B - 1),
            id="replayed windows are not in it",
        ),
    ],
)
def test_session_state_from_stored_activity(
    query: Query, events: list[tuple[Topic, dict[str, Any]]], expected: Session
) -> None:
    store(query, [(t, make_event(t, event_id=f"e-{i}", **o)) for i, (t, o) in enumerate(events)])
    rows = query(sessions_sql(DB, range(PARTITIONS), PLAN, TIMEOUT))
    assert [session_from_row(r) for r in rows] == [("s", expected)]


@pytest.mark.parametrize(
    ("last_seen", "restored"),
    [
        pytest.param(PLAN.live_after, False, id="idle 30:00 before the replay: cannot continue"),
        pytest.param(PLAN.live_after + 1, True, id="idle 29:59.999: can continue"),
        pytest.param(PLAN.sessions_from - 1, False, id="before the lookback"),
    ],
)
def test_only_continuable_sessions_are_restored(
    query: Query, last_seen: int, restored: bool
) -> None:
    store(query, [("clicks", make_event("clicks", ts=last_seen, session_id="s"))])
    rows = query(sessions_sql(DB, range(PARTITIONS), PLAN, TIMEOUT))
    assert bool(rows) is restored


def test_sessions_of_other_partitions_are_marked(query: Query) -> None:
    mine = next(f"s-{i}" for i in range(100) if kafka_partition_for(f"s-{i}", PARTITIONS) == 0)
    other = next(f"s-{i}" for i in range(100) if kafka_partition_for(f"s-{i}", PARTITIONS) == 1)
    store(
        query,
        [
            ("clicks", make_event("clicks", event_id="c1", session_id=mine, ts=B)),
            ("clicks", make_event("clicks", event_id="c2", session_id=other, ts=B)),
            ("orders", make_event("orders", event_id="o2", session_id=other, ts=B + 1)),
        ],
    )
    rows = {r[0]: r for r in query(sessions_sql(DB, [0], PLAN, TIMEOUT))}
    # other's clicks are not read; its order is (orders carry the order's partition),
    # flagged as seen only through orders for the caller's ownership check
    assert rows[mine][5] == 1
    assert rows[other][5] == 0
    assert session_from_row(rows[other])[1].step == CHECKOUT


# ------------------------------------------------------------------ crash, rebuild, continue


def generated_stream(seed: int, sessions: int = 60) -> list[tuple[Topic, dict[str, Any]]]:
    """Shopping sessions over ~9 minutes: page views, clicks, carts, orders whose payments
    carry no items (their category comes from the order), cancels, refunds, tickets, a
    few unknown labels, duplicates; unique timestamps, sorted."""
    rng = random.Random(seed)
    out: list[tuple[Topic, dict[str, Any]]] = []
    ts_used: set[int] = set()

    def at(ts: int) -> int:
        while ts in ts_used:
            ts += 1
        ts_used.add(ts)
        return ts

    n = 0

    def emit(topic: Topic, ts: int, **fields: Any) -> dict[str, Any]:
        nonlocal n
        n += 1
        event = make_event(topic, event_id=f"ev-{n}", ts=at(ts), **fields)
        out.append((topic, event))
        return event

    for s in range(sessions):
        sid, user = f"sess-{s}", f"user-{s % 45}"
        channel = rng.choice(["app", "web", "h5", "mini_program", "smart_tv"])
        common = {"session_id": sid, "user_id": user, "channel": channel}
        t = T0 + rng.randrange(0, 6 * MIN)
        for _ in range(rng.randrange(1, 5)):
            page = rng.choice(["home", "list", "detail", "detail", "search"])
            emit("clicks", t, page_type=page, traffic_source=rng.choice(["ads", "direct", "tv"]),
                 load_ms=rng.choice([DROP, rng.randrange(100, 9000)]), **common)  # fmt: skip
            t += rng.randrange(1_000, 40_000)
            if rng.random() < 0.3:
                emit("clicks", t, event_type="click", load_ms=DROP, **common)
        if rng.random() < 0.6:
            emit("carts", t, **common)
            t += rng.randrange(1_000, 20_000)
            if rng.random() < 0.7:
                order = f"ord-{s}"
                category = rng.choice(["food/x", "beauty", "toys"])
                created = emit(
                    "orders",
                    t,
                    order_id=order,
                    amount=rng.randrange(100, 99_999) / 100,
                    items=[{"item_id": "i", "category": category, "quantity": 1, "price": 1.0}],
                    region=rng.choice(["CN-GD", "CN-BJ", "XX-99"]),
                    **common,
                )
                t += rng.randrange(1_000, 30_000)
                outcome = rng.random()
                paid = {"order_id": order, "amount": created["amount"], "items": DROP, **common}
                if outcome < 0.6:
                    emit("orders", t, event_type="payment_succeeded", **paid)
                    if rng.random() < 0.3:
                        emit("orders", t + 20_000, event_type="order_refunded", **paid)
                        emit("tickets", t + 25_000, ticket_id=f"t-{s}", order_id=order)
                elif outcome < 0.8:
                    emit("orders", t, event_type="payment_failed", failure_reason="timeout", **paid)
                else:
                    emit("orders", t, event_type="order_cancelled", **paid)
    out.sort(key=lambda item: item[1]["ts"])
    for i in range(0, len(out), 17):  # duplicates: the same event delivered twice, at once
        out.insert(i + 1, out[i])
    return out


def counting_partition(topic: Topic, event: dict[str, Any]) -> int:
    """The partition a worker counts an event under: its message key's, and for orders
    their session's (``orders_by_session``)."""
    key = event["session_id"] if topic == "orders" else event[KEY_FIELD[topic]]
    return kafka_partition_for(key, PARTITIONS)


def count(pipeline: Pipeline, events: Sequence[tuple[Topic, dict[str, Any]]]) -> list[RollupRow]:
    """Count events one run of a topic and partition at a time, clock = event time, as a
    worker does; return what closed."""
    rows: list[RollupRow] = []
    i = 0
    while i < len(events):
        topic = events[i][0]
        partition = counting_partition(*events[i])
        j = i
        while (
            j < len(events)
            and events[j][0] == topic
            and counting_partition(*events[j]) == partition
        ):
            j += 1
        now = events[j - 1][1]["ts"]
        pipeline.process(topic, [e for _, e in events[i:j]], now, partition)
        rows += pipeline.close_windows(now)
        i = j
    return rows


def window_key(row: RollupRow) -> tuple[Any, ...]:
    values = (tuple(v) if isinstance(v, list) else v for c, v in row.row.items() if c != "version")
    return (row.table, *values)


def business_totals(*totals: Totals) -> dict[tuple[str, tuple[str, ...]], float]:
    """Every counter summed over ``totals`` (a restart's processes), rounded to cents."""
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    for t in totals:
        for name, series in t.values.items():
            if name.endswith("_total"):
                for labels, v in series.items():
                    out[(name, labels)] = out.get((name, labels), 0.0) + v
    return {key: round(v, 6) for key, v in out.items()}


def crash_and_rebuild(
    query: Query,
    events: list[tuple[Topic, dict[str, Any]]],
    crash_at: int,
    owned: Sequence[int],
    adopt: bool = True,
) -> tuple[Pipeline, Pipeline, list[RollupRow], list[tuple[str, int]]]:
    """Worker A counts and stores ``events[:crash_at]`` (all partitions' raw rows are
    stored, as the other workers would), writes the windows it closed and their marks,
    dies; worker B rebuilds from ClickHouse and counts the rest of its partitions."""

    def mine(topic: Topic, event: dict[str, Any]) -> bool:
        key = event["session_id"] if topic == "orders" else event[KEY_FIELD[topic]]
        return kafka_partition_for(key, PARTITIONS) in owned

    before, after = events[:crash_at], events[crash_at:]
    a = Pipeline(Totals())
    emitted = count(a, [item for item in before if mine(*item)])
    a_windows = {r.row["window_start"] for r in emitted}
    store(query, before)
    store_rollups(query, emitted)
    store_marks(query, marks_for(a.windows.newest_closed(), owned))

    b = Pipeline(Totals())
    rebuilt = rebuild(
        query,
        database=DB,
        partitions=owned,
        partition_count=PARTITIONS,
        new_pipeline=lambda: Pipeline(Totals()),
        clock_kind="event",
        clock_now_ms=0,
        live_emitted={},
        wall_now_s=WALL_S,
    )
    assert rebuilt.stats.replayed > 0
    # every stored order of its sessions is skipped if delivered again, nothing unstored is
    stored_orders = {e["event_id"] for t, e in before if t == "orders"}
    assert {e["event_id"] for t, e in before if t == "orders" and mine(t, e)} <= (
        rebuilt.counted_before
    )
    assert rebuilt.counted_before <= stored_orders
    if adopt:
        b.adopt(rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms)
    # Kafka delivers orders_by_session's uncommitted tail again: the last stored orders
    redelivered = [item for item in before[-30:] if item[0] == "orders" and mine(*item)]
    rows = count(b, redelivered + [item for item in after if mine(*item)])
    rows += b.close_windows(T0 + 60 * MIN)
    assert not a_windows & {r.row["window_start"] for r in rows}, "a window was emitted twice"
    rows += emitted
    offsets = sorted(rebuilt.next_offsets.items())
    return a, b, rows, [(f"{t}:{p}", o) for (t, p), o in offsets]


@pytest.mark.parametrize(
    ("seed", "crash_fraction", "owned"),
    [
        pytest.param(1, 0.5, (0, 1, 2, 3), id="one worker, crash half way"),
        pytest.param(2, 0.15, (0, 1, 2, 3), id="crash before any window closed"),
        pytest.param(3, 0.85, (0, 1, 2, 3), id="crash late"),
        pytest.param(4, 0.5, (1, 2), id="two of four partitions"),
        pytest.param(5, 0.6, (3,), id="one of four partitions"),
    ],
)
def test_crash_and_rebuild_equals_never_crashing(
    query: Query, seed: int, crash_fraction: float, owned: tuple[int, ...]
) -> None:
    events = generated_stream(seed)
    crash_at = int(len(events) * crash_fraction)

    def mine(topic: Topic, event: dict[str, Any]) -> bool:
        key = event["session_id"] if topic == "orders" else event[KEY_FIELD[topic]]
        return kafka_partition_for(key, PARTITIONS) in owned

    reference = Pipeline(Totals())
    expected = count(reference, [item for item in events if mine(*item)])
    expected += reference.close_windows(T0 + 60 * MIN)

    a, b, rows, offsets = crash_and_rebuild(query, events, crash_at, owned)

    assert sorted(map(window_key, rows)) == sorted(map(window_key, expected))
    # Prometheus: the totals of A (before the crash) plus B's equal one worker's
    assert business_totals(a.totals, b.totals) == business_totals(reference.totals)
    # B resumes every source partition it owns right after what is stored
    stored = Counter((t, key_partition(t, e)) for t, e in events[:crash_at])
    assert offsets == sorted((f"{t}:{p}", n) for (t, p), n in stored.items() if p in owned)


def test_without_the_rebuild_a_crash_changes_the_numbers(query: Query) -> None:
    """The property above is not vacuous: a worker restarting from an empty state gets
    different rollups and totals on the same stream."""
    events = generated_stream(1)
    reference = Pipeline(Totals())
    expected = count(reference, events) + reference.close_windows(T0 + 60 * MIN)
    a, b, rows, _ = crash_and_rebuild(query, events, len(events) // 2, range(4), adopt=False)
    assert sorted(map(window_key, rows)) != sorted(map(window_key, expected))
    assert business_totals(a.totals, b.totals) != business_totals(reference.totals)


def test_rebuild_restores_categories_of_orders_paid_after_the_restart(query: Query) -> None:
    created = make_event(
        "orders",
        event_id="created",
        order_id="o-7",
        session_id="s-7",
        ts=T0 + 1_000,
        items=[{"item_id": "i", "category": "beauty/lipstick", "quantity": 1, "price": 9.0}],
    )
    paid = make_event(
        "orders", event_id="paid", order_id="o-7", session_id="s-7", ts=T0 + 9 * MIN,
        event_type="payment_succeeded", items=DROP,
    )  # fmt: skip
    a = Pipeline(Totals())
    store_rollups(query, count(a, [("orders", created)]) + a.close_windows(T0 + 5 * MIN))
    store(query, [("orders", created)])
    b = Pipeline(Totals())
    rebuilt = rebuild(
        query,
        database=DB,
        partitions=range(PARTITIONS),
        partition_count=PARTITIONS,
        new_pipeline=lambda: Pipeline(Totals()),
        clock_kind="wall",
        clock_now_ms=T0 + 9 * MIN,
        live_emitted={},
        wall_now_s=WALL_S,
    )
    assert rebuilt.stats.orders == 1 and rebuilt.stats.replayed == 0
    assert rebuilt.stats.sessions == 1
    b.adopt(rebuilt.pipeline)
    b.process("orders", [paid], T0 + 9 * MIN)
    assert b.totals.get(
        "salewatch_order_amount_total", ("payment_succeeded", "app", "beauty")
    ) == pytest.approx(199.0)
    # the session reached checkout before the restart: paying adds only "paid"
    assert b.totals.get("salewatch_funnel_sessions_total", ("checkout", "app")) == 0
    assert b.totals.get("salewatch_funnel_sessions_total", ("paid", "app")) == 1


def test_windows_that_closed_while_the_worker_was_down_are_emitted_complete(
    query: Query,
) -> None:
    """Wall clock: a worker down for 20 minutes emits, at its first timer tick, the windows
    that closed meanwhile, from the stored events, exactly as if it had never stopped."""
    events = generated_stream(6)
    crash_at = len(events) // 3
    a = Pipeline(Totals())
    emitted = count(a, events[:crash_at])
    store_rollups(query, emitted)
    store(query, events)  # everything was stored; then the worker died
    now = events[-1][1]["ts"] + 20 * MIN

    b = Pipeline(Totals())
    rebuilt = rebuild(
        query,
        database=DB,
        partitions=range(PARTITIONS),
        partition_count=PARTITIONS,
        new_pipeline=lambda: Pipeline(Totals()),
        clock_kind="wall",
        clock_now_ms=now,
        live_emitted={},
        wall_now_s=WALL_S,
    )
    b.close_windows(now)  # the timer ticks on the empty pipeline during the rebuild
    b.adopt(rebuilt.pipeline)
    caught_up = b.close_windows(now)

    reference = Pipeline(Totals())
    expected = count(reference, events) + reference.close_windows(now)
    assert sorted(map(window_key, emitted + caught_up)) == sorted(map(window_key, expected))
    assert not b.totals.values.get("salewatch_page_views_total")  # counted before the crash


def test_adopt_keeps_rebuilt_windows_older_than_the_clock_for_the_next_tick() -> None:
    """A moved partition's windows that the live clock has passed (its previous owner did
    not emit them) are emitted at the next closing, under that partition's name."""
    live = Pipeline(Totals())
    live.process("tickets", [make_event("tickets", ts=T0 + 1)], T0, partition=0)
    assert live.close_windows(T0 + 5 * MIN)  # window T0 of partition 0 emitted
    rebuilt = Pipeline(Totals())
    rebuilt.warm_up(
        [
            ("tickets", 2, make_event("tickets", event_id=f"t{i}", ts=T0 + i * MIN))
            for i in range(3)
        ],
        T0,
    )
    live.adopt(rebuilt)
    rows = live.close_windows(T0 + 5 * MIN)
    assert sorted({(r.row["window_start"], r.row["worker"]) for r in rows}) == [
        (T0 // 1000, "p2"),
        ((T0 + MIN) // 1000, "p2"),
        ((T0 + 2 * MIN) // 1000, "p2"),
    ]
    assert live.emitted_through == T0 + 2 * MIN


def test_warm_up_counts_a_partition_only_from_its_first_window() -> None:
    p = Pipeline(Totals())
    counted = p.warm_up(
        [
            ("carts", 0, make_event("carts", event_id="a", session_id="s1", ts=T0 + 1)),
            ("carts", 1, make_event("carts", event_id="b", session_id="s2", ts=T0 + 2)),
            ("carts", 1, make_event("carts", event_id="c", session_id="s2", ts=T0 + MIN)),
        ],
        T0,
        windows_from={1: T0 + MIN},
    )
    assert counted == 2  # b only restores s2's state: window T0 of partition 1 is emitted
    rows = p.close_windows(T0 + 5 * MIN)
    carts = sorted(
        (r.row["window_start"], r.row["worker"], r.row["events"])
        for r in rows
        if r.table == "cart_events_1m"
    )
    assert carts == [(T0 // 1000, "p0", 1), ((T0 + MIN) // 1000, "p1", 1)]
    # s2 reached the cart step in window T0 (state only): not counted again in T0 + 1 min
    funnel = [(r.row["window_start"], r.row["worker"]) for r in rows if r.table == "funnel_1m"]
    assert ((T0 + MIN) // 1000, "p1") not in funnel


def test_warm_up_counts_windows_and_sessions_but_no_totals() -> None:
    p = Pipeline(Totals())
    counted = p.warm_up(
        [
            ("clicks", 0, make_event("clicks", event_id="a", ts=T0 + 1)),
            ("clicks", 0, make_event("clicks", event_id="a", ts=T0 + 1)),  # duplicate
            ("clicks", 0, make_event("clicks", event_id="old", ts=T0 - 3 * MIN)),  # late
            ("carts", 0, make_event("carts", event_id="b", ts=T0 + 2)),
        ],
        T0,
    )
    assert counted == 2
    # nothing counted: only the series exported at 0 from the start
    assert not any(v for series in p.totals.values.values() for v in series.values())
    rows = p.close_windows(T0 + 3 * MIN)
    funnel = {(r.row["step"], r.row["sessions"]) for r in rows if r.table == "funnel_1m"}
    assert funnel == {("visit", 1), ("detail", 1), ("cart", 1)}
