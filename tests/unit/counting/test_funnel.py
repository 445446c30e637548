"""Sessions and the funnel: steps once per session, implied steps, out-of-order events,
the 30-minute boundary and session expiry."""

from __future__ import annotations

import pytest

from streams.counting.funnel import (
    CART,
    CHECKOUT,
    DETAIL,
    NO_STEP,
    PAID,
    SESSION_TIMEOUT_MS,
    VISIT,
    MemorySessionStore,
    Session,
    SessionTracker,
)
from streams.counting.tally import Tally
from streams.metrics.defs import FUNNEL_STEPS

MIN = 60_000
STEP = {
    "click": NO_STEP,
    "view": VISIT,
    "detail": DETAIL,
    "cart": CART,
    "checkout": CHECKOUT,
    "paid": PAID,
}


def run(events: list[tuple[str, int]], timeout_ms: int = SESSION_TIMEOUT_MS) -> dict[str, int]:
    """Feed one session's events (kind, ts) in arrival order; counts per step + visits."""
    tally = Tally()
    tracker = SessionTracker(MemorySessionStore(), timeout_ms)
    for kind, ts in events:
        tracker.touch("s-1", "app", "ads", ts, STEP[kind], tally)
        tracker.flush()
    counts = {step: tally.funnel.get((step, "app"), 0) for step in FUNNEL_STEPS}
    counts["visits"] = tally.visits.get(("app", "ads"), 0)
    return counts


def steps(visit: int, detail: int, cart: int, checkout: int, paid: int) -> dict[str, int]:
    return {
        "visit": visit,
        "detail": detail,
        "cart": cart,
        "checkout": checkout,
        "paid": paid,
        "visits": visit,
    }


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [("view", 0), ("detail", 1), ("cart", 2), ("checkout", 3), ("paid", 4)],
            steps(1, 1, 1, 1, 1),
            id="full path in order",
        ),
        pytest.param([("view", 0), ("view", 1), ("view", 2)], steps(1, 0, 0, 0, 0), id="one visit"),
        pytest.param([("click", 0)], steps(0, 0, 0, 0, 0), id="a click alone is no step"),
        pytest.param(
            [("checkout", 0)], steps(1, 1, 1, 1, 0), id="deep link to checkout implies earlier"
        ),
        pytest.param([("paid", 0)], steps(1, 1, 1, 1, 1), id="paid alone implies all"),
        pytest.param(
            [("cart", 5), ("view", 1), ("detail", 2)],
            steps(1, 1, 1, 0, 0),
            id="out of order: earlier steps arrive after cart, nothing twice",
        ),
        pytest.param(
            [("paid", 10), ("checkout", 5), ("cart", 3)],
            steps(1, 1, 1, 1, 1),
            id="out of order: reverse arrival",
        ),
        pytest.param(
            [("view", 0), ("detail", 1), ("detail", 1), ("cart", 2), ("cart", 2)],
            steps(1, 1, 1, 0, 0),
            id="the same event twice counts once",
        ),
        pytest.param(
            [("view", 0), ("view", 29 * MIN + 59_000)],
            steps(1, 0, 0, 0, 0),
            id="gap 29:59 continues the session",
        ),
        pytest.param(
            [("view", 0), ("view", 29 * MIN + 59_999)],
            steps(1, 0, 0, 0, 0),
            id="gap 29:59.999 continues the session",
        ),
        pytest.param(
            [("view", 0), ("view", 30 * MIN)],
            steps(2, 0, 0, 0, 0),
            id="gap 30:00.000 starts a new session",
        ),
        pytest.param(
            [("view", 0), ("view", 30 * MIN + 1000)],
            steps(2, 0, 0, 0, 0),
            id="gap 30:01 starts a new session",
        ),
        pytest.param(
            [("view", 0), ("cart", 20 * MIN), ("view", 45 * MIN)],
            steps(1, 1, 1, 0, 0),
            id="the gap is measured from the last event, not the first",
        ),
        pytest.param(
            [("view", 0), ("cart", 31 * MIN), ("view", 1 * MIN)],
            steps(2, 1, 1, 0, 0),
            id="out of order event never starts a new session",
        ),
        pytest.param(
            [("view", 40 * MIN), ("view", 0)],
            steps(1, 0, 0, 0, 0),
            id="an event 40 min older than the session is still out of order",
        ),
        pytest.param(
            [("checkout", 0), ("view", 31 * MIN), ("paid", 32 * MIN)],
            steps(2, 2, 2, 2, 1),
            id="a new session starts from no step",
        ),
    ],
)
def test_funnel(events: list[tuple[str, int]], expected: dict[str, int]) -> None:
    assert run(events) == expected


