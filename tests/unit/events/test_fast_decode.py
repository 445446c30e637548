"""The msgspec fast path (``valid_events``) against the reference decoder (issue 18).

``valid_events`` may answer None ("not proven") for anything, but when it answers it must
give exactly the events of ``decode_message`` (which then rejects nothing): the same keys,
values *and value types* (``5`` is not ``5.0``, ``True`` is not ``1``). Together with
``decode_message`` (unchanged, the reference) the worker then accepts and rejects exactly
what it did, with the same reasons. The old orjson fast path, ``valid_events_reference``,
is the second reference: on the contract's ordinary events (no unknown fields, integers
within int64) both must prove them, so that the fast path is actually taken.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.events.contract import FIELDS, ITEM_FIELDS, TOPICS, Topic
from streams.events.decode import (
    Limits,
    decode_message,
    valid_events,
    valid_events_reference,
)
from tests.unit.events_factory import NOW_MS, make_event

LIMITS = Limits()
ITEM = {"item_id": "i", "category": "c", "quantity": 1, "price": 1}


def _exactly(a: Any, b: Any) -> bool:
    """Equal values of equal JSON types (dict == hides 1 == 1.0 == True)."""
    option = orjson.OPT_SORT_KEYS
    return bool(a == b) and orjson.dumps(a, option=option) == orjson.dumps(b, option=option)


def check(raw: bytes | None, topic: Topic) -> list[dict[str, Any]] | None:
    """Assert the fast path agrees with the references on ``raw``; return its answer."""
    fast = valid_events(raw, topic, NOW_MS, LIMITS)
    decoded = decode_message(raw, topic, NOW_MS, LIMITS)
    if fast is not None:
        assert not decoded.rejected, [r.reason for r in decoded.rejected]
        assert _exactly(fast, decoded.events)
        assert all(type(e) is dict for e in fast)
    reference = valid_events_reference(raw, topic, NOW_MS, LIMITS)
    if reference is not None:
        assert _exactly(reference, decoded.events)
    return fast


def _raw(body: object) -> bytes:
    return orjson.dumps(body)


# (topic, message, proven by the fast path): every field's type and bounds, absent, null
CASES: list[Any] = [
    *[pytest.param(t, _raw(make_event(t)), True, id=f"{t} valid") for t in TOPICS],
    *[pytest.param(t, _raw([make_event(t)] * 3), True, id=f"{t} array") for t in TOPICS],
    pytest.param("clicks", _raw([make_event("clicks")] * 200), True, id="array of 200"),
    # over MAX_EVENT_BYTES: each element's size must be checked (decode_message)
    pytest.param("clicks", _raw([make_event("clicks")] * 1000), False, id="array of 1000"),
    pytest.param("clicks", _raw([make_event("clicks")] * 1001), False, id="array of 1001"),
    pytest.param("clicks", b"[]", False, id="empty array"),
    pytest.param("clicks", b"[[]]", False, id="nested array"),
    pytest.param("clicks", b"", False, id="empty value"),
    pytest.param("clicks", None, False, id="tombstone"),
    pytest.param("clicks", b"null", False, id="json null"),
    pytest.param("clicks", b"42", False, id="not an object"),
    pytest.param("clicks", b'{"event_id": ', False, id="malformed"),
    pytest.param("clicks", b"\xef\xbb\xbf" + _raw(make_event("clicks")), False, id="BOM"),
    pytest.param("clicks", _raw(make_event("clicks")) + b" \n", True, id="trailing space"),
    pytest.param("clicks", _raw(make_event("clicks")) + b"x", False, id="trailing garbage"),
    pytest.param("clicks", _raw(make_event("clicks", extra=1)), False, id="unknown field"),
    pytest.param("clicks", _raw(make_event("clicks", item_id=None)), False, id="null optional"),
    pytest.param("clicks", _raw(make_event("clicks", load_ms=True)), False, id="bool for int"),
    pytest.param("clicks", _raw(make_event("clicks", load_ms=1.0)), False, id="float for int"),
    pytest.param("clicks", _raw(make_event("clicks", load_ms=600_000)), True, id="timing max"),
    pytest.param("clicks", _raw(make_event("clicks", load_ms=600_001)), False, id="timing >max"),
    pytest.param("clicks", _raw(make_event("clicks", load_ms=-1)), False, id="timing <0"),
    pytest.param("clicks", _raw(make_event("clicks", cls=0)), True, id="int for number"),
    pytest.param("clicks", _raw(make_event("clicks", cls=-0.0)), True, id="-0.0 number"),
    pytest.param("clicks", _raw(make_event("clicks", cls=100.0)), True, id="number max"),
    pytest.param("clicks", _raw(make_event("clicks", cls=100.5)), False, id="number >max"),
    pytest.param("clicks", _raw(make_event("clicks", cls=101)), False, id="int number >max"),
    pytest.param("clicks", _raw(make_event("clicks", event_type="buy")), False, id="bad type"),
    pytest.param("clicks", _raw(make_event("clicks", schema_version=2)), False, id="version"),
    pytest.param("clicks", _raw(make_event("clicks", ts=NOW_MS + 24 * 3600_000)), True, id="ts+"),
    pytest.param(
        "clicks", _raw(make_event("clicks", ts=NOW_MS + 24 * 3600_000 + 1)), False, id="future"
    ),
    pytest.param(
        "clicks", _raw(make_event("clicks", ts=NOW_MS - 30 * 86400_000)), True, id="ts oldest"
    ),
    pytest.param(
        "clicks", _raw(make_event("clicks", ts=NOW_MS - 30 * 86400_000 - 1)), False, id="old"
    ),
    pytest.param(
        "clicks",
        _raw([make_event("clicks"), make_event("clicks", ts=NOW_MS + 10**11)]),
        False,
        id="array with a future event",
    ),
    pytest.param("clicks", _raw(make_event("clicks", user_id="é" * 64)), True, id="64 chars"),
    pytest.param("clicks", _raw(make_event("clicks", user_id="é" * 65)), False, id="65 chars"),
    pytest.param("clicks", _raw(make_event("clicks", user_id="😀" * 64)), True, id="64 astral"),
    pytest.param("clicks", b'{"user_id": "\\ud800"}', False, id="lone surrogate"),
    pytest.param("clicks", b'{"user_id": "\xff"}', False, id="invalid utf-8"),
    pytest.param("orders", _raw(make_event("orders", amount=0)), True, id="amount int 0"),
    pytest.param("orders", _raw(make_event("orders", amount=2**63 - 1)), True, id="int64 max"),
    # orjson: an int (u64) the reference accepts; msgspec's bounds stop at int64: not proven
    pytest.param("orders", _raw(make_event("orders", amount=2**63)), False, id="above int64"),
    pytest.param("orders", b'{"amount": 1e400}', False, id="infinite float"),
    pytest.param("orders", _raw(make_event("orders", currency="CNYY")), False, id="currency"),
    pytest.param("orders", _raw(make_event("orders", items=[])), True, id="no items"),
    pytest.param("orders", _raw(make_event("orders", items=[1])), False, id="item not object"),
    pytest.param(
        "orders",
        _raw(make_event("orders", items=[{"item_id": "i", "category": "c", "quantity": 0}])),
        False,
        id="item incomplete",
    ),
    pytest.param(
        "orders",
        _raw(make_event("orders", items=[ITEM] * 1000)),
        True,
        id="1000 items",
    ),
    pytest.param(
        "orders",
        _raw(make_event("orders", items=[ITEM] * 1001)),
        False,
        id="1001 items",
    ),
    pytest.param("orders", _raw(make_event("orders", pad="a" * 70_000)), False, id="too large"),
    pytest.param("tickets", _raw(make_event("tickets", order_id=None)), False, id="null order"),
    pytest.param("clicks", _raw(make_event("carts")), False, id="cart on clicks"),
]


@pytest.mark.parametrize(("topic", "raw", "proven"), CASES)
def test_fast_path_table(topic: Topic, raw: bytes | None, proven: bool) -> None:
    assert (check(raw, topic) is not None) == proven


def test_duplicate_keys_take_the_last_value_like_orjson() -> None:
    event = make_event("clicks")
    body = _raw(event)[:-1] + b',"load_ms":5,"load_ms":7}'
    fast = check(body, "clicks")
    assert fast is not None and fast[0]["load_ms"] == 7
    # an invalid first value is not proven (the reference accepts: the last one wins)
    body = _raw(event)[:-1] + b',"load_ms":null,"load_ms":7}'
    assert check(body, "clicks") is None
    assert decode_message(body, "clicks", NOW_MS, LIMITS).events[0]["load_ms"] == 7


# hypothesis: every field of every topic replaced, dropped or added, values of every JSON
# type near every bound; messages alone or in arrays
_edge_values = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1,
        -0.0,
        0.5,
        1.0,
        2,
        100,
        100.0,
        101,
        600_000,
        600_001,
        2**53 + 1,
        2**63 - 1,
        2**63,
        2**64 - 1,
        -(2**63),
        NOW_MS,
        NOW_MS + 24 * 3600_000,
        NOW_MS + 24 * 3600_000 + 1,
        NOW_MS - 30 * 86400_000 - 1,
        float(NOW_MS),
        "",
        "CNY",
        "CNYY",
        "x" * 64,
        "é" * 65,
        "x" * 128,
        "😀" * 129,
        "page_view",
        "click",
        "order_created",
        "ticket_opened",
        "add_to_cart",
        [],
        [1],
        {},
        [{"item_id": "i", "category": "c", "quantity": 1, "price": 1}],
        [{"item_id": "i", "category": "c", "quantity": 1, "price": 1.5, "x": 1}],
        [{"item_id": "i", "category": "c", "quantity": 1.0, "price": 1}],
    ]
)
_values = _edge_values | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70)
_names = sorted({s.name for t in TOPICS for s in FIELDS[t]} | {s.name for s in ITEM_FIELDS})


@st.composite
def events(draw: st.DrawFn, topic: Topic) -> dict[str, Any]:
    event = make_event(draw(st.sampled_from(TOPICS)) if draw(st.booleans()) else topic)
    for name in draw(st.lists(st.sampled_from([*_names, "extra"]), max_size=3)):
        if draw(st.integers(0, 3)) == 0:
            event.pop(name, None)
        else:
            event[name] = draw(_values)
    return event


@st.composite
def messages(draw: st.DrawFn) -> tuple[Topic, bytes]:
    topic = draw(st.sampled_from(TOPICS))
    body: Any = draw(st.lists(events(topic), min_size=1, max_size=4))
    if draw(st.booleans()):
        body = body[0]
    # the standard library writes any integer (orjson: 64 bits) and Infinity (not JSON)
    return topic, json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(message=messages())
def test_fast_path_agrees_with_the_reference(message: tuple[Topic, bytes]) -> None:
    topic, raw = message
    fast = check(raw, topic)
    reference = valid_events_reference(raw, topic, NOW_MS, LIMITS)
    if fast is not None:
        assert reference is not None
    elif reference is not None:
        # not proven by msgspec but valid: only its documented narrower corners
        assert _outside_fast_path(reference, topic), raw


def _outside_fast_path(events: list[dict[str, Any]], topic: Topic) -> bool:
    """Valid events msgspec does not prove: unknown fields, integers beyond int64."""
    names = {s.name for s in FIELDS[topic]}
    item_names = {s.name for s in ITEM_FIELDS}
    for event in events:
        if set(event) - names:
            return True
        values = list(event.values())
        for item in event.get("items") or []:
            if set(item) - item_names:
                return True
            values += item.values()
        if any(type(v) is int and not -(2**63) <= v < 2**63 for v in values):
            return True
    return False


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200), topic=st.sampled_from(TOPICS))
def test_random_bytes(raw: bytes, topic: Topic) -> None:
    check(raw, topic)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(message=messages(), cut=st.integers(1, 30), junk=st.binary(min_size=1, max_size=3))
def test_truncated_and_spliced_messages(
    message: tuple[Topic, bytes], cut: int, junk: bytes
) -> None:
    topic, raw = message
    check(raw[:-cut], topic)
    middle = len(raw) // 2
    check(raw[:middle] + junk + raw[middle:], topic)


def test_floats_parse_to_the_same_double() -> None:
    for value in (0.1, 1e-320, 5e-324, 1.7976931348623157e308, 99.99, 1 / 3, math.pi):
        raw = orjson.dumps(make_event("carts", price=value))
        fast = check(raw, "carts")
        assert fast is not None and fast[0]["price"] == value
    raw = orjson.dumps(make_event("carts"))[:-1] + b',"price":1.000000000000000000001e1}'
    fast = check(raw, "carts")
    assert fast is not None and fast[0]["price"] == orjson.loads(raw)["price"]
