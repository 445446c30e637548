"""Deliberately invalid messages, one per kind of bad input the worker must dead-letter.

Each is derived from a real event (so it looks like traffic, with a real key) and carries
the reject reason ``streams.events.decode`` is expected to give it, as ground truth for tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson

from streams.events.contract import ID_MAX_LEN, MAX_EVENT_BYTES
from streams.events.decode import RejectReason
from streams.simulation.catalog import Weighted
from streams.simulation.model import SimEvent

TEN_YEARS_MS = 10 * 365 * 86_400_000
EPOCH_DAY_2_MS = 86_400_000  # 1970-01-02: older than any retention


def _dumps(ev: dict[str, Any]) -> bytes:
    return orjson.dumps(ev)


def _malformed(ev: dict[str, Any]) -> bytes:
    raw = _dumps(ev)
    return raw[: len(raw) // 2]  # a truncated write


def _with(**changes: Any) -> Callable[[dict[str, Any]], bytes]:
    def build(ev: dict[str, Any]) -> bytes:
        return _dumps({**ev, **changes})

    return build


def _without(name: str) -> Callable[[dict[str, Any]], bytes]:
    def build(ev: dict[str, Any]) -> bytes:
        return _dumps({k: v for k, v in ev.items() if k != name})

    return build


def _ts_string(ev: dict[str, Any]) -> bytes:
    return _dumps({**ev, "ts": str(ev["ts"])})


def _future(ev: dict[str, Any]) -> bytes:
    return _dumps({**ev, "ts": ev["ts"] + TEN_YEARS_MS})


def _padded(ev: dict[str, Any]) -> bytes:
    return _dumps({**ev, "padding": "x" * (MAX_EVENT_BYTES + 1024)})


INVALID_KINDS: dict[RejectReason, tuple[float, Callable[[dict[str, Any]], bytes]]] = {
    "malformed_json": (0.2, _malformed),
    "not_an_object": (0.05, lambda ev: b"42"),
    "missing_field": (0.15, _without("event_id")),
    "wrong_type": (0.15, _ts_string),
    "unknown_event_type": (0.15, _with(event_type="teleported")),
    "ts_in_future": (0.1, _future),
    "ts_too_old": (0.1, _with(ts=EPOCH_DAY_2_MS)),
    "out_of_range": (0.05, _with(schema_version=99)),
    "too_long": (0.03, _with(session_id="s" * (ID_MAX_LEN + 1))),
    "too_large": (0.02, _padded),
}
_PICK = Weighted({reason: weight for reason, (weight, _) in INVALID_KINDS.items()})


def make_invalid(rng: random.Random, source: SimEvent) -> SimEvent:
    """A bad message spoiled from ``source``, sent at the same time with the same key.

    ``event`` holds only ``expected_reason``, the reject reason it must get.
    """
    reason = _PICK.pick(rng)
    raw = INVALID_KINDS[reason][1](source.event)
    return SimEvent(source.ts, source.topic, source.key, {"expected_reason": reason}, raw)
