"""Decode and validate Kafka message values into events (pure functions, no I/O).

Contract: ``decode_message(raw, topic, now_ms, limits)`` never raises. It returns the valid
events of the message and one ``Rejected`` per bad one, with a reason from the closed set
``REJECT_REASONS`` (a Prometheus label) and a human-readable detail. ``raw`` is the Kafka
record value as the client hands it over: ``None`` for a tombstone (reason ``null_value``,
original ``b""``), ``b""`` for an empty value (``empty_value``); neither is an event of the
wire format, and the topics are not compacted, so a foreign producer sending them is a bug
its owner should see on ``dead_letters``. Keys, headers and record timestamps are not read
here: an event's key only partitions it, its time is ``ts``. A message is either one
JSON object or a JSON array of at most ``MAX_BATCH_EVENTS`` objects; each element of an
array is validated on its own, so one bad event does not cost the others.

Speed (issue 8): almost every event is valid, so each topic also has a *fast check*
(:func:`fast_check`), a function compiled once from the same ``FIELDS`` table that answers
only "valid or not proven valid" with straight-line exact-type tests (``type(v) is str``:
what orjson returns). ``validate_event`` and ``decode_message`` run it first and fall back
to the field-by-field validator, which finds the reason, only when it says no. Both paths
accept exactly the same JSON values (``tests/unit/test_bench_fast_validation.py``).

Speed (issue 18): the worker's shortcut :func:`valid_events` decodes and validates a whole
message in one compiled step, with msgspec structs built from the same ``FIELDS`` table
(:data:`FAST_DECODERS`): 1.67 µs per event of the bench's mix instead of orjson + the
fast check's 2.60 (``bench/RESULTS.md``, issue 18 round 2b). It only ever answers "valid"
(the events, as the same dicts orjson would give) or "not proven" (None): msgspec rejects
more than the contract does (unknown fields, integers orjson reads as floats or beyond
int64, ...), and everything it rejects goes to the reference,
:func:`valid_events_reference` / :func:`decode_message`, which finds the reason. The two
answer alike for every message (``tests/unit/events/test_fast_decode.py``,
``tests/faults/test_decoder_fuzz.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import orjson

from streams.events.contract import (
    EVENT_TYPES,
    FIELDS,
    ITEM_FIELDS,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    TOPICS,
    FieldSpec,
    Topic,
)

RejectReason = Literal[
    "null_value",
    "empty_value",
    "malformed_json",
    "too_large",
    "not_an_object",
    "empty_batch",
    "batch_too_long",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "too_long",
    "unknown_event_type",
    "ts_in_future",
    "ts_too_old",
]
REJECT_REASONS: frozenset[str] = frozenset(RejectReason.__args__)  # type: ignore[attr-defined]

MAX_ORDER_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """Event-time bounds: events outside [now - max_age_ms, now + max_future_ms] are bad."""

    max_future_ms: int = 24 * 3600 * 1000
    max_age_ms: int = 30 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Rejected:
    """One bad event (or a whole bad message) with why it was refused and its bytes."""

    reason: RejectReason
    detail: str
    original: bytes


@dataclass(slots=True)
class Decoded:
    """What one Kafka message held: valid events and rejected ones, in message order."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


