"""The collector's pure parts: beacon parsing, the token bucket, page-load merging, config."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.collector.beacon import (
    BEACON_REJECT_REASONS,
    MAX_METRICS,
    PAGE_LOAD_ID_MAX_LEN,
    BadBeacon,
    parse_beacon,
)
from streams.collector.config import (
    DEFAULT_PORT,
    CollectorConfig,
    CollectorConfigError,
    from_flags_and_env,
)
from streams.collector.merge import Overloaded, PageLoads
from streams.collector.ratelimit import RateLimiter
from streams.events.decode import Limits, validate_event
from tests.unit.events_factory import NOW_MS


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def metric(name: Any, value: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "id": f"v6-1-{name}",
        "rating": "good",
        "delta": value,
        "navigationType": "navigate",
        **extra,
    }


def beacon_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "page_load_id": "pl-1",
        "page_type": "detail",
        "channel": "web",
        "session_id": "s-1",
        "user_id": "u-1",
        "metrics": [metric("TTFB", 120.4), metric("LCP", 1834.6)],
    }
    body.update(overrides)
    return body


def raw(body: object) -> bytes:
    return orjson.dumps(body)


# --- parsing -------------------------------------------------------------------------------


def test_valid_beacon_yields_vitals_as_event_fields() -> None:
    beacon = parse_beacon(raw(beacon_body(item_id="sku-1")), "CN-GD")
    assert beacon.page_load_id == "pl-1"
    assert beacon.event_id == "wv:pl-1"
    assert beacon.vitals == {"ttfb_ms": 120, "lcp_ms": 1835}
    assert beacon.context == {
        "page_type": "detail",
        "channel": "web",
        "session_id": "s-1",
        "user_id": "u-1",
        "item_id": "sku-1",
    }


@pytest.mark.parametrize(
    ("metrics", "vitals"),
    [
        pytest.param([metric("CLS", 0.123456)], {"cls": 0.1235}, id="cls-4-decimals"),
        pytest.param([metric("INP", 248)], {"inp_ms": 248}, id="inp-int"),
        pytest.param(
            [metric("CLS", 0.05), metric("CLS", 0.2)], {"cls": 0.2}, id="later-report-wins"
        ),
        pytest.param(
            [metric("FCP", 900.0), metric("LCP", 1000.0)], {"lcp_ms": 1000}, id="fcp-ignored"
        ),
        pytest.param(
            [{"name": "LCP", "value": 1500}], {"lcp_ms": 1500}, id="only-name-and-value-needed"
        ),
        pytest.param([metric("TTFB", 0)], {"ttfb_ms": 0}, id="zero"),
    ],
)
def test_metrics_to_vitals(metrics: list[dict[str, Any]], vitals: dict[str, Any]) -> None:
    assert parse_beacon(raw(beacon_body(metrics=metrics)), "other").vitals == vitals


BAD_BEACONS = [
    pytest.param(b'{"page_load_id": "pl-1", ', "malformed_json", id="truncated-json"),
    pytest.param(b"", "malformed_json", id="empty-body"),
    pytest.param(b"NaN", "malformed_json", id="nan"),
    pytest.param(raw([beacon_body()]), "not_an_object", id="array-body"),
    pytest.param(raw(beacon_body(page_load_id=7)), "wrong_type", id="page-load-id-int"),
    pytest.param(raw(beacon_body(page_load_id="")), "out_of_range", id="page-load-id-empty"),
    pytest.param(
        raw(beacon_body(page_load_id="p" * (PAGE_LOAD_ID_MAX_LEN + 1))),
        "too_long",
        id="page-load-id-too-long",
    ),
    pytest.param(
        raw({k: v for k, v in beacon_body().items() if k != "page_load_id"}),
        "missing_field",
        id="no-page-load-id",
    ),
    pytest.param(
        raw({k: v for k, v in beacon_body().items() if k != "session_id"}),
        "missing_field",
        id="no-session-id",
    ),
    pytest.param(
        raw({k: v for k, v in beacon_body().items() if k != "metrics"}),
        "missing_field",
        id="no-metrics",
    ),
    pytest.param(raw(beacon_body(session_id=123)), "wrong_type", id="session-id-int"),
    pytest.param(raw(beacon_body(user_id=None)), "wrong_type", id="user-id-null"),
    pytest.param(raw(beacon_body(page_type=["detail"])), "wrong_type", id="page-type-list"),
    pytest.param(raw(beacon_body(session_id="s" * 65)), "too_long", id="session-id-too-long"),
    pytest.param(raw(beacon_body(channel="c" * 129)), "too_long", id="channel-too-long"),
    pytest.param(raw(beacon_body(metrics={"LCP": 1})), "wrong_type", id="metrics-object"),
    pytest.param(raw(beacon_body(metrics=["LCP"])), "wrong_type", id="metric-string"),
    pytest.param(raw(beacon_body(metrics=[metric("LCP", "1834")])), "wrong_type", id="value-str"),
    pytest.param(raw(beacon_body(metrics=[metric("LCP", True)])), "wrong_type", id="value-bool"),
    pytest.param(raw(beacon_body(metrics=[metric("LCP", None)])), "wrong_type", id="value-null"),
    pytest.param(raw(beacon_body(metrics=[metric(7, 1.0)])), "wrong_type", id="name-int"),
    pytest.param(
        raw(beacon_body(metrics=[metric("LCP", 1.0, id=5)])), "wrong_type", id="metric-id-int"
    ),
    pytest.param(
        raw(beacon_body(metrics=[metric("LCP", 1.0, delta="x")])), "wrong_type", id="delta-str"
    ),
    pytest.param(raw(beacon_body(metrics=[metric("LCP", -1)])), "out_of_range", id="lcp-negative"),
    pytest.param(raw(beacon_body(metrics=[metric("INP", 1e9)])), "out_of_range", id="inp-huge"),
    pytest.param(raw(beacon_body(metrics=[metric("CLS", 1e6)])), "out_of_range", id="cls-huge"),
    pytest.param(raw(beacon_body(metrics=[])), "no_vitals", id="no-metrics-in-array"),
    pytest.param(raw(beacon_body(metrics=[metric("FCP", 10.0)])), "no_vitals", id="only-fcp"),
    pytest.param(
        raw(beacon_body(metrics=[metric("LCP", 1.0)] * (MAX_METRICS + 1))),
        "too_many_metrics",
        id="too-many-metrics",
    ),
]


@pytest.mark.parametrize(("body", "reason"), BAD_BEACONS)
def test_bad_beacons_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BadBeacon) as caught:
        parse_beacon(body, "other")
    assert caught.value.reason == reason
    assert reason in BEACON_REJECT_REASONS


# --- token bucket --------------------------------------------------------------------------


def test_token_bucket_allows_burst_then_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b"), "another client has its own bucket"
    clock.now += 0.5  # one token back
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    clock.now += 100  # refills to the burst, not beyond
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]


def test_token_bucket_memory_is_bounded() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, max_clients=3, clock=FakeClock())
    for key in "abcde":
        limiter.allow(key)
    assert len(limiter) == 3
    assert limiter.allow("a"), "the least recently used client was forgotten: fresh bucket"


# --- merging page loads --------------------------------------------------------------------


def page_loads(clock: FakeClock, **kwargs: Any) -> PageLoads:
    return PageLoads("CN-GD", settle_s=5.0, clock=clock, wall_clock_ms=lambda: NOW_MS, **kwargs)


def test_beacons_of_one_page_load_merge_into_one_event() -> None:
    clock = FakeClock()
    pages = page_loads(clock)
    first = [metric("TTFB", 80.0), metric("LCP", 2100.0), metric("CLS", 0.02)]
    assert pages.add(parse_beacon(raw(beacon_body(metrics=first)), "CN-GD")) == "new"
    clock.now += 1
    second = [metric("CLS", 0.3), metric("INP", 480.0)]
    assert pages.add(parse_beacon(raw(beacon_body(metrics=second)), "CN-GD")) == "merged"
    clock.now += 3.9
    assert pages.due() == [], "still settling: 5 s after the first beacon"
    clock.now += 0.2
    [event] = pages.due()
    assert event == {
        "schema_version": 1,
        "event_id": "wv:pl-1",
        "event_type": "page_view",
        "ts": NOW_MS,
        "region": "CN-GD",
        "page_type": "detail",
        "channel": "web",
        "session_id": "s-1",
        "user_id": "u-1",
        "ttfb_ms": 80,
        "lcp_ms": 2100,
        "load_ms": 2100,
        "cls": 0.3,
        "inp_ms": 480,
    }
    assert validate_event(event, "clicks", NOW_MS, Limits()) is event


def test_page_load_without_lcp_has_no_load_ms() -> None:
    pages = page_loads(FakeClock())
    pages.add(parse_beacon(raw(beacon_body(metrics=[metric("CLS", 0.0)])), "CN-GD"))
    [event] = pages.drain()
    assert "load_ms" not in event and event["cls"] == 0.0


def test_late_beacon_after_its_event_is_dropped() -> None:
    clock = FakeClock()
    pages = page_loads(clock)
    pages.add(parse_beacon(raw(beacon_body()), "CN-GD"))
    clock.now += 6
    assert len(pages.due()) == 1
    assert pages.add(parse_beacon(raw(beacon_body()), "CN-GD")) == "late"
    clock.now += 6
    assert pages.due() == [] and len(pages) == 0


def test_due_events_come_oldest_first_and_wait_for_their_own_settle_time() -> None:
    clock = FakeClock()
    pages = page_loads(clock)
    for i in range(3):
        pages.add(parse_beacon(raw(beacon_body(page_load_id=f"pl-{i}")), "CN-GD"))
        clock.now += 2
    assert [e["event_id"] for e in pages.due()] == ["wv:pl-0"]
    clock.now += 4
    assert [e["event_id"] for e in pages.due()] == ["wv:pl-1", "wv:pl-2"]


def test_too_many_waiting_page_loads_is_overloaded() -> None:
    pages = page_loads(FakeClock(), max_pending=2)
    for i in range(2):
        pages.add(parse_beacon(raw(beacon_body(page_load_id=f"pl-{i}")), "CN-GD"))
    with pytest.raises(Overloaded):
        pages.add(parse_beacon(raw(beacon_body(page_load_id="pl-9")), "CN-GD"))
    assert pages.add(parse_beacon(raw(beacon_body(page_load_id="pl-1")), "CN-GD")) == "merged"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        pytest.param({}, {}, ("127.0.0.1", DEFAULT_PORT, "other"), id="defaults"),
        pytest.param(
            {},
            {
                "SALEWATCH_COLLECTOR_HOST": "0.0.0.0",
                "SALEWATCH_COLLECTOR_PORT": "9200",
                "SALEWATCH_COLLECTOR_REGION": "CN-SH",
            },
            ("0.0.0.0", 9200, "CN-SH"),
            id="environment",
        ),
        pytest.param(
            {"host": "::1", "port": 9300, "region": "CN-BJ"},
            {"SALEWATCH_COLLECTOR_HOST": "0.0.0.0", "SALEWATCH_COLLECTOR_PORT": "9200"},
            ("::1", 9300, "CN-BJ"),
            id="flags-win",
        ),
    ],
)
def test_config_from_flags_then_env_then_defaults(
    flags: dict[str, Any], environ: dict[str, str], expected: tuple[str, int, str]
) -> None:
    config = from_flags_and_env(environ, **flags)
    assert (config.host, config.port, config.region) == expected


@pytest.mark.parametrize(
    ("environ", "limits", "names"),
    [
        pytest.param(
            {"SALEWATCH_COLLECTOR_PORT": "http"}, {}, "SALEWATCH_COLLECTOR_PORT", id="nan"
        ),
        pytest.param(
            {"SALEWATCH_COLLECTOR_PORT": "70000"}, {}, "SALEWATCH_COLLECTOR_PORT", id="port"
        ),
        pytest.param({}, {"burst": 0}, "--burst", id="no-burst"),
    ],
)
def test_bad_config_names_the_setting(
    environ: dict[str, str], limits: dict[str, Any], names: str
) -> None:
    with pytest.raises(CollectorConfigError) as caught:
        from_flags_and_env(environ, limits=CollectorConfig(**limits))
    assert names in str(caught.value)
