"""Kafka-level record shapes through the chain (``BatchProcessor.prepare``): null and empty
values, null and non-UTF-8 keys. Headers and record timestamps never reach the chain (the
reader passes value, key, partition and offset only; ``tests/faults/test_poison_input.py``
sends them through a real broker)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.ingest import BatchProcessor, InMessage
from tests.unit.events_factory import NOW_MS, make_event
from tests.unit.test_bench_ingest import Capture

VALID = orjson.dumps(make_event("clicks", event_id="ok"))

# (id, value, key, stored events, dead letter reason or None)
SHAPES: list[tuple[str, bytes | None, bytes | None, int, str | None]] = [
    ("tombstone: null value", None, b"s-1", 0, "null_value"),
    ("tombstone with a null key", None, None, 0, "null_value"),
    ("empty value", b"", b"s-1", 0, "empty_value"),
    ("null key, valid value", VALID, None, 1, None),
    ("non-UTF-8 key, valid value", VALID, b"\xff\xfe\x00k", 1, None),
    ("non-UTF-8 key, bad value", b"{", b"\xff\xfe", 0, "malformed_json"),
    ("1 MiB key, valid value", VALID, b"k" * (1 << 20), 1, None),
]


@pytest.mark.parametrize(
    ("value", "key", "stored", "reason"),
    [pytest.param(v, k, n, r, id=name) for name, v, k, n, r in SHAPES],
)
def test_record_shape_is_stored_or_dead_lettered_never_raises(
    value: bytes | None, key: bytes | None, stored: int, reason: str | None
) -> None:
    capture = Capture()
    totals = Totals()
    processor = BatchProcessor(
        Settings.model_validate({}),
        totals,
        capture,
        capture.send_dead_letters,
        count=capture.count,
        clock=lambda: NOW_MS / 1000,
    )
    # between two valid messages: the shape costs none of its neighbours
    batch = [
        InMessage(VALID, b"a", 0, 0),
        InMessage(value, key, 0, 1),
        InMessage(VALID, b"b", 0, 2),
    ]
    result = asyncio.run(processor.handle("clicks", batch))
    assert result.valid == stored + 2 and len(capture.rows) == stored + 2
    if reason is None:
        assert capture.dead == []
        return
    [(dead_key, envelope)] = capture.dead
    assert dead_key == key  # the source key, byte for byte: a replay re-partitions the same
    letter = orjson.loads(envelope)
    assert (letter["reason"], letter["partition"], letter["offset"]) == (reason, 0, 1)
    assert totals.get("salewatch_events_invalid_total", ("clicks", reason)) == 1
