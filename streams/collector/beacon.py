"""Parse and validate one beacon body from the browser snippet (pure functions, no I/O).

A beacon is one JSON object: the page load it belongs to, the context a shop configured,
and the Core Web Vitals the ``web-vitals`` callbacks reported, as they report them::

    {"page_load_id": "pl-lx2k9-4f8a0c1b2d", "page_type": "detail", "channel": "web",
     "session_id": "s-123", "user_id": "u-9", "item_id": "sku-1",      # item_id… optional
     "metrics": [{"name": "LCP", "value": 1834.2, "id": "v6-…", "rating": "good",
                  "delta": 1834.2, "navigationType": "navigate"}, …]}

Contract: ``parse_beacon(raw)`` returns a ``Beacon`` or raises ``BadBeacon`` with a reason
from ``BEACON_REJECT_REASONS`` (a Prometheus label). The context fields are checked by the
event contract's own validator (``streams.events.decode.validate_event``) on the event this beacon
would produce, so a beacon accepted here can only yield valid ``page_view`` events. Metric
names other than the four below (``FCP``, future ones) are ignored, for compatibility with
newer snippets; a beacon must carry at least one of the four.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.events.contract import ID_MAX_LEN
from streams.events.decode import Invalid, Limits, RejectReason, validate_event

BeaconRejectReason = Literal[
    "malformed_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "too_long",
    "no_vitals",
    "too_many_metrics",
    "too_large",
    "rate_limited",
    "overloaded",
]
BEACON_REJECT_REASONS: frozenset[str] = frozenset(BeaconRejectReason.__args__)  # type: ignore[attr-defined]
# the contract validator's reasons that a beacon's preview event can produce
_CONTRACT_REASONS: dict[RejectReason, BeaconRejectReason] = {
    "missing_field": "missing_field",
    "wrong_type": "wrong_type",
    "out_of_range": "out_of_range",
    "too_long": "too_long",
}

# web-vitals metric name -> the clicks field it fills, and how its value is stored
VITAL_FIELDS: dict[str, str] = {"LCP": "lcp_ms", "INP": "inp_ms", "CLS": "cls", "TTFB": "ttfb_ms"}
CONTEXT_FIELDS = (
    "page_type",
    "channel",
    "session_id",
    "user_id",
    "item_id",
    "category",
    "traffic_source",
)
EVENT_ID_PREFIX = "wv:"
PAGE_LOAD_ID_MAX_LEN = ID_MAX_LEN - len(EVENT_ID_PREFIX)
# one report per metric is what the snippet sends; a little slack for future metrics
MAX_METRICS = 16
METRIC_STRING_MAX_LEN = 64
CLS_DECIMALS = 4
# ts of the preview event checked at parse time; the real ts is set when it is produced
_PREVIEW_TS = 0
_PREVIEW_LIMITS = Limits(max_future_ms=0, max_age_ms=0)


class BadBeacon(Exception):
    """The beacon is refused; ``reason`` is a ``BEACON_REJECT_REASONS`` label."""

    def __init__(self, reason: BeaconRejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: BeaconRejectReason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Beacon:
    """One valid beacon: its page load, the event context, and the vitals as event fields."""

    page_load_id: str
    context: dict[str, str]
    vitals: dict[str, int | float]

    @property
    def event_id(self) -> str:
        return EVENT_ID_PREFIX + self.page_load_id


def vital_value(name: str, value: float) -> int | float:
    """The event field value of a web-vitals value: whole ms, or CLS to 4 decimals."""
    if name == "CLS":
        return round(value, CLS_DECIMALS)
    return round(value)


def _string(obj: dict[str, Any], key: str, max_len: int, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if key in obj:
            raise BadBeacon("wrong_type", f"{key}: null")
        if required:
            raise BadBeacon("missing_field", f"missing {key}")
        return None
    if not isinstance(value, str):
        raise BadBeacon("wrong_type", f"{key}: expected string, got {type(value).__name__}")
    if len(value) > max_len:
        raise BadBeacon("too_long", f"{key}: longer than {max_len}")
    return value


def _number(obj: dict[str, Any], key: str, required: bool) -> float | None:
    value = obj.get(key)
    if value is None and not required and key not in obj:
        return None
    # bool is an int in Python but not a JSON number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadBeacon("wrong_type", f"metrics.{key}: expected number")
    if not math.isfinite(value):
        raise BadBeacon("out_of_range", f"metrics.{key}: not finite")
    return float(value)


def _vitals(metrics: object) -> dict[str, int | float]:
    if not isinstance(metrics, list):
        raise BadBeacon("wrong_type", "metrics: expected an array")
    if len(metrics) > MAX_METRICS:
        raise BadBeacon("too_many_metrics", f"more than {MAX_METRICS} metrics")
    vitals: dict[str, int | float] = {}
    for metric in metrics:
        if not isinstance(metric, dict):
            raise BadBeacon("wrong_type", "metrics: each metric must be an object")
        name = _string(metric, "name", METRIC_STRING_MAX_LEN, required=True)
        value = _number(metric, "value", required=True)
        _number(metric, "delta", required=False)
        for key in ("id", "rating", "navigationType"):
            _string(metric, key, METRIC_STRING_MAX_LEN, required=False)
        if name in VITAL_FIELDS and value is not None:
            # a later report of the same metric supersedes an earlier one
            vitals[VITAL_FIELDS[name]] = vital_value(name, value)
    if not vitals:
        raise BadBeacon("no_vitals", "no LCP, INP, CLS or TTFB metric")
    return vitals


def preview_event(beacon: Beacon, region: str) -> dict[str, Any]:
    """The ``page_view`` event of ``beacon`` alone, with a placeholder ``ts``."""
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": beacon.event_id,
        "event_type": "page_view",
        "ts": _PREVIEW_TS,
        "region": region,
        **beacon.context,
        **beacon.vitals,
    }
    if "lcp_ms" in beacon.vitals:
        event["load_ms"] = beacon.vitals["lcp_ms"]
    return event


def parse_beacon(raw: bytes, region: str) -> Beacon:
    """Return the beacon in ``raw`` or raise ``BadBeacon``. ``raw`` is already size-capped."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadBeacon("malformed_json", str(exc)[:200]) from None
    if not isinstance(body, dict):
        raise BadBeacon("not_an_object", f"expected a JSON object, got {type(body).__name__}")
    page_load_id = _string(body, "page_load_id", PAGE_LOAD_ID_MAX_LEN, required=True)
    if not page_load_id:
        raise BadBeacon("out_of_range", "page_load_id: empty")
    if "metrics" not in body:
        raise BadBeacon("missing_field", "missing metrics")
    vitals = _vitals(body["metrics"])
    # copied as sent: the contract validator below reports wrong types and lengths
    context = {key: body[key] for key in CONTEXT_FIELDS if key in body}
    beacon = Beacon(page_load_id, context, vitals)
    try:
        validate_event(preview_event(beacon, region), "clicks", _PREVIEW_TS, _PREVIEW_LIMITS)
    except Invalid as exc:
        raise BadBeacon(_CONTRACT_REASONS.get(exc.reason, "out_of_range"), exc.detail) from None
    return beacon
