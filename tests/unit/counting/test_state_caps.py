"""Caps on the worker's in-memory state, their gauges, and what happens at a cap:
sessions and order categories forget their least recently active minute early (counted),
the dedupe memory forgets its oldest id (by design)."""

from __future__ import annotations

import pytest

from streams.counting.expiring import ExpiringDict
from streams.counting.pipeline import Pipeline
from streams.metrics.totals import Totals
from tests.unit.events_factory import make_event

T0 = 1_731_283_200_000  # a window start
MIN = 60_000


def test_a_capped_dict_evicts_its_oldest_minute_for_a_new_key() -> None:
    d: ExpiringDict[int] = ExpiringDict(lambda ts: ts, capacity=4)
    d.set("a", T0)
    d.set("b", T0 + 1)
    d.set("c", T0 + MIN)
    d.set("d", T0 + 2 * MIN)
    d.set("a", T0 + 3 * MIN)  # an existing key moves on: no eviction
    assert len(d) == 4 and d.evicted == 0
    d.set("e", T0 + 3 * MIN)  # full: the oldest minute with live entries ("b") goes
    assert sorted(k for k, _ in d.items()) == ["a", "c", "d", "e"]
    assert d.evicted == 1
    d.set("f", T0 + 4 * MIN)
    assert d.get("c") is None and len(d) == 4 and d.evicted == 2


def test_an_uncapped_dict_never_evicts() -> None:
    d: ExpiringDict[int] = ExpiringDict(lambda ts: ts)
    for i in range(10_000):
        d.set(str(i), T0 + i)
    assert len(d) == 10_000 and d.evicted == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ExpiringDict(lambda ts: ts, capacity=0)


def clicks(n: int, start: int, step_ms: int, tag: str) -> list[dict[str, object]]:
    return [
        make_event(
            "clicks",
            event_id=f"{tag}e{i}",
            session_id=f"{tag}{i}",
            ts=start + i * step_ms,
            page_type="home",
        )
        for i in range(n)
    ]


def visits_of(totals: Totals) -> float:
    series = totals.values.get("salewatch_funnel_sessions_total", {})
    return sum(v for labels, v in series.items() if labels[0] == "visit")


def test_sessions_beyond_the_cap_are_forgotten_and_counted_again_as_visits() -> None:
    """The documented cost of the cap: a forgotten session's next event is a new visit."""
    totals = Totals()
    pipeline = Pipeline(totals, max_sessions=1000, dedupe_capacity=10_000)
    pipeline.process("clicks", clicks(1000, T0, 10, "s"), T0)
    pipeline.process("clicks", clicks(500, T0 + MIN, 10, "t"), T0 + MIN)
    pipeline.close_windows(T0 + MIN)
    assert totals.get("salewatch_state_entries", ("sessions",)) <= 1000
    assert totals.get("salewatch_state_capacity", ("sessions",)) == 1000
    evicted = totals.get("salewatch_state_evictions_total", ("sessions",))
    assert evicted >= 500
    # a forgotten session comes back: a second visit, where no cap counts one
    visits = visits_of(totals)
    back = [
        make_event("clicks", event_id="back", session_id="s0", ts=T0 + MIN + 6000, page_type="home")
    ]
    pipeline.process("clicks", back, T0 + MIN)
    assert visits_of(totals) == visits + 1


def test_state_gauges_report_every_kind_and_dedupe_stays_bounded() -> None:
    totals = Totals()
    pipeline = Pipeline(totals, dedupe_capacity=1000, max_order_categories=1000)
    pipeline.process("clicks", clicks(3000, T0, 1, "d"), T0)
    pipeline.close_windows(T0)
    assert totals.get("salewatch_state_entries", ("dedupe_ids",)) == 1000
    assert totals.get("salewatch_state_capacity", ("dedupe_ids",)) == 1000
    assert totals.get("salewatch_state_entries", ("order_categories",)) == 0
    assert totals.get("salewatch_state_capacity", ("order_categories",)) == 1000
    assert totals.get("salewatch_state_evictions_total", ("dedupe_ids",)) == 0
