"""The committed CPU per event of one worker, and a run's figure next to it.

``salewatch bench`` (``--quick`` too) ends with one line comparing the worker's CPU µs per
event with the figure committed in ``bench/RESULTS.md`` for the same workload, so that a
regression shows in one command. Informative only: nothing fails on it (not part of CI),
since the machine is shared and a run moves by ±15 %.

The figure depends on the run's size, so each size has its own committed figure; a size
without one prints the run's figure alone. Large runs compare the steady-window figure
of the tables (10–90 % of the events stored); ``--quick`` (50k events) compares the CPU
of the whole run (worker ready → every event stored) instead: its events are stored in
two or three inserts of up to 20,000 rows, so the steady window starts after most of the
reading and counting and missed most of the CPU (quick runs printed 4–11 µs per event).
Update ``COMMITTED`` together with ``bench/RESULTS.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Committed:
    """One committed figure: 1 worker as shipped, one event per message."""

    cpu_us_per_event: float
    where: str  # the run it comes from (commit, date)
    measure: str = "cpu_us_per_event"  # or "cpu_us_per_event_run" (whole run)


# events of the pre-produced copy → the committed figure (``max_array`` 1)
COMMITTED: dict[int, Committed] = {
    1_000_000: Committed(33.6, "bench/RESULTS.md, issue 8, 7d17170"),
    300_000: Committed(
        17.4, "bench/RESULTS.md, issue 18 round 2b, 4f11e5b, median of 9 rounds in 3 runs"
    ),
    50_000: Committed(
        15.4, "bench/RESULTS.md, issue 18, --quick, 2026-12-03", "cpu_us_per_event_run"
    ),
}


def versus_committed(results: dict[str, Any]) -> str | None:
    """``worker CPU per event: X µs; committed Y µs (where): ±Z %``, or None without a
    worker run in ``results``."""
    worker = results.get("throughput", {}).get("worker") or {}
    if worker.get("cpu_us_per_event") is None:
        return None
    events, max_array = results.get("events", 0), results.get("max_array", 1)
    committed = COMMITTED.get(events) if max_array <= 1 else None
    if committed is None or worker.get(committed.measure) is None:
        return (
            f"worker CPU per event: {worker['cpu_us_per_event']:.1f} µs; no committed figure "
            "for this workload (bench/committed.py)"
        )
    measured = worker[committed.measure]
    whole = ", whole run" if committed.measure == "cpu_us_per_event_run" else ""
    change = measured / committed.cpu_us_per_event - 1
    return (
        f"worker CPU per event{whole}: {measured:.1f} µs; committed "
        f"{committed.cpu_us_per_event:.1f} µs ({committed.where}): {change:+.0%}"
    )
