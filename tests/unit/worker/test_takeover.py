"""Partitions moving between workers (streams.worker.window_emitters, streams.worker.recovery): the
plan per partition, the marks' SQL, and the property that matters — whatever the interleaving of
closings, marks, deaths and rebalances, the rollups (ReplacingMergeTree semantics: a row
emitted again replaces its key, rows per partition) equal one worker that never stopped.

Each interleaving the two-worker fault test met only by chance under load is forced here:
a worker killed between a closing's rows and its marks, a mark still in flight while the
next owner plans, the previous owner's rows landing after the new owner's, a survivor ahead
of or behind the dead worker, a rolling restart.

SQL runs on chdb (current ClickHouse) as in test_recovery; 18.16 runs it in
tests/faults/test_two_workers.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver.errors import NetworkError, ServerException

from streams.counting.clock import EventClock
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import RollupRow
from streams.events.contract import Topic
from streams.metrics.totals import Totals
from streams.worker.recovery.rebuild import Query, RebuildAbandoned, Rebuilt, rebuild
from streams.worker.recovery.service import Recovery
from streams.worker.window_emitters import Mark, marks_for, newest_marked_sql, plan_windows
from tests.unit.chdb_store import migrated_chdb
from tests.unit.events_factory import make_event
from tests.unit.worker.test_recovery import (
    DB,
    MIN,
    PARTITIONS,
    T0,
    WALL_S,
    chdb_query,
    count,
    counting_partition,
    generated_stream,
    store,
    store_marks,
    store_rollups,
)

chdb_session = pytest.importorskip("chdb.session")


# ------------------------------------------------------------------ plan (pure)


@pytest.mark.parametrize(
    ("marked", "live", "anyone", "want"),
    [
        pytest.param({}, {}, None, {0: 4 * MIN, 1: 4 * MIN}, id="nothing emitted: the horizon"),
        pytest.param({}, {}, 8 * MIN, {0: 9 * MIN, 1: 9 * MIN}, id="no marks: after any row"),
        pytest.param(
            {0: 9 * MIN, 1: 6 * MIN}, {}, 9 * MIN, {0: 10 * MIN, 1: 7 * MIN}, id="own marks"
        ),
        pytest.param(
            {0: 9 * MIN}, {}, 9 * MIN, {0: 10 * MIN, 1: 4 * MIN}, id="never marked: horizon"
        ),
        pytest.param(
            {0: 9 * MIN, 1: 9 * MIN},
            {0: 11 * MIN},
            None,
            {0: 12 * MIN, 1: 10 * MIN},
            id="the live pipeline is ahead of its marks",
        ),
        pytest.param({0: 2 * MIN}, {}, None, {0: 4 * MIN, 1: 4 * MIN}, id="capped"),
    ],
)
def test_plan_windows(
    marked: dict[int, int], live: dict[int, int], anyone: int | None, want: dict[int, int]
) -> None:
    got = plan_windows(
        partitions=[0, 1],
        newest_marked_ms=marked,
        live_emitted_ms=live,
        any_emitted_ms=anyone,
        oldest=4 * MIN,
        size_ms=MIN,
    )
    assert got == want


def test_a_mark_names_its_partition() -> None:
    assert Mark(T0, 2).row(77) == (T0 // 1000, "p2", [2], 77)
    assert marks_for(T0, (3, 1, 3)) == [Mark(T0, 1), Mark(T0, 3)]


# ------------------------------------------------------------------ chdb


@pytest.fixture
def query(tmp_path: Path) -> Iterator[Query]:
    with migrated_chdb(tmp_path / "chdb", DB, chdb_query) as q:
        yield q


def test_newest_mark_per_partition_by_any_worker(query: Query) -> None:
    store_marks(query, [Mark(T0, 0), Mark(T0 + MIN, 0), Mark(T0 + 2 * MIN, 2)])
    store_marks(query, [Mark(T0 - 90 * MIN, 3)])  # before the horizon
    # a mark of an older version: named by process, several partitions
    query(
        f"INSERT INTO {DB}.window_emitters (window_start, worker, partitions, version) "
        f"VALUES ({(T0 + 3 * MIN) // 1000}, 'host:9108', [0, 1], 1)"
    )
    rows = query(newest_marked_sql(DB, T0 - 60 * MIN))
    assert sorted((int(p), int(s) * 1000) for p, s in rows) == [
        (0, T0 + 3 * MIN),
        (1, T0 + 3 * MIN),
        (2, T0 + 2 * MIN),
    ]


# ------------------------------------------------------------------ interleavings

A_OWNS, B_OWNS = (0, 1), (2, 3)


def stored_sums(rows: Sequence[RollupRow]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """What a reader of the rollup tables sees: per table, the newest row of each key
    (ReplacingMergeTree ``FINAL``), then its measures summed over workers by window and
    dimensions. ``traffic_1m.active_users`` (distinct per partition) is left out."""
    newest: dict[tuple[Any, ...], RollupRow] = {}
    for row in rows:
        names = tuple(v for v in row.row.values() if isinstance(v, str))  # incl. worker
        key: tuple[Any, ...] = (row.table, row.row["window_start"], *names)
        if key not in newest or version(row) >= version(newest[key]):
            newest[key] = row
    sums: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in newest.values():
        dims = tuple(v for c, v in row.row.items() if isinstance(v, str) and c != "worker")
        measures = tuple(
            v
            for c, v in row.row.items()
            if not isinstance(v, str) and c not in ("window_start", "version", "active_users")
        )
        window: tuple[Any, ...] = (row.table, row.row["window_start"], *dims)
        before = sums.get(window)
        sums[window] = measures if before is None else tuple(map(add, before, measures))
    return sums


def version(row: RollupRow) -> int:
    value = row.row["version"]
    assert isinstance(value, int)
    return value


def add(a: Any, b: Any) -> Any:
    if isinstance(a, list):
        return [x + y for x, y in zip(a, b, strict=True)]
    assert isinstance(a, int | Decimal)
    return a + b


class Worker:
    """One worker process: a pipeline, the partitions it holds, its clock (event time)."""

    def __init__(self, query: Query, held: Sequence[int]) -> None:
        self.query = query
        self.pipeline = Pipeline(Totals())
        self.held = tuple(held)
        self.rows: list[RollupRow] = []  # every row it emitted, stored or not

    def count(self, events: Sequence[tuple[Topic, dict[str, Any]]]) -> list[RollupRow]:
        """Count the events of its partitions (their raw rows are stored by whoever read
        them); return the rows of the windows that closed, not stored yet."""
        mine = [(t, e) for t, e in events if counting_partition(t, e) in self.held]
        rows = count(self.pipeline, mine)
        self.rows += rows
        return rows

    def marks(self) -> list[Mark]:
        return marks_for(self.pipeline.windows.newest_closed(), self.held)

    def close_and_store(self, now_ms: int) -> None:
        """A timer tick that completes: rows, then marks."""
        rows = self.pipeline.close_windows(now_ms)
        self.rows += rows
        store_rollups(self.query, rows)
        store_marks(self.query, self.marks())

    def assign(self, partitions: Sequence[int], clock_now_ms: int) -> Rebuilt:
        """A rebalance gives it ``partitions``: rebuild, adopt, hold them."""
        emitted = self.pipeline.emitted_through
        live = {p: emitted for p in self.held} if self.held else {}
        rebuilt = rebuild(
            self.query,
            database=DB,
            partitions=partitions,
            partition_count=PARTITIONS,
            new_pipeline=lambda: Pipeline(Totals()),
            clock_kind="event",
            clock_now_ms=clock_now_ms,
            live_emitted=live,
            wall_now_s=WALL_S,
        )
        self.pipeline.adopt(
            rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms
        )
        self.held = tuple(partitions)
        return rebuilt


def split(
    events: Sequence[tuple[Topic, dict[str, Any]]], at_ms: int
) -> tuple[list[tuple[Topic, dict[str, Any]]], list[tuple[Topic, dict[str, Any]]]]:
    return [i for i in events if i[1]["ts"] < at_ms], [i for i in events if i[1]["ts"] >= at_ms]


def reference_rows(seed: int) -> list[RollupRow]:
    reference = Pipeline(Totals())
    rows = count(reference, generated_stream(seed))
    return rows + reference.close_windows(T0 + 60 * MIN)


END = T0 + 60 * MIN


def b_dies_a_takes_over(
    query: Query, seed: int, b_dies_s: int, a_takes_over_s: int, b_stores: str = "all"
) -> list[RollupRow]:
    """``a`` holds 0, 1 and ``b`` 2, 3; both count and store (raw rows, closings); ``b``
    dies at ``T0 + b_dies_s`` in the middle of its last closing — ``b_stores``: ``all``
    (rows and marks stored), ``rows`` (rows, no marks), ``one table`` (one table's rows);
    ``a`` counts alone until ``T0 + a_takes_over_s`` (ahead of or behind ``b``), is then
    given every partition, and counts the rest. Returns every row stored."""
    events = generated_stream(seed)
    stop_a, stop_b = T0 + a_takes_over_s * 1000, T0 + b_dies_s * 1000
    a, b = Worker(query, (0, 1)), Worker(query, (2, 3))
    b_before, _ = split(events, stop_b)
    a_before, _ = split(events, stop_a)
    store(query, [i for i in b_before if counting_partition(*i) in b.held])
    store(query, [i for i in a_before if counting_partition(*i) in a.held])
    stored = a.count(a_before)
    store_rollups(query, stored)
    store_marks(query, a.marks())
    b_rows = b.count(b_before)
    last = b.pipeline.emitted_through
    if b_stores == "all":
        store_rollups(query, b_rows)
        store_marks(query, b.marks())
    else:  # died after the rows of its last closing (or one table of them), before marks
        earlier = [r for r in b_rows if r.row["window_start"] != last // 1000]
        died_in = [r for r in b_rows if r.row["window_start"] == last // 1000]
        if b_stores == "one table":
            died_in = [r for r in died_in if r.table == died_in[0].table]
        store_rollups(query, earlier + died_in)
        store_marks(query, marks_for(last - MIN, b.held))
        b_rows = earlier + died_in
    stored += b_rows

    a.assign(range(PARTITIONS), stop_a)
    _, a_rest = split(events, stop_a)
    _, b_rest = split(events, stop_b)
    rest = [i for i in a_rest if counting_partition(*i) in (0, 1)]
    rest += [i for i in b_rest if counting_partition(*i) in (2, 3)]  # b's unread backlog
    rest.sort(key=lambda item: item[1]["ts"])
    store(query, [i for i in rest if counting_partition(*i) in (2, 3)])
    store(query, [i for i in rest if counting_partition(*i) in (0, 1)])
    stored += a.count(rest) + a.pipeline.close_windows(END)
    return stored


@pytest.mark.parametrize(
    ("seed", "b_dies_s", "a_takes_over_s"),
    [
        pytest.param(11, 240, 310, id="survivor ahead"),
        pytest.param(12, 100, 200, id="the dead worker closed no window"),
        pytest.param(13, 300, 230, id="survivor behind the dead worker"),
        pytest.param(14, 250, 250, id="same clocks"),
    ],
)
@pytest.mark.parametrize("b_stores", ["all", "rows", "one table"])
def test_rollups_after_a_takeover_equal_one_worker(
    query: Query, seed: int, b_dies_s: int, a_takes_over_s: int, b_stores: str
) -> None:
    """Including a worker killed between its last closing's rows and its marks (before: that
    window counted 1.5x, the 'killed' failure of the two-worker fault test)."""
    got = b_dies_a_takes_over(query, seed, b_dies_s, a_takes_over_s, b_stores)
    assert stored_sums(got) == stored_sums(reference_rows(seed))


def test_rows_named_by_process_count_a_window_emitted_again_twice(query: Query) -> None:
    """The property above is not vacuous: with rows named by process (as before), the
    window the dead worker stored without its marks is emitted again next to its rows."""
    got = b_dies_a_takes_over(query, 11, 240, 310, b_stores="rows")
    by_process = [
        RollupRow(r.table, {**r.row, "worker": f"{r.row['worker']}@{r.row['version']}"})
        for r in got
    ]
    assert stored_sums(by_process) != stored_sums(reference_rows(11))


@pytest.mark.parametrize("old_rows_land", ["before", "after"])
def test_a_closing_in_flight_during_a_rebalance(query: Query, old_rows_land: str) -> None:
    """``a`` holds every partition; ``b`` joins. ``a``'s last closing is still being stored
    when ``b`` plans 2, 3 from the marks: ``b`` emits that window of 2, 3 again. Whether
    ``a``'s rows land before or after ``b``'s, the rollups equal one worker (before: the
    window of 2, 3 counted twice)."""
    events = generated_stream(16)
    joined = T0 + 270_000
    a = Worker(query, range(PARTITIONS))
    before, after = split(events, joined)
    store(query, before)
    rows = a.count(before)
    last = a.pipeline.emitted_through
    in_flight = [r for r in rows if r.row["window_start"] == last // 1000]
    stored = [r for r in rows if r.row["window_start"] != last // 1000]
    store_rollups(query, stored)
    store_marks(query, marks_for(last - MIN, range(PARTITIONS)))
    if old_rows_land == "before":
        store_rollups(query, in_flight)
        stored += in_flight

    b = Worker(query, ())
    b.assign((2, 3), joined)
    b_rows = b.count(after) + b.pipeline.close_windows(END)
    a.assign((0, 1), joined)  # its live pipeline closed the last window itself
    a_rows = a.count(after) + a.pipeline.close_windows(END)
    if old_rows_land == "after":
        stored += b_rows + in_flight  # stored later, with the older version: b's win
        stored += a_rows
    else:
        stored += b_rows + a_rows
    assert {(r.row["worker"]) for r in b_rows} <= {"p2", "p3"}
    assert stored_sums(stored) == stored_sums(reference_rows(16))


def test_a_rolling_restart_moves_partitions_away_and_back(query: Query) -> None:
    """``b`` (2, 3) stops gracefully (everything stored, marks included); ``a`` takes every
    partition, counts, closes windows; ``b`` starts again and is given 2, 3 back: it starts
    each after ``a``'s marks, and nothing is missing or doubled."""
    events = generated_stream(17)
    stopped, back = T0 + 150_000, T0 + 330_000
    a, b = Worker(query, (0, 1)), Worker(query, (2, 3))
    first, rest = split(events, stopped)
    store(query, first)
    for w in (a, b):
        w.count(first)
        w.close_and_store(stopped)
    stored = a.rows + b.rows

    a.assign(range(PARTITIONS), stopped)
    middle, last = split(rest, back)
    store(query, middle)
    a_rows = a.count(middle)
    store_rollups(query, a_rows)
    store_marks(query, a.marks())
    stored += a_rows

    b2 = Worker(query, ())
    b2.assign((2, 3), back)
    a.assign((0, 1), back)
    store(query, last)
    stored += b2.count(last) + b2.pipeline.close_windows(END)
    stored += a.count(last) + a.pipeline.close_windows(END)
    assert stored_sums(stored) == stored_sums(reference_rows(17))


