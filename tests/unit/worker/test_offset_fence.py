"""streams.worker.offset_fence: is the record at the newest stored offset the one ClickHouse holds?

The judgement is pure (cases below); reading the record back runs against the real broker
in tests/faults/test_broker.py (a restarted tansu: another incarnation of every partition).
"""

from __future__ import annotations

import pytest

from streams.worker.offset_fence import StoredPosition, Verdict, event_ids, judge

STORED = StoredPosition(41, "e-41")


@pytest.mark.parametrize(
    ("offset", "value", "verdict"),
    [
        pytest.param(41, b'{"event_id": "e-41", "ts": 1}', "same", id="the stored record"),
        pytest.param(41, b'[{"event_id": "x"}, {"event_id": "e-41"}]', "same", id="in an array"),
        pytest.param(41, b'{"event_id": "other"}', "event_id_differs", id="another record"),
        pytest.param(41, b'[{"event_id": "a"}, {"event_id": "b"}]', "event_id_differs", id="arr"),
        pytest.param(42, b'{"event_id": "e-41"}', "record_missing", id="offset not in the log"),
        pytest.param(41, None, "unreadable_record", id="tombstone"),
        pytest.param(41, b"", "unreadable_record", id="empty"),
        pytest.param(41, b"\x00\xff not json", "unreadable_record", id="not JSON"),
        pytest.param(41, b'{"event_id": 41}', "unreadable_record", id="id not a string"),
    ],
)
def test_judge(offset: int, value: bytes | None, verdict: Verdict) -> None:
    assert judge(STORED, offset, value) == verdict


def test_event_ids_of_a_message() -> None:
    assert event_ids(b'[{"event_id": "a"}, 3, {"x": 1}, {"event_id": "b"}]') == {"a", "b"}
    assert event_ids(b'{"event_id": "a"}') == {"a"}
    assert event_ids(b"[]") == frozenset()
