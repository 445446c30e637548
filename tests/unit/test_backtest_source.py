"""Routing lines of an events file to topics (simulate --out lines, plain events, raw)."""

from __future__ import annotations

import orjson
import pytest

from streams.backtest.source import Line, read_lines
from tests.unit.events_factory import make_event


def _line(obj: object) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    ("line", "topic", "has_event", "raw", "reason"),
    [
        pytest.param(
            _line({"topic": "carts", **make_event("carts")}),
            "carts",
            True,
            None,
            None,
            id="simulate-out-line",
        ),
        pytest.param(
            _line(make_event("orders")), "orders", True, None, None, id="no-topic-inferred"
        ),
        pytest.param(
            _line(make_event("tickets", event_type="ticket_resolved")),
            "tickets",
            True,
            None,
            None,
            id="inferred-from-any-type-of-topic",
        ),
        pytest.param(
            _line({"topic": "clicks", "raw": '{"ts": "x"'}),
            "clicks",
            False,
            b'{"ts": "x"',
            None,
            id="raw-message",
        ),
        pytest.param(
            _line({**make_event("clicks"), "event_type": "teleported"}),
            None,
            False,
            None,
            "unknown_event_type",
            id="no-topic-unknown-type",
        ),
        pytest.param(
            _line({"topic": "payments", **make_event("orders")}),
            None,
            False,
            None,
            "unknown_event_type",
            id="unknown-topic",
        ),
        pytest.param(b"[1, 2]", None, False, None, "not_an_object", id="not-an-object"),
        pytest.param(b'{"topic": "clicks", ', None, False, None, "malformed_json", id="truncated"),
    ],
)
def test_each_line_is_routed(
    line: bytes, topic: str | None, has_event: bool, raw: bytes | None, reason: str | None
) -> None:
    (routed,) = list(read_lines([line]))
    assert routed.topic == topic
    assert (routed.event is not None) == has_event
    assert routed.raw == raw
    assert routed.reason == reason


def test_topic_field_is_removed_from_the_event() -> None:
    (routed,) = list(read_lines([_line({"topic": "clicks", **make_event("clicks")})]))
    assert routed.event == make_event("clicks")


def test_blank_lines_are_skipped_and_order_kept() -> None:
    lines = [
        _line(make_event("clicks", event_id="a")),
        b"\n",
        b"   \n",
        _line(make_event("carts", event_id="b")),
    ]
    routed = list(read_lines(lines))
    assert [(r.topic, r.event and r.event["event_id"]) for r in routed] == [
        ("clicks", "a"),
        ("carts", "b"),
    ]
    assert all(isinstance(r, Line) for r in routed)
