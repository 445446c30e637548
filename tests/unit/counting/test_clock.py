"""Window clocks: wall time for live runs, event time (+ idle advance) for replays."""

from __future__ import annotations

import pytest

from streams.counting.clock import EventClock, WallClock


class FakeWall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_wall_clock_ignores_event_time() -> None:
    wall = FakeWall(1000.0)
    clock = WallClock(wall)
    clock.observe(5_000_000_000_000)
    assert clock.now_ms() == 1_000_000


@pytest.mark.parametrize(
    ("observed", "wall_advance_s", "expected"),
    [
        pytest.param([], 0, 0, id="nothing seen: no window is due"),
        pytest.param([60_000], 0, 60_000, id="newest event time"),
        pytest.param([60_000, 30_000], 0, 60_000, id="older event does not move it back"),
        pytest.param([60_000, 90_000], 0, 90_000, id="newer event moves it forward"),
        pytest.param([60_000], 5, 65_000, id="idle: advances with wall time"),
    ],
)
def test_event_clock(observed: list[int], wall_advance_s: float, expected: int) -> None:
    wall = FakeWall(1_000_000.0)
    clock = EventClock(wall)
    for ts in observed:
        clock.observe(ts)
    wall.t += wall_advance_s
    assert clock.now_ms() == expected
