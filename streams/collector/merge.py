"""Merge the beacons of one page load into one ``page_view`` event.

The snippet usually sends one beacon per page load (when the page is hidden), but a page
that is hidden, shown and hidden again sends another with updated INP/CLS, and
``visibilitychange`` and ``pagehide`` can each send one at unload. EVENTS.md wants one
``page_view`` per page load, so beacons are held by page load id for ``settle_s`` after
the first one and merged (a later value of a metric supersedes an earlier one); then the
event is emitted.

Contract:

* ``add(beacon)`` returns ``"new"`` or ``"merged"``; ``"late"`` for a page load emitted
  within the last ``remember`` emitted ones (the beacon is dropped: the event is out, and
  a second event with the same id would be skipped as a duplicate anyway); raises
  ``Overloaded`` when ``max_pending`` page loads are already waiting;
* ``due()`` pops and returns the events whose ``settle_s`` has passed, oldest first;
  ``drain()`` returns all waiting events (shutdown).

``ts`` is the collector's clock when the first beacon arrived, not a browser clock (client
clocks are wrong by minutes often enough) nor the navigation start (a page may be open for
an hour before it reports; the worker's windows would count it as late). ``load_ms`` is
LCP, as EVENTS.md defines it; the context of the first beacon wins.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.collector.beacon import Beacon, preview_event

AddOutcome = Literal["new", "merged", "late"]


class Overloaded(Exception):
    """Too many page loads are waiting to be emitted."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Pending:
    first_seen: float  # monotonic
    ts: int  # epoch ms
    beacon: Beacon
    vitals: dict[str, int | float] = field(default_factory=dict)


class PageLoads:
    """Page loads waiting for their beacons to settle; one asyncio loop owns it."""

    def __init__(
        self,
        region: str,
        settle_s: float = 5.0,
        max_pending: int = 100_000,
        remember: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.region = region
        self.settle_s = settle_s
        self.max_pending = max_pending
        self.remember = remember
        self._clock = clock
        self._wall_ms = wall_clock_ms
        # insertion order = first_seen order, so due page loads are at the front
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._emitted: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, beacon: Beacon) -> AddOutcome:
        key = beacon.page_load_id
        pending = self._pending.get(key)
        if pending is not None:
            pending.vitals.update(beacon.vitals)
            return "merged"
        if key in self._emitted:
            return "late"
        if len(self._pending) >= self.max_pending:
            raise Overloaded(f"{len(self._pending)} page loads waiting")
        self._pending[key] = _Pending(self._clock(), self._wall_ms(), beacon, dict(beacon.vitals))
        return "new"

    def due(self) -> list[dict[str, Any]]:
        cutoff = self._clock() - self.settle_s
        events = []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.first_seen > cutoff:
                break
            events.append(self._emit(key))
        return events

    def drain(self) -> list[dict[str, Any]]:
        return [self._emit(key) for key in list(self._pending)]

    def _emit(self, key: str) -> dict[str, Any]:
        pending = self._pending.pop(key)
        self._emitted[key] = None
        if len(self._emitted) > self.remember:
            self._emitted.popitem(last=False)
        merged = Beacon(pending.beacon.page_load_id, pending.beacon.context, pending.vitals)
        event = preview_event(merged, self.region)
        event["ts"] = pending.ts
        return event