class Invalid(Exception):
    """Raised inside the validator; carries the reject reason and detail."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RejectReason = reason
        self.detail = detail


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "array": (list,),
}


def _has_json_type(value: Any, kind: str) -> bool:
    # bool is a subclass of int in Python but not a JSON number
    return not isinstance(value, bool) and isinstance(value, _JSON_TYPES[kind])


def _check_field(obj: dict[str, Any], spec: FieldSpec) -> None:
    value = obj.get(spec.name)
    if value is None:
        if spec.name in obj:
            raise Invalid("wrong_type", f"{spec.name}: null")
        if spec.required:
            raise Invalid("missing_field", f"missing {spec.name}")
        return
    if not _has_json_type(value, spec.kind):
        got = type(value).__name__
        raise Invalid("wrong_type", f"{spec.name}: expected {spec.kind}, got {got}")
    if spec.kind == "string":
        if spec.max_length is not None and len(value) > spec.max_length:
            raise Invalid("too_long", f"{spec.name}: longer than {spec.max_length}")
        return
    if spec.kind == "number" and not math.isfinite(value):
        raise Invalid("out_of_range", f"{spec.name}: not finite")
    if spec.minimum is not None and value < spec.minimum:
        raise Invalid("out_of_range", f"{spec.name}: below {spec.minimum:g}")
    if spec.maximum is not None and value > spec.maximum:
        raise Invalid("out_of_range", f"{spec.name}: above {spec.maximum:g}")


def _check_items(items: list[Any]) -> None:
    if len(items) > MAX_ORDER_ITEMS:
        raise Invalid("out_of_range", f"items: more than {MAX_ORDER_ITEMS}")
    for item in items:
        if not isinstance(item, dict):
            raise Invalid("wrong_type", "items: each item must be an object")
        for spec in ITEM_FIELDS:
            _check_field(item, spec)


# ``check(obj, now_ms, max_future_ms, max_age_ms) -> bool`` for one topic: True only for a
# valid event. Built from FIELDS so the contract stays in one table.
FastCheck = Callable[[dict[str, Any], int, int, int], bool]


def _field_test(spec: FieldSpec) -> str:
    """A Python condition on ``v`` (not None) that is true when ``v`` is NOT acceptable."""
    bounds = ""
    if spec.minimum is not None:
        bounds += f" or v < {spec.minimum!r}"
    if spec.maximum is not None:
        bounds += f" or v > {spec.maximum!r}"
    if spec.kind == "string":
        too_long = f" or len(v) > {spec.max_length}" if spec.max_length is not None else ""
        return f"type(v) is not str{too_long}"
    if spec.kind == "integer":
        return f"type(v) is not int{bounds}"
    if spec.kind == "number":
        return f"(type(v) is not int and (type(v) is not float or not isfinite(v))){bounds}"
    return "type(v) is not list"


def _fields_source(specs: tuple[FieldSpec, ...], obj: str, indent: str) -> list[str]:
    lines = []
    for spec in specs:
        name = repr(spec.name)
        lines.append(f"{indent}v = {obj}.get({name})")
        absent = f"{name} in {obj}" if not spec.required else "True"
        lines.append(f"{indent}if v is None:")
        lines.append(f"{indent}    if {absent}: return False")
        lines.append(f"{indent}elif {_field_test(spec)}: return False")
    return lines


def _compile_fast_check(topic: Topic) -> FastCheck:
    specs = FIELDS[topic]
    lines = ["def check(obj, now_ms, max_future_ms, max_age_ms):"]
    lines += _fields_source(specs, "obj", "    ")
    lines += [
        "    if obj['event_type'] not in event_types: return False",
        "    ts = obj['ts']",
        "    if ts > now_ms + max_future_ms or ts < now_ms - max_age_ms: return False",
    ]
    if any(spec.name == "items" for spec in specs):
        lines += [
            "    items = obj.get('items')",
            "    if items is not None:",
            f"        if len(items) > {MAX_ORDER_ITEMS}: return False",
            "        for item in items:",
            "            if type(item) is not dict: return False",
            *_fields_source(ITEM_FIELDS, "item", "            "),
        ]
    lines.append("    return True")
    namespace: dict[str, Any] = {"isfinite": math.isfinite, "event_types": EVENT_TYPES[topic]}
    exec("\n".join(lines), namespace)  # source built above from FIELDS only
    check: FastCheck = namespace["check"]
    return check


_TOPICS_WITH_ITEMS = frozenset(t for t in TOPICS if any(s.name == "items" for s in FIELDS[t]))
FAST_CHECKS: dict[str, FastCheck] = {topic: _compile_fast_check(topic) for topic in TOPICS}


def fast_check(topic: Topic) -> FastCheck:
    """The compiled check of ``topic``: True means valid; False means "validate_event will
    say why" (or, for values of subclassed types, that it may still accept them)."""
    return FAST_CHECKS[topic]


