"""Event-time tumbling windows with an allowed lateness, closed by a clock, not by events.

A window covers ``[start, start + size_ms)`` of event time (``ts`` in epoch ms); an event at
exactly ``start + size_ms`` belongs to the next window. A window *closes* when the clock
reaches ``start + size_ms + lateness_ms``: :meth:`TumblingWindows.close` returns it then
and forgets it, whether or not any later event has arrived, so memory holds only the
windows still open (``(size + lateness) / size + 1`` in steady state, plus any opened by
events ahead of the clock).

The clock is whatever the caller says "now" is (the worker passes the wall clock, the
backtest event time); it never goes back: a smaller ``now_ms`` than one already seen is
ignored. An event is *late* when its window has closed by the clock, i.e. when
``start + size_ms + lateness_ms <= clock``, whether or not :meth:`close` has run yet, so
that which events count does not depend on when the timer fires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

A = TypeVar("A")

DEFAULT_SIZE_MS = 60_000
DEFAULT_LATENESS_MS = 120_000


class TumblingWindows(Generic[A]):
    """Open windows keyed by start (epoch ms), each holding an accumulator made by ``new``.

    Contract: :meth:`open_from` gives the first window start that still accepts events at a
    clock; :meth:`get` returns (creating it) the accumulator of an open window; :meth:`close`
    returns ``(start, accumulator)`` of every window due at the clock, oldest first, exactly
    once. Asking for a closed window raises ``ValueError``: callers check lateness first.
    """

    def __init__(
        self,
        new: Callable[[], A],
        size_ms: int = DEFAULT_SIZE_MS,
        lateness_ms: int = DEFAULT_LATENESS_MS,
    ) -> None:
        if size_ms <= 0 or lateness_ms < 0:
            raise ValueError("size_ms must be > 0 and lateness_ms >= 0")
        self.size_ms = size_ms
        self.lateness_ms = lateness_ms
        self._new = new
        self._open: dict[int, A] = {}
        self._clock = -(1 << 62)

    def start_of(self, ts_ms: int) -> int:
        """Start of the window holding event time ``ts_ms``."""
        return ts_ms - ts_ms % self.size_ms

    def open_from(self, now_ms: int) -> int:
        """Advance the clock to ``now_ms``; return the oldest window start still open.

        Events whose window start is below this are late.
        """
        if now_ms > self._clock:
            self._clock = now_ms
        # window s is closed iff s + size + lateness <= clock
        return self.start_of(self._clock - self.size_ms - self.lateness_ms) + self.size_ms

    def get(self, start_ms: int) -> A:
        """The accumulator of the open window starting at ``start_ms`` (created if new)."""
        acc = self._open.get(start_ms)
        if acc is None:
            if start_ms < self.open_from(self._clock):
                raise ValueError(f"window {start_ms} is closed")
            acc = self._open[start_ms] = self._new()
        return acc

    def close(self, now_ms: int) -> list[tuple[int, A]]:
        """Remove and return every window closed at ``now_ms``, oldest first."""
        first_open = self.open_from(now_ms)
        due = sorted(start for start in self._open if start < first_open)
        return [(start, self._open.pop(start)) for start in due]

    def newest_closed(self) -> int:
        """Start of the newest window that is closed at the current clock."""
        return self.open_from(self._clock) - self.size_ms

    def __len__(self) -> int:
        return len(self._open)