def test_visit_counts_under_the_session_channel_and_starting_source() -> None:
    tally = Tally()
    tracker = SessionTracker(MemorySessionStore())
    tracker.touch("s", "web", "search", 0, NO_STEP, tally)  # click first: session is web
    tracker.touch("s", "app", "email", 1, VISIT, tally)
    tracker.touch("s", "h5", "other", 2, PAID, tally)
    assert tally.visits == {("web", "email"): 1}
    assert tally.funnel == {(step, "web"): 1 for step in FUNNEL_STEPS}


def test_session_state_tracks_first_and_last_seen() -> None:
    store = MemorySessionStore()
    tracker = SessionTracker(store)
    for ts in (5_000, 1_000, 9_000, 7_000):
        tracker.touch("s", "app", "ads", ts, VISIT, Tally())
    tracker.flush()
    assert store.get("s") == Session(VISIT, "app", 1_000, 9_000)


class RecordingStore(MemorySessionStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def set(self, session_id: str, session: Session) -> None:
        self.writes.append(session_id)
        super().set(session_id, session)


def test_each_touched_session_is_written_once_per_flush() -> None:
    store = RecordingStore()
    tracker = SessionTracker(store)
    for ts in range(100):
        tracker.touch("a", "app", "ads", ts, VISIT, Tally())
        tracker.touch("b", "app", "ads", ts, CART, Tally())
    assert store.writes == []
    tracker.flush()
    assert sorted(store.writes) == ["a", "b"]
    tracker.touch("a", "app", "ads", 50, VISIT, Tally())  # changes nothing
    tracker.flush()
    assert sorted(store.writes) == ["a", "b"], "an unchanged session is not written again"


# ------------------------------------------------------------------ expiry


def test_tracker_expires_sessions_idle_for_timeout_plus_grace() -> None:
    store = MemorySessionStore()
    tracker = SessionTracker(store, grace_ms=3 * MIN)
    tracker.touch("old", "app", "ads", 0, VISIT, Tally())
    tracker.touch("new", "app", "ads", 10 * MIN, VISIT, Tally())

    assert tracker.expire(33 * MIN - 1) == 0
    assert tracker.expire(34 * MIN) == 1, "within one bucket (minute) of becoming idle enough"
    assert store.get("old") is None
    assert store.get("new") is not None
    assert tracker.expire(10 * MIN + 34 * MIN) == 1
    assert len(store) == 0


def test_memory_store_moves_a_session_between_buckets() -> None:
    store = MemorySessionStore()
    store.set("s", Session(VISIT, "app", 0, 0))
    store.set("s", Session(VISIT, "app", 0, 50 * MIN))
    assert store.expire_idle(10 * MIN) == 0, "filed under its new last_seen"
    store.delete("s")
    store.delete("s")
    assert len(store) == 0
    assert store.expire_idle(100 * MIN) == 0


def test_expiry_runs_at_most_once_a_minute() -> None:
    store = MemorySessionStore()
    tracker = SessionTracker(store)
    assert tracker.expire(0) == 0
    store.set("s", Session(VISIT, "app", 0, 0))
    assert tracker.expire(40 * MIN) == 1
    store.set("t", Session(VISIT, "app", 0, 0))
    assert tracker.expire(40 * MIN + 59_999) == 0, "too soon"
    assert tracker.expire(41 * MIN) == 1
