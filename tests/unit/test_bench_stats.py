"""Benchmark arithmetic: percentiles, steady rates (bench/stats.py)."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    percentile,
    ratio,
    steady_cost,
    steady_rate,
    summarize,
    time_reaching,
    value_at,
)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([5.0], 99, 5.0, id="one value is every percentile"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="median interpolates"),
        pytest.param([4.0, 1.0, 3.0, 2.0], 50, 2.5, id="order does not matter"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 0, 1.0, id="p0 is the minimum"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 100, 4.0, id="p100 is the maximum"),
        pytest.param([float(i) for i in range(1, 101)], 99, 99.01, id="p99 of 1..100"),
        pytest.param([float(i) for i in range(1, 101)], 95, 95.05, id="p95 of 1..100"),
    ],
)
def test_percentile_matches_linear_interpolation(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_missing_samples_count_as_infinitely_late() -> None:
    values = [1.0] * 98 + [math.inf] * 2
    assert percentile(values, 50) == 1.0
    assert percentile(values, 99) == math.inf
    assert percentile([math.inf] * 3, 50) == math.inf


def test_percentile_of_nothing_is_nan_and_bad_q_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary() -> None:
    s = summarize([0.1, 0.2, 0.3, 0.4, 1.0])
    assert (s.count, s.p50, s.max) == (5, 0.3, 1.0)
    assert s.p99 == pytest.approx(0.976)


@pytest.mark.parametrize(
    ("samples", "target", "expected"),
    [
        pytest.param([(0.0, 0), (1.0, 100)], 50, 0.5, id="interpolated between samples"),
        pytest.param([(0.0, 0), (1.0, 100), (2.0, 300)], 200, 1.5, id="later interval"),
        pytest.param([(3.0, 500)], 10, 3.0, id="already there at the first sample"),
        pytest.param([(0.0, 0), (1.0, 10)], 11, math.nan, id="never reached"),
    ],
)
def test_time_reaching(samples: list[tuple[float, float]], target: float, expected: float) -> None:
    got = time_reaching(samples, target)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_steady_rate_ignores_start_up_and_drain() -> None:
    # 5 s of group join with nothing consumed, then 1,000 events/s, then a slow tail
    samples = [(0.0, 0), (5.0, 0), *[(5.0 + s, 1000 * s) for s in range(1, 10)], (30.0, 10_000)]
    assert steady_rate(samples, total=10_000) == pytest.approx(1000)


def test_steady_rate_nan_when_unfinished_and_ratio_guards() -> None:
    assert math.isnan(steady_rate([(0.0, 0), (1.0, 10)], total=1000))
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(1.0, 0.0))


def test_value_at_interpolates_and_is_nan_outside() -> None:
    samples = [(0.0, 0.0), (2.0, 10.0)]
    assert value_at(samples, 1.0) == 5.0
    assert value_at(samples, 2.0) == 10.0
    assert math.isnan(value_at(samples, 3.0))
    assert math.isnan(value_at(samples, -1.0))


def test_steady_cost_is_usage_per_event_in_the_steady_window() -> None:
    # 1,000 events/s after a 5 s join; CPU: 3 s of start-up, then 0.5 s per 1,000 events
    progress = [(0.0, 0), (5.0, 0), *[(5.0 + s, 1000 * s) for s in range(1, 11)]]
    usage = [(0.0, 0.0), (5.0, 3.0), *[(5.0 + s, 3.0 + 0.5 * s) for s in range(1, 11)]]
    assert steady_cost(progress, usage, total=10_000) == pytest.approx(0.0005)