def validate_event(obj: object, topic: Topic, now_ms: int, limits: Limits) -> dict[str, Any]:
    """Return ``obj`` as a valid event of ``topic`` or raise ``Invalid``."""
    if type(obj) is dict and FAST_CHECKS[topic](
        obj, now_ms, limits.max_future_ms, limits.max_age_ms
    ):
        return obj
    return validate_fields(obj, topic, now_ms, limits)


def validate_fields(obj: object, topic: Topic, now_ms: int, limits: Limits) -> dict[str, Any]:
    """``validate_event`` without the fast check: field by field, raising with the reason."""
    if not isinstance(obj, dict):
        raise Invalid("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    for spec in FIELDS[topic]:
        _check_field(obj, spec)
    if obj["event_type"] not in EVENT_TYPES[topic]:
        raise Invalid("unknown_event_type", f"unknown event_type for {topic}")
    ts = obj["ts"]
    if ts > now_ms + limits.max_future_ms:
        raise Invalid("ts_in_future", f"ts {ts} is more than {limits.max_future_ms} ms ahead")
    if ts < now_ms - limits.max_age_ms:
        raise Invalid("ts_too_old", f"ts {ts} is older than {limits.max_age_ms} ms")
    # only topics whose contract has ``items`` check them: an ``items`` field on a click is
    # an unknown extra field (ignored), not a malformed order line
    items = obj.get("items") if topic in _TOPICS_WITH_ITEMS else None
    if items is not None:
        _check_items(items)
    return obj


def _reject(decoded: Decoded, reason: RejectReason, detail: str, original: bytes) -> Decoded:
    decoded.rejected.append(Rejected(reason, detail, original))
    return decoded


# orjson reads integers outside [-2**63, 2**64) as floats; msgspec bounds must fit int64
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _bounded_int(minimum: float | None, maximum: float | None) -> Any:
    low = _I64_MIN if minimum is None else max(math.ceil(minimum), _I64_MIN)
    high = _I64_MAX if maximum is None else min(math.floor(maximum), _I64_MAX)
    return Annotated[int, msgspec.Meta(ge=low, le=high)]


def _msgspec_type(spec: FieldSpec, topic: Topic | None) -> Any:
    """The msgspec type that accepts a subset of what ``_check_field`` accepts for ``spec``."""
    if spec.name == "event_type" and topic is not None:
        # the closed set (checked after the fields by the reference; a wrong type or a
        # missing event_type is rejected here too, so only the reason may differ: None)
        return Literal[tuple(sorted(EVENT_TYPES[topic]))]
    if spec.kind == "string":
        if spec.max_length is None:
            return str
        return Annotated[str, msgspec.Meta(max_length=spec.max_length)]
    if spec.kind == "integer":
        return _bounded_int(spec.minimum, spec.maximum)
    if spec.kind == "number":
        as_float = Annotated[float, msgspec.Meta(ge=spec.minimum, le=spec.maximum)]
        return _bounded_int(spec.minimum, spec.maximum) | as_float
    item = _struct("OrderItem", ITEM_FIELDS, None)
    return Annotated[list[item], msgspec.Meta(max_length=MAX_ORDER_ITEMS)]  # type: ignore[valid-type]


def _struct(name: str, specs: tuple[FieldSpec, ...], topic: Topic | None) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for spec in specs:
        kind = _msgspec_type(spec, topic)
        if spec.required:
            fields.append((spec.name, kind))
        else:  # absent: UNSET, left out by to_builtins; null is not UNSET (wrong_type)
            fields.append((spec.name, kind | msgspec.UnsetType, msgspec.UNSET))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True)


def _fast_decoder(topic: Topic) -> msgspec.json.Decoder[Any]:
    event = _struct(f"{topic}_event", FIELDS[topic], topic)
    batch = Annotated[list[event], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]  # type: ignore[valid-type]
    return msgspec.json.Decoder(event | batch)


