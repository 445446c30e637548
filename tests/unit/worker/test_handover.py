"""streams.worker.handover and the reader's use of it, without a broker.

The round trip through a real broker (a rebalance during a ClickHouse outage, counted once
across both workers) is ``tests/faults/test_clickhouse_down.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from streams.events.contract import Topic
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.handover import Handover, handover_value, latest_handovers
from streams.worker.ingest import BatchProcessor, InMessage, Message, PreparedBatch
from streams.worker.offset_fence import StoredPosition, Verdict
from streams.worker.reader import Route, SourceReader
from tests.unit.events_factory import NOW_MS, make_event
from tests.unit.test_bench_ingest import Capture
from tests.unit.worker.test_reader import FakeConsumer, FakeFence

C0, C1 = TopicPartition("clicks", 0), TopicPartition("clicks", 1)


def record(group: str, *partitions: tuple[TopicPartition, int, str]) -> bytes:
    return handover_value(group, {tp: Handover(o, e) for tp, o, e in partitions}, 1)


LATEST_CASES = [
    pytest.param([], {}, id="no record"),
    pytest.param([record("g", (C0, 9, "e9"))], {C0: Handover(9, "e9")}, id="one"),
    pytest.param(
        [record("g", (C0, 9, "e9"), (C1, 4, "e4")), record("g", (C0, 20, "e20"))],
        {C0: Handover(20, "e20"), C1: Handover(4, "e4")},
        id="the newest per partition",
    ),
    pytest.param([record("other", (C0, 9, "e9"))], {}, id="another group's"),
    pytest.param(
        [
            b"{",
            None,
            b'{"group": "g"}',
            orjson.dumps({"group": "g", "partitions": [[1]]}),
            record("g", (C1, 3, "")),
        ],
        {C1: Handover(3, "")},
        id="malformed records skipped",
    ),
]


@pytest.mark.parametrize(("values", "latest"), LATEST_CASES)
def test_latest_handovers(
    values: list[bytes | None], latest: dict[TopicPartition, Handover]
) -> None:
    assert latest_handovers("g", values) == latest


@dataclass
class KafkaRecord:
    offset: int
    value: bytes | None
    partition: int = 0
    key: bytes | None = None


@dataclass
class RecordingRoute:
    """A route's prepare and recount, recording the offsets each was given, in call order."""

    calls: list[tuple[str, list[int]]] = field(default_factory=list)

    async def prepare(self, topic: Topic, messages: Any) -> PreparedBatch:
        self.calls.append(("prepare", [m.offset for m in messages]))
        return PreparedBatch(topic, [], None)  # type: ignore[arg-type]

    async def recount(self, topic: Topic, messages: Any) -> PreparedBatch:
        self.calls.append(("recount", [m.offset for m in messages]))
        return PreparedBatch(topic, [], None)  # type: ignore[arg-type]


def clicks_value(event_id: str) -> bytes:
    return orjson.dumps(make_event("clicks", event_id=event_id))


def reader_with(route: RecordingRoute) -> SourceReader:
    async def no_recovery(partitions: Any) -> dict[Any, Any]:
        return {}

    routes = {"clicks": Route("clicks", route.prepare, None, route.recount)}
    return SourceReader(Settings(), Totals(), routes, no_recovery)


SPLIT_CASES = [
    # (counted through, offsets fetched) -> calls, handover still pending afterwards
    pytest.param(None, [5, 6], [("prepare", [5, 6])], False, id="no handover"),
    pytest.param(6, [3, 4, 5, 6], [("recount", [3, 4, 5, 6])], False, id="all counted"),
    pytest.param(8, [3, 4], [("recount", [3, 4])], True, id="counted beyond this fetch"),
    pytest.param(4, [3, 4, 5, 6], [("recount", [3, 4]), ("prepare", [5, 6])], False, id="split"),
    pytest.param(2, [3, 4], [("prepare", [3, 4])], False, id="read past it already"),
]


@pytest.mark.parametrize(("through", "offsets", "calls", "pending"), SPLIT_CASES)
def test_a_fetch_is_split_at_the_handed_over_offset(
    through: int | None, offsets: list[int], calls: list[tuple[str, list[int]]], pending: bool
) -> None:
    route = RecordingRoute()
    r = reader_with(route)
    if through is not None:
        r.handed_over = {C0: Handover(through, "x")}
    polled = {C0: [KafkaRecord(o, clicks_value(f"e{o}")) for o in offsets]}
    asyncio.run(r.count_and_queue(polled))  # type: ignore[arg-type]
    assert route.calls == calls  # the counted part first: a partition counts in offset order
    assert (C0 in r.handed_over) == pending


UNSTORED_CASES = [
    # (read to, stored to, inherited handover) -> handover written
    pytest.param(10, None, None, Handover(9, "e9"), id="nothing stored"),
    pytest.param(10, 6, None, Handover(9, "e9"), id="partly stored"),
    pytest.param(10, 10, None, None, id="all stored: nothing to hand over"),
    pytest.param(10, 6, Handover(30, "e30"), Handover(30, "e30"), id="inherited further"),
    pytest.param(10, 6, Handover(4, "e4"), Handover(9, "e9"), id="own count further"),
]


