"""Every Kafka codec is installed and decodes (EVENTS.md: producers may compress with any).

A missing codec library does not fail at import: aiokafka raises ``UnsupportedCodecError``
on the first fetch of such a batch (the worker crashed on it, issue 20). These tests fail
instead, wherever salewatch is installed without its codec extras (pyproject.toml:
``aiokafka[snappy,lz4,zstd]``, ``kafka-python[snappy,lz4,zstd]``).
"""

from __future__ import annotations

from collections.abc import Callable

import aiokafka.codec
import kafka.codec
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from streams.settings import Settings

# Kafka's codec ids in a record batch's attributes (KIP-110 added zstd = 4)
CODECS: dict[str, int] = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_readers_client_has_every_codec(codec: str) -> None:
    has: Callable[[], bool] = getattr(aiokafka.codec, f"has_{codec}")
    assert has(), f"aiokafka cannot decode {codec}: install aiokafka[snappy,lz4,zstd]"


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_simulators_client_has_every_codec(codec: str) -> None:
    has: Callable[[], bool] = getattr(kafka.codec, f"has_{codec}")
    assert has(), f"kafka-python cannot compress {codec}: install kafka-python[{codec}]"


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_compressed_batch_round_trips_through_the_fetch_parser(codec: str) -> None:
    """The bytes a producer would send, parsed by what aiokafka's fetcher runs."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODECS[codec],
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    values = [b'{"event_id": "e-%d"}' % i * 20 for i in range(50)]
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=None, key=None, value=value, headers=[])
    raw = bytes(builder.build())
    assert len(raw) < sum(map(len, values))  # really compressed
    batch = MemoryRecords(raw).next_batch()
    assert batch.compression_type == CODECS[codec]
    assert [r.value for r in batch] == values


@pytest.mark.parametrize(
    ("setting", "client_value"),
    [("none", None), *((c, c) for c in sorted(CODECS))],
)
def test_compression_setting_maps_to_the_clients_value(setting: str, client_value: str) -> None:
    settings = Settings.model_validate({"kafka_compression": setting})
    assert settings.kafka_compression_type == client_value


def test_compression_default_is_lz4() -> None:
    assert Settings.model_validate({}).kafka_compression == "lz4"
