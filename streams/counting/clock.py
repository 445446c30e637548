"""The clock that closes event-time windows.

``WallClock`` (live default): a window closes when the wall clock passes its end plus the
allowed lateness, whether or not later events arrive.

``EventClock`` (replays of past data through a live worker, drills, tests): time is the
newest event time seen, advanced by the wall time elapsed since that event arrived, so a
replay closes its windows as its own event time moves, and the last windows still close
(after size + lateness of wall time) when the replay stops. A single event far in the
future would move this clock forward for everyone, so it is not the live default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

ClockKind = Literal["wall", "event"]


class WindowClock(Protocol):
    def observe(self, newest_event_ms: int) -> None:
        """Tell the clock the newest event time of a batch."""

    def now_ms(self) -> int:
        """The current time for closing windows, epoch ms."""


class WallClock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall

    def observe(self, newest_event_ms: int) -> None:
        pass

    def now_ms(self) -> int:
        return int(self.wall() * 1000)


class EventClock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.newest_ms: int | None = None
        self.seen_at_ms = 0

    def observe(self, newest_event_ms: int) -> None:
        if self.newest_ms is None or newest_event_ms > self.newest_ms:
            self.newest_ms = newest_event_ms
            self.seen_at_ms = int(self.wall() * 1000)

    def now_ms(self) -> int:
        wall_ms = int(self.wall() * 1000)
        if self.newest_ms is None:
            return 0  # nothing seen: no window can be due
        return self.newest_ms + (wall_ms - self.seen_at_ms)


def make_clock(kind: ClockKind) -> WindowClock:
    return EventClock() if kind == "event" else WallClock()
