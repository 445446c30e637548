"""Read an events file (JSON lines) into routed lines: topic plus event, or a bad message.

Accepted line forms, one JSON value per line (blank lines are skipped):

* ``salewatch simulate --out`` output: the event with a ``"topic"`` field;
* a plain EVENTS.md event without ``"topic"``: the topic is the one whose event types
  contain its ``event_type`` (they are disjoint, ``streams.events.contract.EVENT_TYPES``);
* ``{"topic": T, "raw": "<string>"}``: a message as it was sent to topic T (an invalid
  one, from ``simulate --invalid-rate``); its UTF-8 bytes are decoded like a Kafka message
  value (``streams.events.decode.decode_message``), so it may also hold an array of events.

Anything else (not JSON, not an object, no topic and no known ``event_type``) cannot be
routed to a topic: it is a :class:`Line` with ``topic=None`` and a reject reason, counted
as invalid under topic ``other``. This module only parses; validation is the replay's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

from streams.events.contract import EVENT_TYPES, TOPICS, Topic
from streams.events.decode import RejectReason

TOPIC_FIELD = "topic"
RAW_FIELD = "raw"

TOPIC_OF_EVENT_TYPE: dict[str, Topic] = {
    event_type: topic for topic, types in EVENT_TYPES.items() for event_type in types
}
_TOPICS: frozenset[str] = frozenset(TOPICS)


class Line(NamedTuple):
    """One routed line: ``event`` (a parsed object, not yet validated) or ``raw`` bytes.

    ``topic`` is None when the line cannot be routed; ``reason`` then says why.
    """

    topic: Topic | None
    event: dict[str, Any] | None
    raw: bytes | None = None
    reason: RejectReason | None = None


def route(obj: Any) -> Line:
    """Route one parsed JSON value (see the module docstring for the accepted forms)."""
    if not isinstance(obj, dict):
        return Line(None, None, reason="not_an_object")
    topic = obj.pop(TOPIC_FIELD, None)
    if topic is None:
        event_type = obj.get("event_type")
        topic = TOPIC_OF_EVENT_TYPE.get(event_type) if isinstance(event_type, str) else None
        if topic is None:
            return Line(None, None, reason="unknown_event_type")
        return Line(topic, obj)
    if topic not in _TOPICS:
        return Line(None, None, reason="unknown_event_type")
    raw = obj.get(RAW_FIELD)
    if isinstance(raw, str) and "event_type" not in obj:
        return Line(topic, None, raw.encode("utf-8", "surrogatepass"))
    return Line(topic, obj)


def read_lines(lines: Iterable[bytes]) -> Iterator[Line]:
    """Route every non-blank line, in file order."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for line in lines:
        try:
            obj = loads(line)
        except decode_error:
            if line.strip():
                yield Line(None, None, reason="malformed_json")
            continue
        yield route(obj)
