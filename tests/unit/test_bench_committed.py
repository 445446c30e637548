"""``bench.committed``: a run's worker CPU per event next to the committed figure."""

from __future__ import annotations

from typing import Any

import pytest

from bench.committed import COMMITTED, versus_committed

FULL = 1_000_000
FIGURE = COMMITTED[FULL].cpu_us_per_event
QUICK = COMMITTED[50_000]


def run(events: int, us: float | None, max_array: int = 1) -> dict[str, Any]:
    worker = {} if us is None else {"worker": {"cpu_us_per_event": us}}
    return {"events": events, "max_array": max_array, "throughput": worker}


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param(
            run(FULL, FIGURE / 2),
            f"worker CPU per event: {FIGURE / 2:.1f} µs; committed {FIGURE:.1f} µs "
            f"({COMMITTED[FULL].where}): -50%",
            id="half the committed figure",
        ),
        pytest.param(
            run(FULL, FIGURE),
            f"worker CPU per event: {FIGURE:.1f} µs; committed {FIGURE:.1f} µs "
            f"({COMMITTED[FULL].where}): +0%",
            id="same",
        ),
        pytest.param(
            run(12_345, 10.0),
            "worker CPU per event: 10.0 µs; no committed figure for this workload "
            "(bench/committed.py)",
            id="a size without a committed figure",
        ),
        pytest.param(
            run(FULL, 10.0, max_array=10),
            "worker CPU per event: 10.0 µs; no committed figure for this workload "
            "(bench/committed.py)",
            id="clicks in arrays",
        ),
        pytest.param(
            {
                "events": 50_000,
                "max_array": 1,
                "throughput": {
                    "worker": {
                        "cpu_us_per_event": 4.4,
                        "cpu_us_per_event_run": QUICK.cpu_us_per_event,
                    }
                },
            },
            f"worker CPU per event, whole run: {QUICK.cpu_us_per_event:.1f} µs; committed "
            f"{QUICK.cpu_us_per_event:.1f} µs ({QUICK.where}): +0%",
            id="quick: the whole run's figure, not the steady window's",
        ),
        pytest.param(run(FULL, None), None, id="no worker run"),
        pytest.param({}, None, id="nothing ran"),
    ],
)
def test_versus_committed(results: dict[str, Any], expected: str | None) -> None:
    assert versus_committed(results) == expected