def test_orders_stored_while_a_worker_rebuilds_are_counted_once(query: Query) -> None:
    """``a`` holds every partition; ``b`` joins and is given 2, 3. ``a`` finishes its own
    rebuild first and reads on: it stores orders of b's sessions while b is still reading
    ClickHouse, after b's replay read. b must count them when orders_by_session delivers
    them (before: they were in b's skip-once set of stored orders, read after the replay,
    and were skipped uncounted — the rolling restart's missing orders in the minute of the
    restart, 4,923 of 5,000)."""
    events = generated_stream(18)
    joined = T0 + 240_000
    before, after = split(events, joined)
    store(query, before)
    a = Worker(query, range(PARTITIONS))
    stored = a.count(before)
    store_rollups(query, stored)
    store_marks(query, a.marks())
    racing = [i for i in after if i[0] == "orders" and counting_partition(*i) in (2, 3)][:12]
    assert len(racing) >= 5

    def racing_query(sql: str) -> Sequence[Sequence[Any]]:
        rows = query(sql)
        if "orders_raw" in sql and "ORDER BY ts_ms" in sql and not racing_stored:
            store(query, racing)  # a's inserter, right after b's replay read
            racing_stored.append(True)
        return rows

    racing_stored: list[bool] = []
    b = Worker(racing_query, ())
    rebuilt = b.assign((2, 3), joined)
    assert racing_stored
    assert not {e["event_id"] for _, e in racing} & rebuilt.counted_before
    a.assign((0, 1), joined)
    store(query, [i for i in after if i not in racing])
    stored += b.count(after) + b.pipeline.close_windows(END)
    stored += a.count(after) + a.pipeline.close_windows(END)
    assert stored_sums(stored) == stored_sums(reference_rows(18))


