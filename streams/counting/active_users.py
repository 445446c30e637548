"""Distinct active users per closed window, and over sliding 5 and 15 minutes.

An active user is a ``user_id`` with at least one ``page_view`` in the window. While a
window is open its users are kept exactly (sets in the window's tally), so the 1-minute
count is exact. When it closes, each channel's users go into a HyperLogLog
(``streams.counting.sketch``) and the sets are dropped; the 5- and 15-minute counts are
merges of the last 5 / 15 one-minute sketches, within the sketch's error bound (0.81 %
relative standard error at the default precision). ``all`` is the union of the channels.

Memory: one sketch per channel for each of the last 15 windows (16 KiB each at the
default precision: ~1.4 MiB), whatever the number of users. Counts are per pipeline
(worker): a user whose sessions went to two workers is counted by both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams.counting.sketch import DEFAULT_PRECISION, HyperLogLog
from streams.metrics import labels as lv
from streams.metrics.defs import ALL_CHANNELS

SPANS_MINUTES = (1, 5, 15)


class ActiveUsers:
    """History of per-channel user sketches of closed windows (at most 15 of them).

    :meth:`add_window` takes a closed window's users by ``(channel, traffic_source)``;
    :meth:`counts` gives, for the window ending a span, the distinct users of every
    channel and ``all`` over 1, 5 and 15 windows (a window with no page view counts 0).
    """

    def __init__(self, size_ms: int, precision: int = DEFAULT_PRECISION) -> None:
        self.size_ms = size_ms
        self.precision = precision
        self._sketches: dict[int, dict[str, HyperLogLog]] = {}
        self._exact: dict[int, dict[str, int]] = {}

    def add_window(self, start_ms: int, users: Mapping[tuple[str, str], set[str]]) -> None:
        """Record a closed window's users; a window added again is merged into the first
        (sketches: their union; the exact 1-window counts: the larger, a lower bound)."""
        by_channel: dict[str, set[str]] = {}
        for (channel, _source), ids in users.items():
            current = by_channel.get(channel)
            if current is None:
                by_channel[channel] = set(ids)
            else:
                current |= ids
        sketches = {}
        for channel, ids in by_channel.items():
            sketch = sketches[channel] = HyperLogLog(self.precision)
            sketch.update(ids)
        exact = {channel: len(ids) for channel, ids in by_channel.items()}
        exact[ALL_CHANNELS] = len(set().union(*by_channel.values()))
        known = self._sketches.get(start_ms)
        if known is not None:  # a window emitted again (a moved partition's catch-up)
            for channel, sketch in known.items():
                found = sketches.get(channel)
                if found is None:
                    sketches[channel] = sketch
                else:
                    found.merge(sketch)
            for channel, n in self._exact[start_ms].items():
                exact[channel] = max(exact.get(channel, 0), n)
        self._sketches[start_ms] = sketches
        self._exact[start_ms] = exact

    def counts(self, newest_start_ms: int) -> dict[int, dict[str, float]]:
        """``{minutes: {channel: users}}`` for the spans ending with window ``newest``."""
        exact = self._exact.get(newest_start_ms, {})
        out: dict[int, dict[str, float]] = {
            1: {channel: float(exact.get(channel, 0)) for channel in _CHANNELS}
        }
        for minutes in SPANS_MINUTES[1:]:
            starts = [newest_start_ms - i * self.size_ms for i in range(minutes)]
            out[minutes] = self._estimate(starts)
        return out

    def forget_before(self, start_ms: int) -> None:
        """Drop windows older than ``start_ms``; keeps memory flat."""
        for old in [s for s in self._sketches if s < start_ms]:
            del self._sketches[old]
            del self._exact[old]

    def __len__(self) -> int:
        return len(self._sketches)

    def _estimate(self, starts: Iterable[int]) -> dict[str, float]:
        merged: dict[str, HyperLogLog] = {}
        for start in starts:
            for channel, sketch in self._sketches.get(start, {}).items():
                current = merged.get(channel)
                if current is None:
                    merged[channel] = sketch.copy()
                else:
                    current.merge(sketch)
        out = {channel: 0.0 for channel in _CHANNELS}
        union = HyperLogLog(self.precision)
        for channel, sketch in merged.items():
            out[channel] = round(sketch.estimate())
            union.merge(sketch)
        out[ALL_CHANNELS] = round(union.estimate())
        return out


_CHANNELS = (*sorted(lv.CHANNELS), ALL_CHANNELS)
