"""Locating an unreadable record batch from what aiokafka's own fetch parser raises.

Each case is a fetch response body (a good batch at offsets 0-2, then a bad one at 3-5) run
through ``aiokafka.consumer.fetcher.PartitionRecords``, the iterator ``getmany`` drains: the
exception must name partition 2, offset 3, the batch end 6 and the reason. This pins the
traceback walk of ``streams.worker.unreadable.locate`` to the installed aiokafka.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import aiokafka.codec
import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import RecordTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c

from streams.worker.unreadable import Unreadable, locate, skip_letter

CRC_AT, ATTRIBUTES_AT = 17, 21  # record batch v2 header


def batch(base_offset: int, codec: int) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(3):
        builder.append(i, timestamp=None, key=None, value=b'{"e": %d}' % i * 30, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    return raw


def fix_crc(raw: bytearray) -> bytearray:
    struct.pack_into(">I", raw, CRC_AT, calc_crc32c(bytes(raw[ATTRIBUTES_AT:])))
    return raw


def unknown_codec() -> bytearray:
    raw = batch(3, 0)
    raw[ATTRIBUTES_AT + 1] = (raw[ATTRIBUTES_AT + 1] & ~7) | 5
    return fix_crc(raw)


def flipped(codec: int, crc: bool) -> bytearray:
    raw = batch(3, codec)
    raw[-5] ^= 0xFF
    return fix_crc(raw) if crc else raw


BAD: list[tuple[str, Callable[[], bytearray], str]] = [
    ("codec id 5", unknown_codec, "unknown_codec"),
    ("bad CRC", lambda: flipped(1, crc=False), "corrupt_batch"),
    ("gzip data corrupt, CRC right", lambda: flipped(1, crc=True), "corrupt_batch"),
    ("zstd data corrupt, CRC right", lambda: flipped(4, crc=True), "corrupt_batch"),
    ("lz4 data corrupt, CRC right", lambda: flipped(3, crc=True), "corrupt_batch"),
]


def drain(raw: bytes) -> tuple[list[int], BaseException]:
    records = PartitionRecords(
        TopicPartition("clicks", 2), MemoryRecords(raw), [], 0, None, None, True, READ_UNCOMMITTED
    )
    offsets: list[int] = []
    try:
        offsets.extend(r.offset for r in records)
    except Exception as exc:
        return offsets, exc
    raise AssertionError(f"read {offsets} without an error")


@pytest.mark.parametrize(("make", "reason"), [pytest.param(m, r, id=n) for n, m, r in BAD])
def test_unreadable_batch_is_located(make: Callable[[], bytearray], reason: str) -> None:
    offsets, exc = drain(bytes(batch(0, 0) + make()))
    assert offsets == [0, 1, 2]  # the good batch before it was readable
    found = locate(exc)
    assert found is not None
    assert (found.topic, found.partition, found.offset, found.next_offset, found.reason) == (
        "clicks", 2, 3, 6, reason,
    )  # fmt: skip
    assert found.skip_to == 6


def test_missing_codec_library_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    snappy = batch(3, 2)  # built while the library is there
    monkeypatch.setattr(aiokafka.codec, "has_snappy", lambda: False)
    _, exc = drain(bytes(batch(0, 0) + snappy))
    found = locate(exc)
    assert found is not None and (found.offset, found.reason) == (3, "missing_codec")


def test_record_too_large_names_its_partition_and_offset() -> None:
    exc = RecordTooLargeError("too large %s=%s %s", TopicPartition("orders", 1), 77, 4096)
    found = locate(exc)
    assert found == Unreadable("orders", 1, 77, None, "record_too_large", found.detail)
    assert found.skip_to == 78


@pytest.mark.parametrize(
    "exc", [ValueError("not about a batch"), RuntimeError("boom"), KeyError("x")]
)
def test_other_errors_are_not_located(exc: Exception) -> None:
    assert locate(exc) is None


def test_skip_letter_records_the_skipped_range() -> None:
    import orjson

    found = Unreadable("clicks", 2, 3, 6, "corrupt_batch", "bad CRC")
    letter = orjson.loads(skip_letter(found, 1000))
    assert (letter["reason"], letter["source_topic"], letter["partition"]) == (
        "skipped_unreadable_batch", "clicks", 2,
    )  # fmt: skip
    assert (letter["offset"], letter["skipped_to"], letter["original"]) == (3, 6, "")
