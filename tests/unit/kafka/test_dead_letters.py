"""The dead-letter envelope keeps the original bytes (bounded) and says why and where from."""

from __future__ import annotations

import orjson
import pytest

from streams.events.decode import Rejected
from streams.kafka.dead_letters import MAX_ORIGINAL_BYTES, dead_letter_value, original_bytes


@pytest.mark.parametrize(
    ("original", "truncated"),
    [
        pytest.param(b'{"bad": json', False, id="utf8 text"),
        pytest.param(bytes(range(256)), False, id="binary"),
        pytest.param("订单".encode(), False, id="unicode"),
        pytest.param(b"a" * (MAX_ORIGINAL_BYTES + 10), True, id="oversized is cut"),
    ],
)
def test_envelope_round_trips_original(original: bytes, truncated: bool) -> None:
    value = dead_letter_value(Rejected("malformed_json", "x", original), "orders", 3, 17, 1000)
    envelope = orjson.loads(value)
    assert envelope["reason"] == "malformed_json"
    assert (envelope["source_topic"], envelope["partition"], envelope["offset"]) == (
        "orders",
        3,
        17,
    )
    assert envelope["original_size"] == len(original)
    assert envelope["truncated"] is truncated
    assert original_bytes(envelope) == original[:MAX_ORIGINAL_BYTES]
