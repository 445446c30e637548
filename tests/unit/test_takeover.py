"""Partitions moving between workers (streams.window_emitters, streams.recovery): the plan
per partition, the marks' SQL, and the property that matters — two workers, one dies, the
survivor takes its partitions over, and the rollups summed over workers (ReplacingMergeTree
semantics: a re-emitted row replaces its key) equal one worker that never died.

SQL runs on chdb (current ClickHouse) as in test_recovery; 18.16 runs it in
tests/faults/test_two_workers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver.errors import NetworkError

from streams.clock import EventClock
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import RollupRow
from streams.events import KEY_FIELD, Topic
from streams.recovery import Query, Rebuilt, Recovery, kafka_partition_for, rebuild
from streams.totals import Totals
from streams.window_emitters import (
    COLUMNS,
    TABLE,
    Mark,
    Takeover,
    catch_up_worker,
    newest_marked_sql,
    plan_takeover,
)
from tests.unit.chdb_store import migrated_chdb
from tests.unit.events_factory import make_event
from tests.unit.test_recovery import (
    DB,
    MIN,
    PARTITIONS,
    T0,
    WALL_S,
    chdb_query,
    count,
    generated_stream,
    literal,
    store,
    store_rollups,
)

chdb_session = pytest.importorskip("chdb.session")


# ------------------------------------------------------------------ plan (pure)


@pytest.mark.parametrize(
    ("held", "marked", "replay_from", "want"),
    [
        pytest.param((0, 1), {}, 10 * MIN, Takeover({}, {}), id="no marks: planned as before"),
        pytest.param(
            (0, 1),
            {0: 9 * MIN, 1: 9 * MIN, 2: 6 * MIN, 3: 7 * MIN},
            10 * MIN,
            Takeover({2: 7 * MIN, 3: 8 * MIN}, {}),
            id="moved partitions behind: caught up from their own marks",
        ),
        pytest.param(
            (0, 1),
            {0: 9 * MIN, 2: 11 * MIN, 3: 9 * MIN},
            10 * MIN,
            Takeover({}, {2: 12 * MIN}),
            id="moved partition ahead: its events count only after its mark",
        ),
        pytest.param(
            (0, 1, 2),
            {0: 6 * MIN, 1: 6 * MIN, 2: 6 * MIN, 3: 9 * MIN},
            10 * MIN,
            Takeover({}, {}),
            id="held partitions are never caught up (the live pipeline emits them)",
        ),
        pytest.param(
            (),
            {0: 9 * MIN, 1: 9 * MIN, 2: 9 * MIN, 3: 9 * MIN},
            10 * MIN,
            Takeover({}, {}),
            id="restart: every mark just before replay_from",
        ),
        pytest.param(
            (0, 1),
            {0: 9 * MIN, 1: 9 * MIN},
            10 * MIN,
            Takeover({2: 4 * MIN, 3: 4 * MIN}, {}),
            id="moved partitions never marked: caught up from the horizon",
        ),
    ],
)
def test_plan_takeover(
    held: tuple[int, ...], marked: dict[int, int], replay_from: int, want: Takeover
) -> None:
    got = plan_takeover(
        partitions=range(4),
        held=held,
        newest_marked_ms=marked,
        replay_from=replay_from,
        oldest=4 * MIN,
        size_ms=MIN,
    )
    assert got == want


def test_mark_row_and_catch_up_names() -> None:
    assert Mark(T0, "host:9108", (2, 3)).row(77) == (T0 // 1000, "host:9108", [2, 3], 77)
    names = {catch_up_worker(p) for p in range(12)}
    assert len(names) == 12 and not any(":" in n for n in names)


# ------------------------------------------------------------------ chdb


@pytest.fixture
def query(tmp_path: Path) -> Iterator[Query]:
    with migrated_chdb(tmp_path / "chdb", DB, chdb_query) as q:
        yield q


def store_marks(query: Query, marks: Sequence[Mark], version: int = 1) -> None:
    values = ", ".join("(" + ", ".join(literal(v) for v in m.row(version)) + ")" for m in marks)
    if values:
        query(f"INSERT INTO {DB}.{TABLE} ({', '.join(COLUMNS)}) VALUES {values}")


def test_newest_mark_per_partition_by_any_worker(query: Query) -> None:
    store_marks(
        query,
        [
            Mark(T0, "a", (0, 1)),
            Mark(T0 + MIN, "a", (0, 1)),
            Mark(T0 + 2 * MIN, "b", (2, 3)),
            Mark(T0 + 3 * MIN, "a", (0, 1, 2)),
            Mark(T0 - 90 * MIN, "c", (3,)),  # before the horizon
        ],
    )
    rows = query(newest_marked_sql(DB, T0 - 60 * MIN))
    assert sorted((int(p), int(s) * 1000) for p, s in rows) == [
        (0, T0 + 3 * MIN),
        (1, T0 + 3 * MIN),
        (2, T0 + 3 * MIN),
        (3, T0 + 2 * MIN),
    ]


# ------------------------------------------------------------------ two workers, one dies

A_OWNS, B_OWNS = (0, 1), (2, 3)


def owner_partition(topic: Topic, event: dict[str, Any]) -> int:
    key = event["session_id"] if topic == "orders" else event[KEY_FIELD[topic]]
    return kafka_partition_for(key, PARTITIONS)


def stored_sums(rows: Sequence[RollupRow]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """What a reader of the rollup tables sees: per table, the newest row of each key
    (ReplacingMergeTree ``FINAL``), then its measures summed over workers by window and
    dimensions. ``traffic_1m.active_users`` (distinct per worker) is left out."""
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


@dataclass
class TakeoverRun:
    rows: list[RollupRow]
    catch_up_workers: set[str]
    marks: list[Mark]


def rebuild_for(
    query: Query,
    live: Pipeline,
    partitions: Sequence[int],
    clock_now_ms: int = 0,
    held: Sequence[int] = (),
) -> Rebuilt:
    """Rebuild ``partitions`` from chdb for the live pipeline ``live`` (its worker name and
    the windows it emitted), on the event clock."""
    return rebuild(
        query,
        database=DB,
        worker=live.worker,
        partitions=partitions,
        partition_count=PARTITIONS,
        new_pipeline=lambda: Pipeline(Totals(), worker=live.worker),
        clock_kind="event",
        clock_now_ms=clock_now_ms,
        live_emitted=live.emitted_through,
        wall_now_s=WALL_S,
        held=held,
    )


def two_workers_one_dies(
    query: Query, seed: int, b_dies_s: int, a_takes_over_s: int, with_marks: bool = True
) -> TakeoverRun:
    """Workers ``a`` (partitions 0, 1) and ``b`` (2, 3) count the stream, store their raw
    rows and their closed windows with marks; ``b`` dies at ``T0 + b_dies_s``; ``a``
    counts alone until ``T0 + a_takes_over_s`` (ahead of or behind ``b``), then is assigned
    every partition, rebuilds, stores its catch-up windows and counts the rest."""
    events = generated_stream(seed)
    stop = {"a": T0 + a_takes_over_s * 1000, "b": T0 + b_dies_s * 1000}
    owner = {p: "a" for p in A_OWNS} | {p: "b" for p in B_OWNS}
    before = {
        name: [(t, e) for t, e in events if owner[owner_partition(t, e)] == name and e["ts"] < s]
        for name, s in stop.items()
    }
    rest = [(t, e) for t, e in events if e["ts"] >= stop[owner[owner_partition(t, e)]]]
    rows: list[RollupRow] = []
    marks: list[Mark] = []
    live = {}
    for name, owned in (("a", A_OWNS), ("b", B_OWNS)):
        pipeline = live[name] = Pipeline(Totals(), worker=name)
        emitted = count(pipeline, before[name])
        store(query, before[name])
        store_rollups(query, emitted)
        rows += emitted
        if emitted:
            marks.append(Mark(pipeline.emitted_through, name, owned))
    if with_marks:
        store_marks(query, marks)

    a = live["a"]
    rebuilt = rebuild_for(query, a, range(PARTITIONS), stop["a"], held=A_OWNS)
    store_rollups(query, rebuilt.catch_up_rows)
    store_marks(query, rebuilt.catch_up_marks, version=2)
    rows += rebuilt.catch_up_rows
    a.adopt(rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms)
    rows += count(a, rest)
    rows += a.close_windows(T0 + 60 * MIN)
    return TakeoverRun(
        rows, {str(r.row["worker"]) for r in rebuilt.catch_up_rows}, rebuilt.catch_up_marks
    )


def reference_rows(seed: int) -> list[RollupRow]:
    reference = Pipeline(Totals(), worker="one")
    rows = count(reference, generated_stream(seed))
    return rows + reference.close_windows(T0 + 60 * MIN)


@pytest.mark.parametrize(
    ("seed", "b_dies_s", "a_takes_over_s", "caught_up"),
    [
        pytest.param(11, 240, 310, {"catch-up/p2", "catch-up/p3"}, id="survivor ahead"),
        pytest.param(
            12, 100, 200, {"catch-up/p2", "catch-up/p3"}, id="the dead worker closed no window"
        ),
        pytest.param(13, 300, 230, set(), id="survivor behind the dead worker"),
        pytest.param(14, 250, 250, set(), id="same clocks"),
    ],
)
def test_rollups_after_a_takeover_equal_one_worker(
    query: Query, seed: int, b_dies_s: int, a_takes_over_s: int, caught_up: set[str]
) -> None:
    got = two_workers_one_dies(query, seed, b_dies_s, a_takes_over_s)
    assert got.catch_up_workers == caught_up
    assert stored_sums(got.rows) == stored_sums(reference_rows(seed))


@pytest.mark.parametrize(
    ("seed", "b_dies_s", "a_takes_over_s"),
    [
        pytest.param(11, 240, 310, id="survivor ahead: windows lost"),
        pytest.param(13, 300, 230, id="survivor behind: windows counted twice"),
    ],
)
def test_without_marks_a_takeover_changes_the_numbers(
    query: Query, seed: int, b_dies_s: int, a_takes_over_s: int
) -> None:
    """The property above is not vacuous: without the marks the survivor plans from its
    own windows only, as before window_emitters existed."""
    got = two_workers_one_dies(query, seed, b_dies_s, a_takes_over_s, with_marks=False)
    assert not got.catch_up_workers
    assert stored_sums(got.rows) != stored_sums(reference_rows(seed))


def test_a_catch_up_marks_each_moved_partition_through_the_replayed_windows(
    query: Query,
) -> None:
    got = two_workers_one_dies(query, 11, 240, 310)
    assert [(m.worker, m.partitions) for m in got.marks] == [
        ("catch-up/p2", (2,)),
        ("catch-up/p3", (3,)),
    ]
    rows = query(newest_marked_sql(DB, T0 - 60 * MIN))
    newest = {int(p): int(s) * 1000 for p, s in rows if int(p) in B_OWNS}
    # the next owner of 2 and 3 would start after the catch-up, not after b's last window
    assert newest == {2: got.marks[0].window_start_ms, 3: got.marks[1].window_start_ms}
    assert all(m.window_start_ms > T0 for m in got.marks)


def test_a_restart_emits_again_the_closing_it_died_in(query: Query) -> None:
    """A worker stores a closing's rows table by table, then its mark; it dies after the
    first table of its last closing. Its restart emits that window again, complete."""
    events = generated_stream(15)
    crash = T0 + 300_000
    before = [(t, e) for t, e in events if e["ts"] < crash]
    first = Pipeline(Totals(), worker="w")
    rows = count(first, before)
    last = first.emitted_through
    died_in = [r for r in rows if r.row["window_start"] == last // 1000]
    written = [r for r in rows if r.row["window_start"] != last // 1000]
    written += [r for r in died_in if r.table == died_in[0].table]
    store(query, before)
    store_rollups(query, written)
    store_marks(query, [Mark(last - MIN, "w", tuple(range(PARTITIONS)))])
    assert len(written) < len(rows)

    again = Pipeline(Totals(), worker="w")
    rebuilt = rebuild_for(query, again, range(PARTITIONS))
    assert rebuilt.plan.replay_from == last
    again.adopt(rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms)
    after = count(again, [(t, e) for t, e in events if e["ts"] >= crash])
    after += again.close_windows(T0 + 60 * MIN)
    assert stored_sums(written + after) == stored_sums(reference_rows(15))


def test_a_graceful_scale_out_moves_partitions_without_a_gap_or_a_double(query: Query) -> None:
    """Worker ``a`` counts every partition; ``b`` joins: the group revokes everything and
    gives ``a`` partitions 0, 1 and ``b`` 2, 3 (the window timer is paused in between, so
    ``a`` closes no window holding 2, 3 after its last mark). Both rebuild and go on."""
    events = generated_stream(16)
    joined = T0 + 270_000
    a = Pipeline(Totals(), worker="a")
    before = [(t, e) for t, e in events if e["ts"] < joined]
    rows = count(a, before)
    store(query, before)
    store_rollups(query, rows)
    store_marks(query, [Mark(a.emitted_through, "a", tuple(range(PARTITIONS)))])

    b = Pipeline(Totals(), worker="b")
    for pipeline, owned, held in ((a, A_OWNS, tuple(range(PARTITIONS))), (b, B_OWNS, ())):
        rebuilt = rebuild_for(query, pipeline, owned, joined, held=held)
        assert not rebuilt.catch_up_rows
        pipeline.adopt(rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms)
        rest = [(t, e) for t, e in events if e["ts"] >= joined and owner_partition(t, e) in owned]
        rows += count(pipeline, rest) + pipeline.close_windows(T0 + 60 * MIN)
    assert {r.row["worker"] for r in rows} == {"a", "b"}
    assert stored_sums(rows) == stored_sums(reference_rows(16))


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
        new_pipeline=lambda: Pipeline(Totals(), worker="a"),
        make_query=make_query,
        database=DB,
        worker="a",
        partition_count=PARTITIONS,
        clock_kind="event",
        store_closed=stored,
        retry_for_s=0,
    )
    return recovery, stored


def test_on_assigned_stores_the_catch_up_before_reading_and_holds_the_partitions(
    query: Query,
) -> None:
    events = generated_stream(11)
    b_events = [(t, e) for t, e in events if owner_partition(t, e) in B_OWNS]
    b = Pipeline(Totals(), worker="b")
    b_rows = count(b, [(t, e) for t, e in b_events if e["ts"] < T0 + 240_000])
    store(query, [(t, e) for t, e in events if e["ts"] < T0 + 240_000])
    store_rollups(query, b_rows)
    store_marks(query, [Mark(b.emitted_through, "b", B_OWNS)])
    a = Pipeline(Totals(), worker="a")
    a_rows = count(a, [(t, e) for t, e in events if owner_partition(t, e) in A_OWNS])
    store_marks(query, [Mark(a.emitted_through, "a", A_OWNS)])
    recovery, stored = recovery_for(a, lambda: (query, lambda: None))
    recovery.held = A_OWNS

    offsets = asyncio.run(recovery.on_assigned([3, 2, 1, 0]))

    assert recovery.held == (0, 1, 2, 3)
    assert offsets  # every stored partition resumes after its newest stored offset
    ((rows, marks),) = stored.calls
    assert {m.worker for m in marks} == {"catch-up/p2", "catch-up/p3"}
    assert rows and {r.row["worker"] for r in rows} == {"catch-up/p2", "catch-up/p3"}
    assert a_rows  # a had closed windows of its own beyond b's


def test_on_assigned_that_cannot_rebuild_starts_the_partitions_over() -> None:
    """ClickHouse unreachable: counting goes on from an empty state — the open windows,
    which may hold partitions given away, are dropped, not emitted under the new marks."""
    live = Pipeline(Totals(), worker="a")
    live.process("tickets", [make_event("tickets", ts=T0 + 1)], T0)

    def unreachable() -> tuple[Query, Callable[[], None]]:
        raise NetworkError("Connection refused")

    recovery, stored = recovery_for(live, unreachable)
    assert asyncio.run(recovery.on_assigned([0, 1])) == {}
    assert recovery.held == (0, 1)
    assert live.close_windows(T0 + 60 * MIN) == []
    assert not stored.calls
