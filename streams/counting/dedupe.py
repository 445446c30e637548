"""Recently seen event ids, to skip an event delivered twice.

EVENTS.md: two events with the same ``event_id`` are the same event delivered twice
(producer retries, an SDK re-sending a buffer, a redelivery after a rebalance). The raw
tables collapse them (ReplacingMergeTree by ``event_id``); live counting must not count
them twice either, but cannot remember every id of a sale day.

Bound: :class:`RecentIds` remembers the last ``capacity`` distinct ids it was shown (per
pipeline, i.e. per worker), so a duplicate is caught if fewer than ``capacity`` other
events came between the two deliveries: with the default 200,000 that is ~8 s at 25k
events/s per worker, minutes at ordinary rates. Memory: ~60 bytes per id (the 64-bit
``hash()`` of the id in a set and a deque, not the string), ~12 MB by default. Two
different ids collide with probability ~capacity / 2**64 per event: negligible. Older
duplicates are counted twice live; the funnel cannot be (a step is counted once per
session), and the raw tables still hold the event once.

The ids never leave the process, so Python's per-process randomised ``hash()`` is fine.
"""

from __future__ import annotations

from collections import deque

DEFAULT_CAPACITY = 200_000


class RecentIds:
    """A first-in-first-out set of the last ``capacity`` event ids.

    :meth:`seen` returns ``True`` for an id already among the remembered ones, otherwise
    remembers it (forgetting the oldest beyond ``capacity``) and returns ``False``.
    """

    __slots__ = ("_order", "_set", "capacity")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._set: set[int] = set()
        self._order: deque[int] = deque()

    def seen(self, event_id: str) -> bool:
        h = hash(event_id)
        if h in self._set:
            return True
        self._set.add(h)
        self._order.append(h)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())
        return False

    def __len__(self) -> int:
        return len(self._order)