FAST_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {t: _fast_decoder(t) for t in TOPICS}
_to_builtins = msgspec.to_builtins


def valid_events(
    raw: bytes | None, topic: Topic, now_ms: int, limits: Limits
) -> list[dict[str, Any]] | None:
    """The events of message ``raw`` if the fast path proves every one valid, else None.

    The worker's shortcut for the common case: no ``Decoded`` to build and no exception
    machinery. None says nothing about validity: ``decode_message`` then decides, with
    reasons. The result equals ``decode_message(...).events`` whenever it is not None.
    Never raises.
    """
    if raw is None or len(raw) > MAX_EVENT_BYTES:
        return None  # decode_message's size rules apply
    try:
        parsed = FAST_DECODERS[topic].decode(raw)
    except msgspec.DecodeError:  # ValidationError included
        return None
    low, high = now_ms - limits.max_age_ms, now_ms + limits.max_future_ms
    if type(parsed) is list:
        for element in parsed:
            if not low <= element.ts <= high:
                return None
        events: list[dict[str, Any]] = _to_builtins(parsed)
        return events
    if not low <= parsed.ts <= high:
        return None
    return [_to_builtins(parsed)]


def valid_events_reference(
    raw: bytes | None, topic: Topic, now_ms: int, limits: Limits
) -> list[dict[str, Any]] | None:
    """:func:`valid_events` as it was before msgspec (orjson + the fast checks): the
    reference the msgspec path is tested against. Same contract as :func:`valid_events`."""
    if raw is None or len(raw) > MAX_EVENT_BYTES:
        return None  # decode_message's size rules apply
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    check = FAST_CHECKS[topic]
    max_future_ms, max_age_ms = limits.max_future_ms, limits.max_age_ms
    if type(parsed) is dict:
        return [parsed] if check(parsed, now_ms, max_future_ms, max_age_ms) else None
    if type(parsed) is not list or not 0 < len(parsed) <= MAX_BATCH_EVENTS:
        return None
    for element in parsed:
        if type(element) is not dict or not check(element, now_ms, max_future_ms, max_age_ms):
            return None
    return parsed


def decode_message(raw: bytes | None, topic: Topic, now_ms: int, limits: Limits) -> Decoded:
    """Decode one Kafka message value (an event or an array of events). Never raises."""
    decoded = Decoded()
    if raw is None:
        return _reject(decoded, "null_value", "null value (a tombstone)", b"")
    size = len(raw)
    if not size:
        return _reject(decoded, "empty_value", "empty value", raw)
    if size > MAX_MESSAGE_BYTES:
        return _reject(decoded, "too_large", f"message of {size} bytes", raw)
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _reject(decoded, "malformed_json", str(exc)[:200], raw)
    if isinstance(parsed, list):
        if not parsed:
            return _reject(decoded, "empty_batch", "empty array", raw)
        if len(parsed) > MAX_BATCH_EVENTS:
            return _reject(decoded, "batch_too_long", f"{len(parsed)} events in one message", raw)
        # no element of a message within the per-event limit can exceed it
        check_sizes = size > MAX_EVENT_BYTES
        for element in parsed:
            if check_sizes:
                original = orjson.dumps(element)
                if len(original) > MAX_EVENT_BYTES:
                    _reject(decoded, "too_large", f"event of {len(original)} bytes", original)
                    continue
            try:
                decoded.events.append(validate_event(element, topic, now_ms, limits))
            except Invalid as exc:
                _reject(decoded, exc.reason, exc.detail, orjson.dumps(element))
        return decoded
    if size > MAX_EVENT_BYTES:
        return _reject(decoded, "too_large", f"event of {size} bytes", raw)
    try:
        decoded.events.append(validate_event(parsed, topic, now_ms, limits))
    except Invalid as exc:
        _reject(decoded, exc.reason, exc.detail, raw)
    return decoded
