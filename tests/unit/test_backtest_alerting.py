"""Alert state per evaluation step: ``for``, ``keep_firing_for``, as Prometheus 2.42."""

from __future__ import annotations

import pytest

from streams.backtest.alerting import Episode, episodes

STEP = 15_000
STEPS = [k * STEP for k in range(20)]
LABELS = (("alertname", "A"),)


def at(*ks: int) -> list[int]:
    return [k * STEP for k in ks]


def span(first: int, last: int) -> list[int]:
    return at(*range(first, last + 1))


# (present at steps, for, keep_firing_for) -> [(active_at, fired_at, resolved_at)] in steps
CASES = [
    pytest.param(span(2, 5), 0, 0, [(2, 2, 6)], id="for-0-fires-at-once-resolves-when-gone"),
    pytest.param(span(2, 5), 60_000, 0, [], id="pending-3-steps-short-of-for"),
    pytest.param(span(2, 6), 60_000, 0, [(2, 6, 7)], id="fires-exactly-when-for-has-passed"),
    pytest.param(span(2, 19), 60_000, 0, [(2, 6, None)], id="still-firing-at-the-end"),
    pytest.param([*span(2, 5), *span(7, 12)], 60_000, 0, [(7, 11, 13)], id="a-gap-resets-pending"),
    pytest.param(
        [*span(2, 6), *span(8, 12)],
        60_000,
        0,
        [(2, 6, 7), (8, 12, 13)],
        id="a-gap-after-firing-starts-a-new-episode",
    ),
    pytest.param(span(2, 6), 60_000, 30_000, [(2, 6, 9)], id="keep-firing-for-2-steps"),
    pytest.param(
        [*span(2, 6), *at(8), *span(10, 11)],
        60_000,
        30_000,
        [(2, 6, 14)],
        id="keep-firing-count-restarts-when-the-condition-returns",
    ),
    pytest.param([], 0, 0, [], id="never-present"),
]


@pytest.mark.parametrize(("present", "for_ms", "keep_ms", "expected"), CASES)
def test_episodes(
    present: list[int],
    for_ms: int,
    keep_ms: int,
    expected: list[tuple[int, int, int | None]],
) -> None:
    found = episodes(LABELS, STEPS, present, for_ms, keep_ms)
    assert found == [
        Episode(LABELS, a * STEP, f * STEP, None if r is None else r * STEP) for a, f, r in expected
    ]
