"""HyperLogLog: error within the documented bound, merges equal unions, stable hashing."""

from __future__ import annotations

import random

import pytest

from streams.counting.sketch import (
    HyperLogLog,
    _bytewise_max,
    relative_standard_error,
)

BOUND = 3 * relative_standard_error()  # 3σ = 2.4 % at the default precision


@pytest.mark.parametrize(
    "n",
    [
        pytest.param(1, id="1 user"),
        pytest.param(100, id="100 users"),
        pytest.param(1_000, id="1k users"),
        pytest.param(10_000, id="10k users"),
        pytest.param(40_000, id="40k users (old HLL's mid-range bias zone)"),
        pytest.param(100_000, id="100k users"),
    ],
)
def test_error_within_bound(n: int) -> None:
    sketch = HyperLogLog()
    sketch.update(f"user-{i}" for i in range(n))
    assert abs(sketch.estimate() - n) <= BOUND * n


@pytest.mark.parametrize("prefix", ["u", "device:", "13800138"])
def test_error_within_bound_on_100k_users_of_other_id_shapes(prefix: str) -> None:
    sketch = HyperLogLog()
    sketch.update(f"{prefix}{i:09d}" for i in range(100_000))
    assert abs(sketch.estimate() - 100_000) <= BOUND * 100_000


def test_empty_sketch_estimates_zero_and_repeats_do_not_count() -> None:
    sketch = HyperLogLog()
    assert sketch.estimate() == 0
    for _ in range(1000):
        sketch.add("same-user")
    assert round(sketch.estimate()) == 1


def test_merge_equals_sketch_of_union() -> None:
    a, b, union = HyperLogLog(), HyperLogLog(), HyperLogLog()
    a.update(f"u{i}" for i in range(0, 60_000))
    b.update(f"u{i}" for i in range(40_000, 100_000))
    union.update(f"u{i}" for i in range(100_000))

    merged = a.copy()
    merged.merge(b)

    assert merged.estimate() == union.estimate()
    assert abs(merged.estimate() - 100_000) <= BOUND * 100_000
    assert abs(a.estimate() - 60_000) <= BOUND * 60_000, "copy leaves the original alone"


def test_estimate_is_the_same_in_every_process_and_order() -> None:
    # BLAKE2b, not hash(): pinned across runs and PYTHONHASHSEEDs, so a backtest replay
    # gives exactly the live numbers
    forward, backward = HyperLogLog(), HyperLogLog()
    forward.update(f"user-{i}" for i in range(1000))
    backward.update(f"user-{i}" for i in reversed(range(1000)))
    assert round(forward.estimate(), 3) == round(backward.estimate(), 3) == PINNED_1000


PINNED_1000 = 1005.25


def test_bytewise_max_matches_naive_max() -> None:
    rng = random.Random(7)
    a = bytes(rng.randrange(52) for _ in range(4096))
    b = bytes(rng.randrange(52) for _ in range(4096))
    assert _bytewise_max(a, b) == bytes(map(max, a, b))


@pytest.mark.parametrize("precision", [3, 19])
def test_rejects_precision_out_of_range(precision: int) -> None:
    with pytest.raises(ValueError, match="precision"):
        HyperLogLog(precision)


def test_rejects_merging_different_precisions() -> None:
    with pytest.raises(ValueError, match="precision"):
        HyperLogLog(12).merge(HyperLogLog(14))
