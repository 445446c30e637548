"""The event-time replay: scrape ticks, the worker's validation and counting, old data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.backtest.replay import Replay, ReplayStats
from streams.backtest.source import Line, read_lines
from streams.counting.pipeline import Pipeline
from streams.metrics.totals import Totals
from streams.settings import load_settings
from streams.simulation import SimConfig, generate, summarize
from tests.unit.events_factory import make_event

T0 = 1_511_658_000_000  # 2017-11-26 01:00:00 UTC, a multiple of 5 s: old, real-data time
S = 5_000

PAGE_VIEWS = "salewatch_page_views_total"
VIEW = ("app", "search", "detail")


def click(ts: int, n: int, **kw: Any) -> dict[str, Any]:
    return make_event("clicks", ts=ts, event_id=f"e{n}", session_id=f"s{n % 7}", **kw)


def replay(
    lines: list[Line], interval: int = S
) -> tuple[ReplayStats, list[tuple[int, float]], Replay]:
    scrapes: list[tuple[int, float]] = []

    def on_scrape(ts: int, totals: Totals) -> None:
        scrapes.append((ts, totals.get(PAGE_VIEWS, VIEW)))

    r = Replay(load_settings(), interval, on_scrape)
    return r.run(lines), scrapes, r


def lines_of(*events: dict[str, Any]) -> list[Line]:
    return list(read_lines(orjson.dumps(e) for e in events))


def test_scrapes_at_every_tick_with_what_arrived_before_it() -> None:
    stats, scrapes, _ = replay(
        lines_of(click(T0 + 1_000, 1), click(T0 + 7_000, 2), click(T0 + 12_000, 3))
    )
    # first tick: the first event rounded up; last: the first tick after the last event
    assert scrapes == [(T0 + 5_000, 1), (T0 + 10_000, 2), (T0 + 15_000, 3)]
    assert (stats.first_tick_ms, stats.last_tick_ms, stats.ticks) == (T0 + 5_000, T0 + 15_000, 3)
    assert (stats.first_event_ms, stats.last_event_ms) == (T0 + 1_000, T0 + 12_000)


def test_an_event_exactly_on_a_tick_belongs_to_the_next_scrape() -> None:
    _, scrapes, _ = replay(lines_of(click(T0 + 1_000, 1), click(T0 + 5_000, 2)))
    assert scrapes == [(T0 + 5_000, 1), (T0 + 10_000, 2)]


def test_a_gap_is_replayed_as_flat_ticks() -> None:
    _, scrapes, _ = replay(lines_of(click(T0 + 1_000, 1), click(T0 + 61_000, 2)))
    assert [ts for ts, _ in scrapes] == [T0 + k * S for k in range(1, 14)]
    assert [v for _, v in scrapes] == [1] * 12 + [2]


def test_counts_equal_the_pipeline_fed_directly() -> None:
    clicks = [
        make_event("clicks", ts=T0 + i * 700, event_id=f"c{i}", session_id=f"s{i % 13}")
        for i in range(400)
    ]
    orders = [
        make_event(
            "orders", ts=T0 + i * 2_900, event_id=f"o{i}", session_id=f"s{i % 13}", order_id=f"o{i}"
        )
        for i in range(90)
    ]
    _, _, r = replay(lines_of(*sorted(clicks + orders, key=lambda e: e["ts"])))
    direct = Totals()
    pipeline = Pipeline(direct)
    pipeline.process("clicks", clicks, T0)
    pipeline.process("orders", orders, T0)
    for name in (PAGE_VIEWS, "salewatch_funnel_sessions_total", "salewatch_orders_total"):
        assert r.totals.values[name] == direct.values[name], name


def test_old_data_is_judged_against_its_own_time() -> None:
    stats, _, r = replay(lines_of(click(T0 + 1_000, 1), click(T0 + 2_000, 2)))
    assert (stats.events, stats.invalid) == (2, 0)
    assert r.totals.get("salewatch_events_valid_total", ("clicks", "page_view")) == 2


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(click(T0 + 2_000, 9, page_type=None), "wrong_type", id="null-field"),
        pytest.param(
            {k: v for k, v in click(T0 + 2_000, 9).items() if k != "user_id"},
            "missing_field",
            id="missing-field",
        ),
        pytest.param(click(T0 + 90_000_000, 9), "ts_in_future", id="more-than-24h-ahead"),
        pytest.param(click(T0 - 31 * 86_400_000, 9), "ts_too_old", id="older-than-retention"),
    ],
)
def test_invalid_events_are_counted_like_dead_letters(bad: dict[str, Any], reason: str) -> None:
    stats, scrapes, r = replay(lines_of(click(T0 + 1_000, 1), bad, click(T0 + 3_000, 2)))
    assert (stats.events, stats.invalid, dict(stats.invalid_by_reason)) == (2, 1, {reason: 1})
    assert r.totals.get("salewatch_events_invalid_total", ("clicks", reason)) == 1
    assert r.totals.get("salewatch_dead_letters_total", ("clicks",)) == 1
    assert r.totals.get("salewatch_events_received_total", ("clicks",)) == 3
    # a refused event never moves the clock
    assert [ts for ts, _ in scrapes] == [T0 + 5_000]


def test_raw_messages_are_decoded_like_kafka_values() -> None:
    good = click(T0 + 2_000, 2)
    raw_array = orjson.dumps([good, {"event_type": "page_view"}]).decode()
    lines = [
        *lines_of(click(T0 + 1_000, 1)),
        *read_lines([orjson.dumps({"topic": "clicks", "raw": "{not json"})]),
        *read_lines([orjson.dumps({"topic": "clicks", "raw": raw_array})]),
    ]
    stats, _, _ = replay(lines)
    assert stats.events == 2
    assert dict(stats.invalid_by_reason) == {"malformed_json": 1, "missing_field": 1}


def test_raw_messages_before_the_first_event_wait_for_its_clock() -> None:
    lines = [
        *read_lines(
            [orjson.dumps({"topic": "clicks", "raw": orjson.dumps(click(T0 + 500, 1)).decode()})]
        ),
        *lines_of(click(T0 + 1_000, 2)),
    ]
    stats, scrapes, _ = replay(lines)
    assert (stats.events, stats.invalid) == (2, 0)
    assert scrapes == [(T0 + 5_000, 2)]


def test_unroutable_lines_count_under_topic_other() -> None:
    lines = [*lines_of(click(T0 + 1_000, 1)), *read_lines([b"[]", b"{oops"])]
    stats, _, r = replay(lines)
    assert dict(stats.invalid_by_reason) == {"not_an_object": 1, "malformed_json": 1}
    assert r.totals.get("salewatch_events_invalid_total", ("other", "malformed_json")) == 1
    assert r.totals.get("salewatch_events_received_total", ("other",)) == 2


def test_only_bad_lines_give_no_ticks() -> None:
    stats, scrapes, _ = replay([*read_lines([b"{oops"]), *lines_of(click(5, 1, user_id=7))])
    assert scrapes == [] and stats.first_tick_ms is None
    assert (stats.events, stats.invalid) == (0, 2)


def test_lag_is_the_tick_minus_event_time() -> None:
    _, _, r = replay(lines_of(click(T0 + 1_000, 1), click(T0 + 4_900, 2)))
    lag = r.totals.histograms["salewatch_event_lag_seconds"][("clicks",)]
    assert (lag.count, round(lag.sum, 3)) == (2, 4.1)


def test_events_behind_the_clock_beyond_lateness_are_late() -> None:
    lateness = load_settings().allowed_lateness_s * 1000
    events = [
        click(T0 + 1_000, 1),
        click(T0 + 400_000, 2),
        click(T0 + 400_000 - 60_000 - lateness, 3),
    ]
    _, _, r = replay(lines_of(*events))
    assert r.totals.get("salewatch_events_late_total", ("clicks",)) == 1
    assert r.totals.get(PAGE_VIEWS, VIEW) == 2


def test_a_simulated_stream_counts_as_its_ground_truth() -> None:
    """simulate --out lines, invalid messages included: the replay's counts are the
    simulator's own summary (funnel, events, every reject reason)."""
    config = SimConfig(
        rate=40, duration_s=600, start_ms=T0, spike=False, invalid_rate=0.05, users=5_000
    )
    stream = list(generate(config, 11))
    lines = []
    for ev in stream:
        obj = (
            {"topic": ev.topic, **ev.event}
            if ev.raw is None
            else {"topic": ev.topic, "raw": ev.raw.decode()}
        )
        lines.append(orjson.dumps(obj))
    truth = summarize(stream)
    stats, _, r = replay(list(read_lines(lines)))
    assert (stats.events, stats.invalid) == (truth["events"], truth["invalid"])
    assert dict(stats.invalid_by_reason) == truth["invalid_by_reason"]
    funnel = {step: 0.0 for step in truth["funnel"]}
    for (step, _), n in r.totals.values["salewatch_funnel_sessions_total"].items():
        funnel[step] += n
    assert funnel == truth["funnel"]
