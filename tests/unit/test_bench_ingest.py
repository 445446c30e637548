"""The chain's fast path (issue 8) gives what the general decoder gives, batch by batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from streams.clickhouse.raw_rows import raw_row
from streams.events.contract import Topic
from streams.events.decode import decode_message
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.ingest import BatchProcessor, InMessage, limits_from
from tests.unit.events_factory import NOW_MS, make_event


class Capture:
    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.dead: list[tuple[bytes | None, bytes]] = []
        self.counted: list[dict[str, Any]] = []
        self.partitions: list[int] = []

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        self.rows.extend(rows)

    async def send_dead_letters(self, items: list[tuple[bytes | None, bytes]]) -> None:
        self.dead.extend(items)

    async def count(self, topic: Topic, runs: list[tuple[int, list[dict[str, Any]]]]) -> None:
        for partition, events in runs:
            self.counted.extend(events)
            self.partitions.extend([partition] * len(events))


def messages() -> list[InMessage]:
    values = [
        orjson.dumps(make_event("clicks", event_id="a")),
        orjson.dumps([make_event("clicks", event_id=f"b{i}", ts=NOW_MS - i) for i in range(3)]),
        orjson.dumps([make_event("clicks", event_id="c1"), make_event("clicks", ts="bad")]),
        b'{"truncated": ',
        orjson.dumps(make_event("clicks", event_id="d", ts=NOW_MS - 250)),
        orjson.dumps(make_event("clicks", event_id="e", event_type="teleport")),
    ]
    # partitions 1, 1, 2, 2, 1, 3: runs of one partition, one partition seen twice
    partitions = (1, 1, 2, 2, 1, 3)
    return [InMessage(v, b"k", partitions[offset], offset) for offset, v in enumerate(values)]


def test_handle_stores_counts_and_dead_letters_what_decode_message_says() -> None:
    settings = Settings.model_validate({})
    capture = Capture()
    totals = Totals()
    processor = BatchProcessor(
        settings,
        totals,
        capture,
        capture.send_dead_letters,
        count=capture.count,
        clock=lambda: NOW_MS / 1000,
    )
    result = asyncio.run(processor.handle("clicks", messages()))

    limits = limits_from(settings)
    events, rows, reasons = [], [], Counter[str]()
    partitions: list[int] = []
    for msg in messages():
        decoded = decode_message(msg.value, "clicks", NOW_MS, limits)
        events += decoded.events
        partitions += [msg.partition] * len(decoded.events)
        rows += [
            raw_row("clicks", e, msg.partition, msg.offset, NOW_MS // 1000) for e in decoded.events
        ]
        reasons.update(r.reason for r in decoded.rejected)
    assert capture.counted == events and capture.rows == rows
    assert capture.partitions == partitions  # each event counted under its own partition
    assert (result.valid, result.invalid) == (len(events), sum(reasons.values()))
    assert len(capture.dead) == sum(reasons.values())
    assert totals.get("salewatch_events_received_total", ("clicks",)) == len(events) + 3
    for reason, n in reasons.items():
        assert totals.get("salewatch_events_invalid_total", ("clicks", reason)) == n
    assert totals.get("salewatch_events_valid_total", ("clicks", "page_view")) == len(events)
    newest = max(e["ts"] for e in events) / 1000
    assert totals.get("salewatch_last_event_timestamp_seconds", ("clicks",)) == newest
    lag = totals.histograms["salewatch_event_lag_seconds"][("clicks",)]
    assert lag.count == len(events)
    expected_sum = sum(max(NOW_MS - e["ts"], 0) // 100 / 10 for e in events)
    assert abs(lag.sum - expected_sum) < 1e-9