@pytest.mark.parametrize(("read_to", "stored_to", "inherited", "written"), UNSTORED_CASES)
def test_the_handover_names_the_furthest_counted_offset_not_stored(
    read_to: int, stored_to: int | None, inherited: Handover | None, written: Handover | None
) -> None:
    r = reader_with(RecordingRoute())
    r.read_to = (r.generation, {C0: read_to})
    r.last_read = {C0: KafkaRecord(read_to - 1, clicks_value(f"e{read_to - 1}"))}
    if stored_to is not None:
        r.stored_to = {C0: stored_to}
    if inherited is not None:
        r.handed_over = {C0: inherited}
    expected = {C0: written} if written is not None else {}
    assert r.unstored_handovers({C0}) == expected
    assert r.unstored_handovers({C1}) == {}  # outside the scope released


@dataclass
class FakeHandoverLog:
    found: dict[TopicPartition, Handover]
    fails: bool = False

    async def read(self) -> dict[TopicPartition, Handover]:
        if self.fails:
            raise TimeoutError
        return self.found


TAKE_CASES = [
    # (handover, committed offset, fence verdict) -> applied, fence asked
    pytest.param(Handover(50, "e"), 40, "same", True, True, id="reaches the start: applied"),
    pytest.param(Handover(50, "e"), 51, "same", False, False, id="below the start: moot"),
    pytest.param(Handover(50, "e"), None, "same", True, True, id="no committed offset"),
    pytest.param(Handover(50, "e"), 40, "event_id_differs", False, True, id="other incarnation"),
    pytest.param(Handover(50, "e"), 40, "record_missing", False, True, id="shorter log"),
]


@pytest.mark.parametrize(("handed", "committed", "verdict", "applied", "asked"), TAKE_CASES)
def test_a_handover_applies_only_where_reading_starts_and_the_fingerprint_matches(
    handed: Handover, committed: int | None, verdict: Verdict, applied: bool, asked: bool
) -> None:
    r = reader_with(RecordingRoute())
    fence = FakeFence({C0: verdict})
    r.fence = fence  # type: ignore[assignment]
    r.handover = FakeHandoverLog({C0: handed, C1: Handover(7, "e")})  # type: ignore[assignment]
    consumer = FakeConsumer({C0}, committed_offsets={C0: committed})
    taken = asyncio.run(r.take_handovers(consumer, {C0}))  # type: ignore[arg-type]
    assert taken == ({C0: handed} if applied else {})
    assert fence.asked == [{C0} if asked else set()]  # C1 is not assigned: never checked
    outcome = "applied" if applied else "refused"
    assert r.totals.get("salewatch_handovers_total", (outcome,)) == (1 if asked else 0)


def test_an_unreadable_handover_topic_applies_none_and_is_counted() -> None:
    r = reader_with(RecordingRoute())
    r.handover = FakeHandoverLog({}, fails=True)  # type: ignore[assignment]
    assert asyncio.run(r.take_handovers(FakeConsumer({C0}), {C0})) == {}  # type: ignore[arg-type]
    assert r.totals.get("salewatch_handovers_total", ("read_failed",)) == 1


def test_prepare_counted_stores_and_recounts_without_totals_or_dead_letters() -> None:
    capture, recounted = Capture(), Capture()
    totals = Totals()
    processor = BatchProcessor(
        Settings.model_validate({}),
        totals,
        capture,
        capture.send_dead_letters,
        count=capture.count,
        clock=lambda: NOW_MS / 1000,
        recount=recounted.count,
    )
    batch: list[Message] = [
        InMessage(clicks_value("a"), b"k", 0, 0),
        InMessage(b"{", b"k", 0, 1),  # dead-lettered by the previous owner already
        InMessage(clicks_value("b"), b"k", 0, 2),
    ]
    prepared = asyncio.run(processor.prepare_counted("clicks", batch))
    assert len(prepared.rows) == 2  # stored: ClickHouse never had them
    assert [e["event_id"] for e in recounted.counted] == ["a", "b"]
    assert capture.counted == [] and capture.dead == []
    touched = {name for name, series in totals.values.items() if any(series.values())}
    assert touched == {"salewatch_events_handed_over_total"}
    assert totals.get("salewatch_events_handed_over_total", ("clicks",)) == 3


def test_stored_position_of_a_handover_is_its_fingerprint() -> None:
    """The fence checks a handover like a stored offset: the record at ``counted_through``
    must hold ``event_id`` (``streams.worker.offset_fence.judge``)."""
    from streams.worker.offset_fence import judge

    handed = Handover(7, "e7")
    position = StoredPosition(handed.counted_through, handed.event_id)
    assert judge(position, 7, clicks_value("e7")) == "same"
    assert judge(position, 7, clicks_value("other")) == "event_id_differs"
