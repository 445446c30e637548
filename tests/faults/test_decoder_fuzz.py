"""Fuzz ``streams.events.decode.decode_message``: it never raises, and every input is accounted
for (its valid events plus its rejections cover the message: one rejection for a whole bad
message, or one outcome per element of an array). Both worker shortcuts, the msgspec
``valid_events`` and the orjson ``valid_events_reference``, give exactly its events (same
values of the same JSON types) whenever they answer."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.events.contract import MAX_BATCH_EVENTS, TOPICS
from streams.events.decode import (
    REJECT_REASONS,
    Limits,
    decode_message,
    valid_events,
    valid_events_reference,
)
from tests.unit.events_factory import NOW_MS, make_event

pytestmark = pytest.mark.integration  # the fault suite; needs no service

LIMITS = Limits()
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, object]:
    topic = draw(st.sampled_from(TOPICS))
    event = make_event(topic)
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(
                json_values | st.sampled_from([float("nan"), float("inf"), -1, 0, 2**70])
            )
    return event


def _check(raw: bytes | None, topic: str) -> None:
    decoded = decode_message(raw, topic, NOW_MS, LIMITS)  # type: ignore[arg-type]
    assert all(r.reason in REJECT_REASONS for r in decoded.rejected)
    try:
        parsed = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and 0 < len(parsed) <= MAX_BATCH_EVENTS:
        assert len(decoded.events) + len(decoded.rejected) == len(parsed)
    else:
        assert len(decoded.events) + len(decoded.rejected) == 1
    for shortcut in (valid_events, valid_events_reference):
        fast = shortcut(raw, topic, NOW_MS, LIMITS)  # type: ignore[arg-type]
        if fast is not None:
            assert not decoded.rejected
            assert fast == decoded.events
            sort = orjson.OPT_SORT_KEYS  # == says 1 == 1.0 == True; the JSON does not
            assert orjson.dumps(fast, option=sort) == orjson.dumps(decoded.events, option=sort)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=300), topic=st.sampled_from(TOPICS))
def test_random_bytes_never_raise(raw: bytes, topic: str) -> None:
    _check(raw, topic)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    raw=st.none() | st.just(b"") | st.binary(max_size=4),
    topic=st.sampled_from(TOPICS),
)
def test_null_empty_and_tiny_values_never_raise(raw: bytes | None, topic: str) -> None:
    """Kafka-level shapes: a tombstone (None), an empty value, a few bytes."""
    _check(raw, topic)
    decoded = decode_message(raw, topic, NOW_MS, LIMITS)  # type: ignore[arg-type]
    if not raw:
        assert [r.reason for r in decoded.rejected] == [
            "null_value" if raw is None else "empty_value"
        ]


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values, topic=st.sampled_from(TOPICS))
def test_random_json_never_raises(value: object, topic: str) -> None:
    _check(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS) if _dumpable(value) else b"{", topic)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    events=st.lists(mutated_events(), min_size=1, max_size=5),
    topic=st.sampled_from(TOPICS),
    as_array=st.booleans(),
    cut=st.integers(min_value=0, max_value=40),
)
def test_mutated_events_never_raise(
    events: list[dict[str, object]], topic: str, as_array: bool, cut: int
) -> None:
    body = events if as_array else events[0]
    raw = orjson.dumps(body) if _dumpable(body) else b"[1"
    _check(raw, topic)
    _check(raw[: max(len(raw) - cut, 0)], topic)  # truncated


def _dumpable(value: object) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        return True
    except orjson.JSONEncodeError:
        return False
