"""streams.source_reader: the decisions that need no broker (seeks, hand-backs, commits).

The reader's whole loop runs against the real broker in tests/integration and tests/faults;
here a recording stand-in for the aiokafka consumer checks where it seeks and what it
commits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.settings import Settings
from streams.source_reader import SourceReader
from streams.totals import Totals

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


SEEK_CASES = [
    # (stored next offset, committed, partition end) -> seek or not
    (100, 80, 500, 100),  # ClickHouse holds more than was committed: skip the stored
    (100, 100, 500, None),  # already there
    (100, 120, 500, None),  # committed further (dead-lettered tail): never backwards
    (100, None, 500, 100),  # new group on the same log
    (100, None, 40, None),  # no commit and a shorter log: recreated topic, read from start
]


@pytest.mark.parametrize(("stored", "committed", "end", "seek"), SEEK_CASES)
def test_seek_past_stored_only_forward_and_only_within_the_log(
    stored: int, committed: int | None, end: int, seek: int | None
) -> None:
    consumer = FakeConsumer({A0}, committed_offsets={A0: committed}, end={A0: end})
    sought = asyncio.run(reader().seek_past_stored(consumer, {A0: stored}))
    assert consumer.seeks == ({A0: seek} if seek is not None else {})
    assert sought == consumer.seeks


def test_commits_only_partitions_still_owned() -> None:
    consumer = FakeConsumer({A0})
    r = reader()
    r.consumer = consumer
    asyncio.run(r.commit({A0: 7, B0: 3}))
    assert consumer.commits == [{A0: 7}]
    asyncio.run(r.commit({B0: 4}))  # nothing owned: no empty commit
    assert consumer.commits == [{A0: 7}]
