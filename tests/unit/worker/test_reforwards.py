"""Orders forwarded twice from one source record (``streams.worker.reforwards``), and the
chain's forward of orders with their source positions (``BatchProcessor(forward=...)``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.counting.dedupe import RecentIds
from streams.counting.pipeline import Pipeline
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.ingest import BatchProcessor, InMessage
from streams.worker.reforwards import forwarded_again, source_header, source_of
from tests.unit.events_factory import NOW_MS, make_event
from tests.unit.test_bench_ingest import Capture

P0_O7 = [source_header(0, 7)]
P1_O7 = [source_header(1, 7)]
P0_O8 = [source_header(0, 8)]

# (id, records read in order as (headers, event_id), which of them are skipped)
READS: list[tuple[str, list[tuple[list[tuple[str, bytes]], str]], list[bool]]] = [
    ("one forward", [(P0_O7, "e1")], [False]),
    ("forwarded again from the same record", [(P0_O7, "e1"), (P0_O7, "e1")], [False, True]),
    ("a third copy too", [(P0_O7, "e1"), (P0_O7, "e1"), (P0_O7, "e1")], [False, True, True]),
    # a producer's duplicate: another source record with the same event id
    ("same id, another offset", [(P0_O7, "e1"), (P0_O8, "e1")], [False, False]),
    ("same id and offset, another partition", [(P0_O7, "e1"), (P1_O7, "e1")], [False, False]),
    # one source message holding several orders
    ("two orders of one message", [(P0_O7, "e1"), (P0_O7, "e2")], [False, False]),
    ("no header: never skipped", [([], "e1"), ([], "e1")], [False, False]),
    ("other headers only", [([("trace", b"x")], "e1"), ([("trace", b"x")], "e1")], [False, False]),
]


@pytest.mark.parametrize(
    ("reads", "skipped"), [pytest.param(r, s, id=name) for name, r, s in READS]
)
def test_second_copy_of_a_source_record_is_skipped(
    reads: list[tuple[list[tuple[str, bytes]], str]], skipped: list[bool]
) -> None:
    memory = RecentIds()
    assert [forwarded_again(memory, headers, event_id) for headers, event_id in reads] == skipped


def test_memory_is_bounded_by_capacity() -> None:
    memory = RecentIds(capacity=2)
    for offset in range(3):
        assert not forwarded_again(memory, [source_header(0, offset)], "e")
    # the oldest pair is forgotten: its copy is no longer recognised
    assert not forwarded_again(memory, [source_header(0, 0)], "e")
    assert forwarded_again(memory, [source_header(0, 2)], "e")


def test_a_rebuilt_state_forgets_what_the_replaced_one_read() -> None:
    # a first copy counted into a state that a rebuild replaced is not in the rebuilt one
    # (unstored): read again, it must be counted again, not skipped as a forward again
    pipeline = Pipeline(Totals())
    assert not forwarded_again(pipeline.forwarded, P0_O7, "e1")
    assert forwarded_again(pipeline.forwarded, P0_O7, "e1")
    pipeline.adopt(Pipeline(Totals()))
    assert not forwarded_again(pipeline.forwarded, P0_O7, "e1")


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ([], None),
        ([("trace", b"1")], None),
        ([("trace", b"1"), source_header(3, 42)], b"3:42"),
    ],
)
def test_source_of(headers: list[tuple[str, bytes]], want: bytes | None) -> None:
    assert source_of(headers) == want


def test_chain_forwards_valid_orders_with_their_partition_and_offset() -> None:
    forwarded: list[tuple[int, list[dict[str, Any]], list[int]]] = []

    async def forward(runs: list[tuple[int, list[dict[str, Any]], list[int]]]) -> None:
        forwarded.extend(runs)

    capture = Capture()
    processor = BatchProcessor(
        Settings.model_validate({}),
        Totals(),
        capture,
        capture.send_dead_letters,
        forward=forward,
        clock=lambda: NOW_MS / 1000,
    )

    def order(event_id: str) -> dict[str, Any]:
        return make_event("orders", event_id=event_id)

    batch = [
        InMessage(orjson.dumps(order("a")), b"k", 0, 10),
        InMessage(b"{", b"k", 0, 11),  # dead-lettered: not forwarded
        InMessage(orjson.dumps([order("b"), order("c")]), b"k", 0, 12),  # one message, two
        InMessage(orjson.dumps(order("d")), b"k", 2, 5),
    ]
    asyncio.run(processor.prepare("orders", batch))
    got = [(p, [e["event_id"] for e in events], offsets) for p, events, offsets in forwarded]
    assert got == [(0, ["a", "b", "c"], [10, 12, 12]), (2, ["d"], [5])]
    assert capture.counted == []  # forwarded, not counted here
    assert len(capture.dead) == 1


def test_a_batch_is_counted_or_forwarded_not_both() -> None:
    capture = Capture()
    with pytest.raises(ValueError, match="not both"):
        BatchProcessor(
            Settings.model_validate({}),
            Totals(),
            capture,
            capture.send_dead_letters,
            count=capture.count,
            forward=lambda runs: asyncio.sleep(0),
        )