# ------------------------------------------------------------------ Recovery.on_assigned


class StoredClosings:
    """A ``store_closed`` that records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[RollupRow], list[Mark]]] = []

    async def __call__(self, rows: list[RollupRow], marks: list[Mark]) -> None:
        self.calls.append((rows, marks))


def recovery_for(
    pipeline: Pipeline, make_query: Callable[[], tuple[Query, Callable[[], None]]]
) -> tuple[Recovery, StoredClosings]:
    stored = StoredClosings()
    clock = EventClock()
    clock.observe(T0 + 310_000)
    recovery = Recovery(
        pipeline,
        clock,
        new_pipeline=lambda: Pipeline(Totals()),
        make_query=make_query,
        database=DB,
        partition_count=PARTITIONS,
        clock_kind="event",
        store_closed=stored,
        retry_for_s=0,
    )
    return recovery, stored


def test_on_assigned_rebuilds_moved_partitions_from_their_marks(query: Query) -> None:
    """``b`` (2, 3) emitted up to T0 + 2 min and died; ``a`` (0, 1) is ahead: assigned
    every partition, its rebuilt state holds 2 and 3 from their marks on, and its next
    closing emits the windows ``b`` left, under p2 and p3, before anything is read."""
    events = generated_stream(11)
    before, _ = split(events, T0 + 240_000)
    store(query, before)
    store_marks(query, marks_for(T0 + 2 * MIN, (2, 3)) + marks_for(T0 + 3 * MIN, (0, 1)))
    a = Pipeline(Totals())
    recovery, stored = recovery_for(a, lambda: (query, lambda: None))
    recovery.held = (0, 1)

    offsets = asyncio.run(recovery.on_assigned([3, 2, 1, 0]))

    assert recovery.held == (0, 1, 2, 3)
    assert offsets  # every stored partition resumes after its newest stored offset
    assert not stored.calls  # nothing is stored by the rebuild itself
    rows = a.close_windows(T0 + 20 * MIN)
    windows = {(r.row["worker"], r.row["window_start"]) for r in rows}
    # 0 and 1 are emitted through T0 + 3 min and the stored events end before T0 + 4 min
    assert {w for w, _ in windows} == {"p2", "p3"}
    assert {s for _, s in windows} == {(T0 + 3 * MIN) // 1000}


def test_on_assigned_that_cannot_rebuild_starts_the_partitions_over() -> None:
    """ClickHouse unreachable: counting goes on from an empty state — the open windows,
    which may hold partitions given away, are dropped."""
    live = Pipeline(Totals())
    live.process("tickets", [make_event("tickets", ts=T0 + 1)], T0)

    def unreachable() -> tuple[Query, Callable[[], None]]:
        raise NetworkError("Connection refused")

    recovery, stored = recovery_for(live, unreachable)
    recovery.totals = totals = Totals()
    assert asyncio.run(recovery.on_assigned([0, 1])) == {}
    assert recovery.held == (0, 1)
    assert live.close_windows(T0 + 60 * MIN) == []
    assert not stored.calls
    assert totals.get("salewatch_rebuild_failures_total", ("clickhouse_unreachable",)) == 1


@pytest.mark.parametrize(
    "bug",
    [
        pytest.param(KeyError("a bug"), id="python-error"),
        pytest.param(ServerException("Syntax error", code=62), id="query-clickhouse-refuses"),
        pytest.param(ServerException("Unknown table", code=60), id="schema-not-migrated"),
    ],
)
def test_on_assigned_does_not_swallow_a_programming_error(bug: Exception) -> None:
    """Only ClickHouse trouble is survived; a bug propagates (the worker stops), not
    counted as a failed rebuild."""

    def broken() -> tuple[Query, Callable[[], None]]:
        raise bug

    recovery, _ = recovery_for(Pipeline(Totals()), broken)
    recovery.totals = totals = Totals()
    with pytest.raises(type(bug)):
        asyncio.run(recovery.on_assigned([0, 1]))
    assert totals.total("salewatch_rebuild_failures_total") == 0


def test_on_assigned_cancelled_adopts_nothing_and_stops_its_rebuild(query: Query) -> None:
    """A rebalance revokes the assignment while its rebuild runs (the reader cancels the
    adoption): the live state stays as it was and the rebuild's thread stops at its next
    query instead of counting on for nobody."""
    store(query, generated_stream(12))
    asked: list[str] = []
    first_query = threading.Event()
    release = threading.Event()

    def slow(sql: str) -> Sequence[Sequence[Any]]:
        asked.append(sql)
        first_query.set()
        release.wait(10)  # ClickHouse slow: the rebuild is still in its first query
        return query(sql)

    live = Pipeline(Totals())
    recovery, stored = recovery_for(live, lambda: (slow, lambda: None))
    recovery.held = (0, 1)

    async def scenario() -> None:
        task = asyncio.create_task(recovery.on_assigned([0, 1, 2, 3]))
        await asyncio.to_thread(first_query.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    asyncio.run(scenario())  # returns once the executor's threads ended
    assert len(asked) == 1, "the abandoned rebuild asked nothing after its first query"
    assert recovery.held == (0, 1)
    assert recovery.pipeline is live and not stored.calls


def test_rebuild_abandoned_before_a_query_raises_and_reads_nothing(query: Query) -> None:
    asked: list[str] = []

    def recording(sql: str) -> Sequence[Sequence[Any]]:
        asked.append(sql)
        return query(sql)

    with pytest.raises(RebuildAbandoned):
        rebuild(
            recording,
            database=DB,
            partitions=[0, 1],
            partition_count=PARTITIONS,
            new_pipeline=lambda: Pipeline(Totals()),
            clock_kind="event",
            clock_now_ms=T0 + 310_000,
            live_emitted={},
            wall_now_s=T0 / 1000,
            abandoned=lambda: len(asked) >= 2,
        )
    assert len(asked) == 2


def test_on_assigned_drops_the_live_state_before_its_rebuild_reads(query: Query) -> None:
    """The state a rebuild replaces is dropped when it starts: the old and the rebuilt
    state never sit in memory side by side (the soak's RSS rose ~400 MiB at a rebuild of
    every partition). What stays: the totals and the newest emitted window."""
    live = Pipeline(totals := Totals())
    live.process("tickets", [make_event("tickets", ts=T0 + 1)], T0)
    old_windows, old_sessions = live.windows, live.sessions
    live.emitted_through = T0 - MIN
    held_while_reading: list[bool] = []

    def probing(sql: str) -> Sequence[Sequence[Any]]:
        held_while_reading.append(live.windows is old_windows or live.sessions is old_sessions)
        return query(sql)

    recovery, _ = recovery_for(live, lambda: (probing, lambda: None))
    asyncio.run(recovery.on_assigned([0, 1]))
    assert held_while_reading and not any(held_while_reading)
    assert live.emitted_through == T0 - MIN
    assert live.totals is totals
