"""Incidents: the spec grammar, and what each kind does to the generated stream."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace

import pytest

from streams.simulation import (
    Incident,
    SimConfig,
    SimEvent,
    SpecError,
    generate,
    parse_duration,
    parse_incident,
    parse_time,
)

MINUTE = 60_000
DAY = parse_time("2024-11-11T10:00:00+08:00")
BASE = SimConfig(
    rate=40, duration_s=30 * 60, start_ms=DAY, spike=False, users=5000, catalog_items=800
)
# every incident below runs over this window of the 30 simulated minutes
WINDOW = "10m+8m"
START, END = DAY + 10 * MINUTE, DAY + 18 * MINUTE
SEED = 11


@pytest.fixture(scope="module")
def baseline() -> list[SimEvent]:
    return list(generate(BASE, SEED))


def in_window(events: list[SimEvent], start: int = START, end: int = END) -> list[SimEvent]:
    return [e for e in events if start <= e.ts < end]


def before(events: list[SimEvent]) -> list[SimEvent]:
    return in_window(events, DAY, START)


def of_type(events: list[SimEvent], event_type: str) -> list[SimEvent]:
    return [e for e in events if e.event["event_type"] == event_type]


def success_ratio(events: list[SimEvent], method: str) -> tuple[float, int]:
    attempts = [
        e
        for e in events
        if e.event["event_type"] in ("payment_succeeded", "payment_failed")
        and e.event["payment_method"] == method
    ]
    ok = sum(1 for e in attempts if e.event["event_type"] == "payment_succeeded")
    return ok / max(len(attempts), 1), len(attempts)


def p75_load(events: list[SimEvent], page: str) -> float:
    loads: list[int] = [
        e.event["load_ms"] for e in of_type(events, "page_view") if e.event["page_type"] == page
    ]
    return statistics.quantiles(loads, n=4)[2]


def session_starts(events: list[SimEvent]) -> int:
    seen: set[str] = set()
    starts = 0
    for e in events:
        sid = e.event["session_id"]
        if sid not in seen:
            seen.add(sid)
            starts += e.ts >= START
    return starts


def expect_payment_outage(got: list[SimEvent], base: list[SimEvent]) -> None:
    ratio, attempts = success_ratio(in_window(got), "alipay")
    assert attempts >= 20 and ratio <= 0.02
    reasons = {
        e.event["failure_reason"]
        for e in of_type(in_window(got), "payment_failed")
        if e.event["payment_method"] == "alipay"
    }
    assert reasons <= {"timeout", "bank_error"}
    # other methods keep their usual success ratio (and get the users who switch)
    for method in ("wechat_pay", "card", "union_pay", "cod"):
        ratio, attempts = success_ratio(in_window(got), method)
        assert ratio >= success_ratio(in_window(base), method)[0] - 0.1
        assert attempts >= success_ratio(in_window(base), method)[1]
    assert success_ratio(before(got), "alipay")[0] >= 0.9
    assert success_ratio(in_window(got, END + 2 * MINUTE, BASE.end_ms), "alipay")[0] >= 0.9


def expect_orders_lost(got: list[SimEvent], base: list[SimEvent]) -> None:
    assert not [e for e in in_window(got) if e.topic == "orders"]
    clicks = [e for e in in_window(got) if e.topic == "clicks"]
    assert clicks == [e for e in in_window(base) if e.topic == "clicks"]
    assert [e for e in got if e.topic == "orders" and e.ts >= END]


def expect_pipeline_stall(got: list[SimEvent], base: list[SimEvent]) -> None:
    assert in_window(got) == []
    assert in_window(got, END, BASE.end_ms) == in_window(base, END, BASE.end_ms)


def expect_checkout_slow(got: list[SimEvent], base: list[SimEvent]) -> None:
    assert p75_load(in_window(got), "checkout") >= 4000
    assert p75_load(in_window(got), "detail") >= 4000
    assert p75_load(before(got), "checkout") < 3000
    assert p75_load(in_window(got), "home") < 3000  # only the buying path is slow
    orders = len(of_type(in_window(got), "order_created"))
    assert orders <= 0.6 * len(of_type(in_window(base), "order_created"))


def expect_traffic_drop(got: list[SimEvent], base: list[SimEvent]) -> None:
    assert session_starts(in_window(got)) <= 0.3 * session_starts(in_window(base))
    late = in_window(got, START + 4 * MINUTE, END)
    assert len(late) <= 0.4 * len(in_window(base, START + 4 * MINUTE, END))
    assert session_starts(in_window(got, END, BASE.end_ms)) > 0


def expect_ticket_surge(got: list[SimEvent], base: list[SimEvent]) -> None:
    opened = of_type(in_window(got), "ticket_opened")
    normal = of_type(in_window(base), "ticket_opened")
    assert len(opened) >= max(10, 5 * len(normal))
    paid = {e.event["order_id"] for e in of_type(got, "payment_succeeded")}
    surge = [e for e in opened if e not in normal]
    assert all(e.event.get("order_id", "") in paid for e in surge if "order_id" in e.event)
    assert len(of_type(in_window(got, END + MINUTE, BASE.end_ms), "ticket_opened")) <= max(
        5, 3 * len(of_type(in_window(base, END + MINUTE, BASE.end_ms), "ticket_opened"))
    )


EFFECTS: list[tuple[str, Callable[[list[SimEvent], list[SimEvent]], None]]] = [
    ("payment_outage:alipay", expect_payment_outage),
    ("orders_lost", expect_orders_lost),
    ("pipeline_stall", expect_pipeline_stall),
    ("checkout_slow", expect_checkout_slow),
    ("traffic_drop", expect_traffic_drop),
    ("ticket_surge", expect_ticket_surge),
]


@pytest.mark.parametrize(("kind", "expect"), EFFECTS, ids=[k for k, _ in EFFECTS])
def test_each_incident_kind_has_its_effect_in_its_window(
    kind: str, expect: Callable[[list[SimEvent], list[SimEvent]], None], baseline: list[SimEvent]
) -> None:
    config = replace(BASE, incidents=(parse_incident(f"{kind}@{WINDOW}"),))
    got = list(generate(config, SEED))
    expect(got, baseline)
    # independent random streams: nothing before the incident changes
    assert before(got) == before(baseline)


GOOD_SPECS = [
    ("payment_outage:alipay@30m+10m", Incident("payment_outage", 1800, 600, 1.0, "alipay")),
    ("payment_outage:card@0+1h:0.5", Incident("payment_outage", 0, 3600, 0.5, "card")),
    ("checkout_slow@0s+90s:6", Incident("checkout_slow", 0, 90, 6.0)),
    ("checkout_slow@5m+5m", Incident("checkout_slow", 300, 300, 4.0)),
    ("orders_lost@10m+5m", Incident("orders_lost", 600, 300, 1.0)),
    ("ticket_surge@2h+15m:50", Incident("ticket_surge", 7200, 900, 50.0)),
    ("traffic_drop@1h30m+2h:0.5", Incident("traffic_drop", 5400, 7200, 0.5)),
    ("pipeline_stall@90+30", Incident("pipeline_stall", 90, 30, 1.0)),
    (" pipeline_stall@1m+500ms ", Incident("pipeline_stall", 60, 0.5, 1.0)),
]


@pytest.mark.parametrize(("spec", "expected"), GOOD_SPECS, ids=[s for s, _ in GOOD_SPECS])
def test_good_incident_specs_parse(spec: str, expected: Incident) -> None:
    assert parse_incident(spec) == expected
    assert parse_incident(expected.spec()) == expected


BAD_SPECS = [
    ("", "expected KIND"),
    ("checkout_slow", "expected KIND"),
    ("@1m+1m", "expected KIND"),
    ("bogus@1m+1m", "unknown kind 'bogus'"),
    ("payment_outage@1m+1m", "needs :METHOD"),
    ("payment_outage:bitcoin@1m+1m", "unknown payment method 'bitcoin'"),
    ("checkout_slow:web@1m+1m", "takes no :ARG"),
    ("checkout_slow@1m", "missing +DURATION"),
    ("checkout_slow@1m+0s", "DURATION must be > 0"),
    ("checkout_slow@soon+1m", "bad duration 'soon'"),
    ("checkout_slow@-1m+1m", "bad duration '-1m'"),
    ("checkout_slow@1m+1m:fast", "'fast' is not a number"),
    ("checkout_slow@1m+1m:0.5", "SEVERITY for checkout_slow is the load-time multiplier"),
    ("traffic_drop@1m+1m:2", "in (0, 1]"),
    ("payment_outage:alipay@1m+1m:0", "in (0, 1]"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[s or "empty" for s, _ in BAD_SPECS])
def test_bad_incident_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_incident(spec)
    assert message in str(err.value)


DURATIONS = [
    ("90s", 90.0),
    ("10m", 600.0),
    ("2h", 7200.0),
    ("1h30m", 5400.0),
    ("1.5h", 5400.0),
    ("500ms", 0.5),
    ("1d", 86400.0),
    ("45", 45.0),
    ("0", 0.0),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS, ids=[t for t, _ in DURATIONS])
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "1h 30m", "-5", "nan", "ten minutes"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="duration"):
        parse_duration(text)


MIDNIGHT_CN = 1731254400000  # 2024-11-11T00:00:00+08:00


@pytest.mark.parametrize(
    "text",
    ["2024-11-11T00:00:00+08:00", "2024-11-10T16:00:00Z", "2024-11-10T16:00:00", "1731254400000"],
)
def test_start_times_parse_as_iso_or_epoch_ms(text: str) -> None:
    assert parse_time(text) == MIDNIGHT_CN


@pytest.mark.parametrize(
    ("text", "message"),
    [("1731254400", "looks like epoch seconds"), ("yesterday", "expected ISO 8601")],
)
def test_bad_start_times_are_refused(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_time(text)
