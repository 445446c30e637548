"""streams.worker.reader: the decisions that need no broker (seeks, hand-backs, commits).

The reader's whole loop runs against the real broker in tests/integration and tests/faults;
here a recording stand-in for the aiokafka consumer checks where it seeks and what it
commits.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.offset_fence import StoredPosition, Verdict
from streams.worker.reader import SourceReader, TaskDied

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


@dataclass
class Record:
    offset: int


@dataclass
class FakeConsumer:
    owned: set[TopicPartition]
    committed_offsets: dict[TopicPartition, int | None] = field(default_factory=dict)
    end: dict[TopicPartition, int] = field(default_factory=dict)
    seeks: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offsets.get(tp)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end.get(tp, 0) for tp in tps}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


async def _no_recovery(partitions: Any) -> dict[Any, int]:
    return {}


def reader() -> SourceReader:
    return SourceReader(Settings(), Totals(), {}, _no_recovery)


HAND_BACK_CASES = [
    # (first offset fetched per partition, seeks made by the rebuild, owned) -> seeks
    ({A0: 10}, {}, {A0}, {A0: 10}),  # back to the first record handed back
    ({A0: 10}, {A0: 25}, {A0}, {A0: 25}),  # the rebuild sought past them: stay there
    ({A0: 30}, {A0: 25}, {A0}, {A0: 30}),  # fetched after the seek: back to them
    ({A0: 10, A1: 5}, {}, {A0}, {A0: 10}),  # A1 moved to another worker: leave it
]


@pytest.mark.parametrize(("fetched", "sought", "owned", "seeks"), HAND_BACK_CASES)
def test_records_fetched_during_a_rebalance_are_read_again_from_the_right_offset(
    fetched: dict[TopicPartition, int],
    sought: dict[TopicPartition, int],
    owned: set[TopicPartition],
    seeks: dict[TopicPartition, int],
) -> None:
    consumer = FakeConsumer(owned)
    r = reader()
    r.sought = sought
    polled = {tp: [Record(first), Record(first + 1)] for tp, first in fetched.items()}
    r.hand_back(consumer, polled)
    assert consumer.seeks == seeks


@dataclass
class FakeFence:
    """Answers as if the record at each stored offset were (or were not) the stored one."""

    verdicts: dict[TopicPartition, Verdict]
    asked: list[set[TopicPartition]] = field(default_factory=list)

    async def verify(
        self, positions: dict[TopicPartition, StoredPosition]
    ) -> dict[TopicPartition, Verdict]:
        self.asked.append(set(positions))
        return {tp: self.verdicts[tp] for tp in positions}


SEEK_CASES = [
    # (stored next offset, committed, fence verdict) -> seek or not, fence asked
    pytest.param(100, 80, "same", 100, True, id="ClickHouse holds more than committed"),
    pytest.param(100, 100, "same", None, False, id="already there: no check"),
    pytest.param(100, 120, "same", None, False, id="committed further: never backwards"),
    pytest.param(100, None, "same", 100, True, id="new group on the same log"),
    pytest.param(100, None, "record_missing", None, True, id="shorter log: read from start"),
    pytest.param(100, None, "event_id_differs", None, True, id="another incarnation"),
    pytest.param(100, 80, "event_id_differs", None, True, id="doubt: from committed"),
    pytest.param(100, 80, "fetch_failed", None, True, id="cannot check: from committed"),
]


@pytest.mark.parametrize(("stored", "committed", "verdict", "seek", "asked"), SEEK_CASES)
def test_seek_past_stored_only_forward_and_only_in_the_same_incarnation(
    stored: int, committed: int | None, verdict: Verdict, seek: int | None, asked: bool
) -> None:
    consumer = FakeConsumer({A0}, committed_offsets={A0: committed})
    fence = FakeFence({A0: verdict})
    totals = Totals()
    r = SourceReader(Settings(), totals, {}, _no_recovery, fence=fence)  # type: ignore[arg-type]
    sought = asyncio.run(r.seek_past_stored(consumer, {A0: StoredPosition(stored - 1, "e")}))
    assert consumer.seeks == ({A0: seek} if seek is not None else {})
    assert sought == consumer.seeks
    assert fence.asked == ([{A0}] if asked else [set()])
    refusals = totals.get("salewatch_offset_fence_refusals_total", ("other", verdict))
    assert refusals == (1 if asked and verdict != "same" else 0)


def test_commits_only_partitions_still_owned() -> None:
    consumer = FakeConsumer({A0})
    r = reader()
    r.consumer = consumer
    asyncio.run(r.commit({A0: 7, B0: 3}))
    assert consumer.commits == [{A0: 7}]
    asyncio.run(r.commit({B0: 4}))  # nothing owned: no empty commit
    assert consumer.commits == [{A0: 7}]


# ------------------------------------------------------------------ a task dies


@dataclass
class KafkaRecord:
    offset: int
    value: bytes = b"{}"
    key: bytes | None = None
    partition: int = 0


@dataclass
class LoopConsumer(FakeConsumer):
    """Enough of aiokafka for :meth:`SourceReader.run`: one partition, endless records."""

    listener: Any = None
    next_offset: int = 0
    stopped: bool = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None:
        await self.listener.on_partitions_assigned(self.owned)

    def paused(self) -> set[TopicPartition]:
        return set()

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[KafkaRecord]]:
        await asyncio.sleep(0)
        records = [KafkaRecord(self.next_offset + i) for i in range(10)]
        self.next_offset += 10
        return {A0: records}

    async def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("dies", ["inserter", "reading"])
def test_run_raises_promptly_when_a_task_dies_while_the_queue_is_full(dies: str) -> None:
    """The inserter raises while the reader waits on a full insert queue: ``run()`` raises
    within a second with that error, instead of waiting on the queue forever. The reading
    loop raising while ClickHouse is down (the inserter stuck): ``run()`` raises at once,
    without the shutdown drain (10 s)."""
    from streams.worker.ingest import BatchResult, PreparedBatch
    from streams.worker.reader import Route

    release = asyncio.Event()

    async def prepare(topic: Any, messages: Any) -> PreparedBatch:
        if dies == "reading" and messages[0].offset >= 10:
            raise ValueError("counting broke")
        return PreparedBatch("carts", [()] * len(messages) * 100, BatchResult(len(messages), 0))

    async def store(topic: Any, rows: Any) -> None:
        if dies == "reading":
            await asyncio.Event().wait()  # ClickHouse down: the queue fills
        await release.wait()
        raise RuntimeError("ClickHouse refused it for good")

    settings = Settings(insert_backlog_max_events=1000, batch_size=10)
    r = SourceReader(settings, Totals(), {"a": Route("carts", prepare, store)}, _no_recovery)
    consumer = LoopConsumer({A0})
    r.make_consumer = lambda: consumer  # type: ignore[assignment,return-value,method-assign]

    async def scenario() -> BaseException:
        task = asyncio.create_task(r.run())
        await asyncio.sleep(0.2)
        assert r.queue.events >= 1000, "the queue is full"
        if dies == "inserter":
            assert not task.done(), "the reader waits on the full queue"
        release.set()
        try:
            await asyncio.wait_for(task, 1.0)
        except Exception as exc:
            return exc
        raise AssertionError("run() returned")

    exc = asyncio.run(scenario())
    assert isinstance(exc, TaskDied)
    if dies == "inserter":
        assert exc.task == "the inserter"
        assert isinstance(exc.__cause__, RuntimeError) and "for good" in str(exc.__cause__)
    else:
        assert exc.task == "the reader" and isinstance(exc.__cause__, ValueError)
    assert consumer.stopped


def test_run_raises_when_a_rebalance_step_fails() -> None:
    """aiokafka swallows what a rebalance listener raises; the reader must not then wait
    for an assignment forever: ``run()`` raises the listener's error."""

    async def rebuild_bug(partitions: Any) -> dict[Any, StoredPosition]:
        raise KeyError("a bug in the rebuild")

    r = SourceReader(Settings(), Totals(), {}, rebuild_bug)

    class SwallowingConsumer(LoopConsumer):
        async def start(self) -> None:  # as aiokafka's coordinator: log and go on
            with contextlib.suppress(Exception):
                await self.listener.on_partitions_assigned(self.owned)

    consumer = SwallowingConsumer({A0})
    r.make_consumer = lambda: consumer  # type: ignore[assignment,return-value,method-assign]

    async def scenario() -> BaseException:
        try:
            await asyncio.wait_for(r.run(), 2.0)
        except Exception as exc:
            return exc
        raise AssertionError("run() returned")

    exc = asyncio.run(scenario())
    assert isinstance(exc, TaskDied) and exc.task == "the rebalance listener"
    assert isinstance(exc.__cause__, KeyError)


