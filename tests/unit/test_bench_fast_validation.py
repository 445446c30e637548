"""The compiled fast check (issue 8 speed work) accepts exactly what the validator accepts.

``streams.events.decode.validate_event`` trusts ``fast_check`` when it says "valid" and asks the
field-by-field ``validate_fields`` otherwise; so for every JSON value the two must agree.
Cases: every field of every topic (and of an order item) set to values on both sides of
its type and bounds, absent, or null; plus random combinations (hypothesis).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events.contract import FIELDS, ITEM_FIELDS, TOPICS, Topic
from streams.events.decode import Invalid, Limits, fast_check, validate_fields
from tests.unit.events_factory import NOW_MS, make_event

LIMITS = Limits()
DROP = object()

VALUES: list[Any] = [
    DROP,
    None,
    True,
    False,
    -1,
    0,
    1,
    2,
    600_000,
    600_001,
    2**40,
    -0.5,
    0.0,
    1.5,
    math.inf,
    math.nan,
    "",
    "CNY",
    "CNYY",
    "x" * 64,
    "x" * 65,
    "x" * 128,
    "x" * 129,
    "page_view",
    "order_created",
    [],
    [{"item_id": "i", "category": "c", "quantity": 1, "price": 1.0}],
    [1],
    {"a": 1},
    NOW_MS,
    NOW_MS + 25 * 3600 * 1000,
    NOW_MS - 31 * 24 * 3600 * 1000,
]


def slow_accepts(obj: Any, topic: Topic) -> bool:
    try:
        validate_fields(obj, topic, NOW_MS, LIMITS)
    except Invalid:
        return False
    return True


def fast_accepts(obj: Any, topic: Topic) -> bool:
    return fast_check(topic)(obj, NOW_MS, LIMITS.max_future_ms, LIMITS.max_age_ms)


def with_value(topic: Topic, name: str, value: Any, in_item: bool = False) -> dict[str, Any]:
    event = copy.deepcopy(make_event(topic))  # make_event shares its items list
    target = event["items"][0] if in_item else event
    if value is DROP:
        target.pop(name, None)
    else:
        target[name] = value
    return event


CASES = [
    pytest.param(topic, spec.name, value, False, id=f"{topic}.{spec.name}={value!r:.20}")
    for topic in TOPICS
    for spec in FIELDS[topic]
    for value in VALUES
] + [
    pytest.param("orders", spec.name, value, True, id=f"orders.items[0].{spec.name}={value!r:.20}")
    for spec in ITEM_FIELDS
    for value in VALUES
]


@pytest.mark.parametrize(("topic", "name", "value", "in_item"), CASES)
def test_fast_check_agrees_with_the_validator(
    topic: Topic, name: str, value: Any, in_item: bool
) -> None:
    event = with_value(topic, name, value, in_item)
    # as given (other callers may pass NaN), and as the worker sees it: through JSON
    for obj in (event, orjson.loads(orjson.dumps(event))):
        assert fast_accepts(obj, topic) == slow_accepts(obj, topic)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=70),
)


@settings(max_examples=300, deadline=None)
@given(
    topic=st.sampled_from(TOPICS),
    changes=st.dictionaries(
        st.sampled_from(sorted({s.name for t in TOPICS for s in FIELDS[t]})),
        st.one_of(json_scalars, st.lists(json_scalars, max_size=2)),
        max_size=4,
    ),
    drops=st.sets(st.sampled_from(sorted({s.name for t in TOPICS for s in FIELDS[t]}))),
)
def test_fast_check_agrees_on_random_events(
    topic: Topic, changes: dict[str, Any], drops: set[str]
) -> None:
    event = {**make_event(topic), **changes}
    for name in drops:
        event.pop(name, None)
    obj = orjson.loads(orjson.dumps(event))
    assert fast_accepts(obj, topic) == slow_accepts(obj, topic)


@pytest.mark.parametrize("value", [False, 5, "x", [1]], ids=repr)
def test_items_on_a_topic_without_items_is_an_ignored_extra_field(value: Any) -> None:
    # found by the random test above: this used to raise TypeError out of decode_message
    event = {**make_event("clicks"), "items": value}
    assert slow_accepts(event, "clicks") and fast_accepts(event, "clicks")


def _array(topic: Topic, n: int, **overrides: Any) -> bytes:
    return orjson.dumps([make_event(topic, event_id=f"e-{i}", **overrides) for i in range(n)])


MESSAGES: list[Any] = [
    pytest.param("clicks", orjson.dumps(make_event("clicks")), True, id="one valid event"),
    pytest.param("orders", orjson.dumps(make_event("orders")), True, id="one valid order"),
    pytest.param("clicks", _array("clicks", 3), True, id="array of valid events"),
    pytest.param("clicks", _array("clicks", 1001), False, id="array too long"),
    pytest.param("clicks", b"[]", False, id="empty array"),
    pytest.param("clicks", _array("clicks", 2, ts="x"), False, id="array with bad events"),
    pytest.param("clicks", b'{"event_id": ', False, id="malformed"),
    pytest.param("clicks", b"42", False, id="not an object"),
    pytest.param("orders", orjson.dumps(make_event("orders", amount=-1)), False, id="invalid"),
    pytest.param(
        "orders", orjson.dumps(make_event("orders", pad="a" * 70_000)), False, id="too large"
    ),
]


@pytest.mark.parametrize(("topic", "raw", "proven"), MESSAGES)
def test_valid_events_is_decode_message_when_it_answers(
    topic: Topic, raw: bytes, proven: bool
) -> None:
    from streams.events.decode import decode_message, valid_events

    fast = valid_events(raw, topic, NOW_MS, LIMITS)
    assert (fast is not None) == proven
    if fast is not None:
        decoded = decode_message(raw, topic, NOW_MS, LIMITS)
        assert fast == decoded.events and not decoded.rejected
