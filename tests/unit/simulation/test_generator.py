"""The simulator's stream as a spec: valid, ordered, reproducible, plausible, sale-shaped."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from dataclasses import replace
from itertools import pairwise

import pytest

from streams.events.contract import KEY_FIELD
from streams.events.decode import Limits, validate_event
from streams.metrics.labels import (
    CHANNELS,
    PAGE_TYPES,
    PAYMENT_METHODS,
    TRAFFIC_SOURCES,
    top_category,
)
from streams.settings import DEFAULT_REGIONS
from streams.simulation import SimConfig, SimEvent, generate, parse_incident, parse_time
from streams.simulation.session import AUTO_CANCEL_MS
from streams.simulation.traffic import TrafficCurve, arrivals

MINUTE = 60_000
# 10:00 in China: daytime traffic, the sale's midnight is far away
DAY = parse_time("2024-11-11T10:00:00+08:00")
BASE = SimConfig(rate=40, duration_s=30 * 60, start_ms=DAY, users=5000, catalog_items=800)
LIMITS = Limits()


@pytest.fixture(scope="module")
def stream() -> list[SimEvent]:
    return list(generate(BASE, seed=7))


def test_same_seed_gives_the_identical_stream(stream: list[SimEvent]) -> None:
    assert list(generate(BASE, seed=7)) == stream


def test_another_seed_gives_another_stream(stream: list[SimEvent]) -> None:
    other = list(generate(BASE, seed=8))
    assert [e.event for e in other[:100]] != [e.event for e in stream[:100]]


def test_a_longer_run_starts_with_the_shorter_one(stream: list[SimEvent]) -> None:
    longer = list(generate(replace(BASE, duration_s=BASE.duration_s + 600), seed=7))
    assert longer[: len(stream)] == stream


ALL_INCIDENTS = tuple(
    parse_incident(spec)
    for spec in (
        "checkout_slow@2m+3m",
        "payment_outage:alipay@4m+3m",
        "orders_lost@6m+1m",
        "ticket_surge@7m+3m",
        "traffic_drop@9m+1m",
        "pipeline_stall@10m+30s",
    )
)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(BASE, id="ordinary-day"),
        pytest.param(
            replace(
                BASE,
                rate=4,
                duration_s=12 * 60,
                spike_at_ms=DAY + 5 * MINUTE,
                incidents=ALL_INCIDENTS,
            ),
            id="spike-and-every-incident",
        ),
    ],
)
def test_every_event_is_valid_for_its_topic_and_keyed_by_contract(config: SimConfig) -> None:
    events = list(generate(config, seed=3))
    assert events
    for ev in events:
        assert validate_event(ev.event, ev.topic, ev.ts, LIMITS) is ev.event
        assert ev.key == ev.event[KEY_FIELD[ev.topic]]
        assert ev.ts == ev.event["ts"]
        assert config.start_ms <= ev.ts < config.end_ms
    assert len({e.event["event_id"] for e in events}) == len(events)


def test_events_come_in_non_decreasing_event_time(stream: list[SimEvent]) -> None:
    assert all(a.ts <= b.ts for a, b in pairwise(stream))


def test_start_time_is_configurable_and_ids_differ_per_run() -> None:
    later = replace(BASE, start_ms=DAY + 86_400_000, duration_s=60)
    first = next(iter(generate(later, seed=7)))
    assert later.start_ms <= first.ts < later.start_ms + 60_000
    assert (
        first.event["event_id"]
        != next(iter(generate(replace(BASE, duration_s=60), 7))).event["event_id"]
    )


def test_gaps_within_a_session_stay_below_30_minutes(stream: list[SimEvent]) -> None:
    last: dict[str, int] = {}
    for ev in stream:
        sid = ev.event["session_id"]
        if sid in last:
            assert ev.ts - last[sid] < 30 * MINUTE, sid
        last[sid] = ev.ts


def test_unpaid_orders_are_cancelled_exactly_15_minutes_after_creation(
    stream: list[SimEvent],
) -> None:
    created: dict[str, int] = {}
    outcome: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for ev in stream:
        if ev.topic != "orders":
            continue
        oid, kind = ev.event["order_id"], ev.event["event_type"]
        if kind == "order_created":
            created[oid] = ev.ts
        else:
            outcome[oid].append((kind, ev.ts))
    due = [oid for oid, ts in created.items() if ts + AUTO_CANCEL_MS < BASE.end_ms]
    cancelled = 0
    for oid in due:
        kinds = [k for k, _ in outcome[oid]]
        if "payment_succeeded" in kinds:
            assert "order_cancelled" not in kinds
            assert kinds.count("payment_succeeded") == 1
        else:
            assert [ts for k, ts in outcome[oid] if k == "order_cancelled"] == [
                created[oid] + AUTO_CANCEL_MS
            ]
            cancelled += 1
    assert cancelled >= 5, "the stream should exercise auto-cancel"


def test_failed_payments_are_retried_and_some_then_succeed(stream: list[SimEvent]) -> None:
    by_order: dict[str, list[str]] = defaultdict(list)
    for ev in stream:
        if ev.topic == "orders":
            by_order[ev.event["order_id"]].append(ev.event["event_type"])
    retried_ok = [k for k in by_order.values() if k[:2] == ["order_created", "payment_failed"]]
    assert any("payment_succeeded" in k for k in retried_ok)
    failed = [e.event for e in stream if e.event["event_type"] == "payment_failed"]
    assert failed and all(e["failure_reason"] for e in failed)


def test_order_amount_is_the_item_total_minus_the_coupon(stream: list[SimEvent]) -> None:
    orders = [e.event for e in stream if e.event["event_type"] == "order_created"]
    assert len(orders) > 50
    with_coupon = 0
    for order in orders:
        total = sum(round(i["price"] * 100) * i["quantity"] for i in order["items"])
        amount = round(order["amount"] * 100)
        if "coupon_code" in order:
            with_coupon += 1
            assert 0 < amount < total
        else:
            assert amount == total
    assert 0.1 < with_coupon / len(orders) < 0.8


def test_refunds_and_tickets_follow_paid_orders(stream: list[SimEvent]) -> None:
    created = {e.event["order_id"] for e in stream if e.event["event_type"] == "order_created"}
    paid = {e.event["order_id"] for e in stream if e.event["event_type"] == "payment_succeeded"}
    # orders of the warm-up (created before the start) may be refunded in the stream too
    refunded = [e.event["order_id"] for e in stream if e.event["event_type"] == "order_refunded"]
    tickets = [e.event["order_id"] for e in stream if e.event["event_type"] == "ticket_opened"]
    assert refunded and tickets
    assert all(o in paid for o in refunded + tickets if o in created)
    assert len(tickets) < 0.1 * len(paid)


def test_dimensions_come_from_the_closed_sets_in_plausible_proportions(
    stream: list[SimEvent],
) -> None:
    clicks = [e.event for e in stream if e.topic == "clicks"]
    channels = Counter(e["channel"] for e in clicks)
    assert set(channels) <= CHANNELS and channels.most_common(1)[0][0] == "app"
    assert {e["page_type"] for e in clicks} <= PAGE_TYPES
    assert {e["traffic_source"] for e in clicks} <= TRAFFIC_SOURCES
    assert {e["region"] for e in clicks} == set(DEFAULT_REGIONS)
    assert {top_category(e["category"]) for e in clicks if "category" in e} <= {
        "apparel", "electronics", "beauty", "home", "food", "baby", "sports", "books"
    }  # fmt: skip
    methods = Counter(e.event["payment_method"] for e in stream if e.topic == "orders")
    assert set(methods) <= PAYMENT_METHODS
    assert methods.most_common(2)[0][0] in ("alipay", "wechat_pay")
    users = {e["user_id"] for e in clicks}
    assert all(u.startswith("u") for u in users) and len(users) <= BASE.users


def test_page_load_times_are_log_normal_around_one_to_two_and_a_half_seconds(
    stream: list[SimEvent],
) -> None:
    loads = [e.event["load_ms"] for e in stream if e.event["event_type"] == "page_view"]
    assert 1000 <= statistics.median(loads) <= 2500
    assert statistics.mean(loads) > statistics.median(loads)  # right-skewed
    assert not any("load_ms" in e.event for e in stream if e.event["event_type"] == "click")


def test_the_base_rate_is_the_event_rate_without_diurnal_shape_and_spike() -> None:
    config = replace(BASE, rate=50, diurnal=False, spike=False, duration_s=20 * 60)
    per_s = sum(1 for _ in generate(config, seed=1)) / config.duration_s
    assert 50 * 0.85 <= per_s <= 50 * 1.15


def test_the_sale_spike_multiplies_the_minute_rate_at_least_twentyfold() -> None:
    spike = DAY + 10 * MINUTE
    config = replace(BASE, rate=20, duration_s=12 * 60, spike_at_ms=spike)
    per_minute = Counter((e.ts - spike) // MINUTE for e in generate(config, seed=5))
    assert per_minute[0] >= 20 * per_minute[-1]
    assert per_minute[1] >= 0.9 * per_minute[0]  # it decays over hours, not minutes


def test_the_spike_defaults_to_the_first_local_midnight_at_or_after_the_start() -> None:
    evening = SimConfig(start_ms=parse_time("2024-11-10T23:30:00+08:00"))
    assert evening.spike_time_ms == parse_time("2024-11-11T00:00:00+08:00")
    midnight = SimConfig(start_ms=parse_time("2024-11-11T00:00:00+08:00"))
    assert midnight.spike_time_ms == midnight.start_ms
    assert SimConfig(start_ms=DAY, spike=False).spike_time_ms is None


def test_the_diurnal_shape_has_mean_one_a_quiet_night_and_an_evening_peak() -> None:
    curve = TrafficCurve(replace(BASE, spike=False))
    midnight = parse_time("2024-11-11T00:00:00+08:00")
    day = [curve.diurnal(midnight + m * MINUTE) for m in range(24 * 60)]
    assert statistics.mean(day) == pytest.approx(1.0, abs=0.01)
    assert curve.diurnal(midnight + 4 * 60 * MINUTE) < 0.3
    assert curve.diurnal(midnight + 21 * 60 * MINUTE) > 1.5


def test_the_spike_decays_over_hours() -> None:
    curve = TrafficCurve(replace(BASE, spike_at_ms=DAY, spike_multiplier=40))
    assert curve.spike(DAY - 1) == 1
    assert curve.spike(DAY + 60_000) > 35
    assert 10 < curve.spike(DAY + 60 * MINUTE) < 25
    assert 1 < curve.spike(DAY + 8 * 60 * MINUTE) < 5


@pytest.mark.parametrize("per_s", [0.05, 3.0, 400.0], ids=["sparse", "moderate", "dense"])
def test_arrivals_follow_the_intensity(per_s: float) -> None:
    seconds = 2000 if per_s < 1 else 200
    times = list(arrivals(lambda ts: per_s, 0, seconds * 1000, random.Random(1)))
    expected = per_s * seconds
    assert abs(len(times) - expected) <= 4 * expected**0.5 + 1
    assert times == sorted(times) and all(0 <= t < seconds * 1000 for t in times)


def test_the_stream_starts_warm_with_sessions_already_in_progress() -> None:
    def first_minute_vs_later(warmup_s: float) -> float:
        config = replace(BASE, diurnal=False, spike=False, duration_s=10 * 60, warmup_s=warmup_s)
        per_minute = Counter((e.ts - config.start_ms) // MINUTE for e in generate(config, seed=2))
        return per_minute[0] / statistics.mean(per_minute[m] for m in range(5, 10))

    assert first_minute_vs_later(600) >= 0.88
    assert first_minute_vs_later(0) <= 0.8  # a cold start ramps up: looks like a drop