# ------------------------------------------------------------------ assignment adoption


class BlockedRebuild:
    """An ``on_assigned`` that waits until released (a long rebuild) and records calls,
    cancellations and returns."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: list[list[int]] = []
        self.cancelled = 0
        self.finished = 0

    async def __call__(self, partitions: Any) -> dict[Any, StoredPosition]:
        self.calls.append(list(partitions))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return {}


def test_assigned_listener_returns_while_the_rebuild_runs() -> None:
    """aiokafka sends no heartbeat until the listener returns: a rebuild inside it longer
    than the session timeout got the member dropped (the soak's rebalance storm). The
    listener returns at once; reading and the window timer wait for the adoption."""
    rebuild = BlockedRebuild()
    r = SourceReader(Settings(), Totals(), {}, rebuild)
    r.consumer = FakeConsumer({A0})

    async def scenario() -> None:
        await asyncio.wait_for(r.partitions_assigned({A0}), 1.0)  # never released yet
        await asyncio.sleep(0.01)
        assert rebuild.calls == [[0]] and not r.assignment_ready.is_set()
        rebuild.release.set()
        await asyncio.wait_for(r.assignment_ready.wait(), 1.0)
        assert r.generation == 1

    asyncio.run(scenario())


def test_a_revocation_abandons_the_adoption_in_flight() -> None:
    """Revoked while its rebuild runs: nothing of it is adopted (no generation, reading does
    not start), the next assignment is adopted."""
    rebuild = BlockedRebuild()
    r = SourceReader(Settings(), Totals(), {}, rebuild)
    r.consumer = FakeConsumer({A0, A1})

    async def scenario() -> None:
        await r.partitions_assigned({A0})
        await asyncio.sleep(0.01)
        await asyncio.wait_for(r.partitions_revoked({A0}), 1.0)
        assert rebuild.cancelled == 1 and r.generation == 0
        assert not r.assignment_ready.is_set()
        await r.partitions_assigned({A0, A1})
        rebuild.release.set()
        await asyncio.wait_for(r.assignment_ready.wait(), 1.0)

    asyncio.run(scenario())
    assert rebuild.calls == [[0], [0, 1]] and rebuild.finished == 1 and r.generation == 1
