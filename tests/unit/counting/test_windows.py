"""Event-time tumbling windows: boundaries, allowed lateness, closing on the clock."""

from __future__ import annotations

import pytest

from streams.counting.windows import TumblingWindows

MIN = 60_000


def windows(lateness_ms: int = 2 * MIN) -> TumblingWindows[list[int]]:
    return TumblingWindows(list, size_ms=MIN, lateness_ms=lateness_ms)


@pytest.mark.parametrize(
    ("ts", "start"),
    [
        pytest.param(0, 0, id="first ms of a window"),
        pytest.param(59_999, 0, id="59.999 s is still the first window"),
        pytest.param(60_000, 60_000, id="60.000 s starts the next window"),
        pytest.param(60_001, 60_000, id="60.001 s"),
        pytest.param(1_731_283_259_999, 1_731_283_200_000, id="real epoch ms"),
    ],
)
def test_window_boundaries(ts: int, start: int) -> None:
    assert windows().start_of(ts) == start


@pytest.mark.parametrize(
    ("lateness_ms", "ts", "clock", "late"),
    [
        pytest.param(2 * MIN, 59_999, 179_999, False, id="within lateness: 1 ms before close"),
        pytest.param(2 * MIN, 59_999, 180_000, True, id="after lateness: window closed"),
        pytest.param(2 * MIN, 60_000, 180_000, False, id="next window still open"),
        pytest.param(2 * MIN, 0, 0, False, id="on time"),
        pytest.param(0, 59_999, 59_999, False, id="no lateness: open until its end"),
        pytest.param(0, 59_999, 60_000, True, id="no lateness: closed at its end"),
        pytest.param(5 * MIN, 0, 6 * MIN - 1, False, id="configured lateness 5 min"),
    ],
)
def test_late_iff_window_end_plus_lateness_reached(
    lateness_ms: int, ts: int, clock: int, late: bool
) -> None:
    w = windows(lateness_ms)
    assert (w.start_of(ts) < w.open_from(clock)) is late


def test_window_closes_on_the_clock_without_a_later_event() -> None:
    w = windows()
    w.get(0).append(1)
    w.get(MIN).append(2)

    assert w.close(179_999) == []
    assert w.close(180_000) == [(0, [1])]
    assert w.close(180_000) == [], "a window is returned once"
    assert w.close(10 * MIN) == [(MIN, [2])]
    assert len(w) == 0


def test_close_returns_every_due_window_oldest_first() -> None:
    w = windows()
    for start in (3 * MIN, 0, MIN):
        w.get(start).append(start)
    assert [start for start, _ in w.close(100 * MIN)] == [0, MIN, 3 * MIN]


def test_clock_never_goes_back() -> None:
    w = windows()
    assert w.open_from(10 * MIN) == 8 * MIN
    assert w.open_from(0) == 8 * MIN, "an older now is ignored"
    with pytest.raises(ValueError, match="closed"):
        w.get(7 * MIN)


def test_newest_closed_is_the_window_before_the_first_open_one() -> None:
    w = windows()
    w.open_from(180_000)
    assert w.newest_closed() == 0


@pytest.mark.parametrize(
    ("size_ms", "lateness_ms"),
    [pytest.param(0, 0, id="zero size"), pytest.param(MIN, -1, id="negative lateness")],
)
def test_rejects_bad_configuration(size_ms: int, lateness_ms: int) -> None:
    with pytest.raises(ValueError):
        TumblingWindows(list, size_ms, lateness_ms)
