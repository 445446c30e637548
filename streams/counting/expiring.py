"""A dict whose entries expire by time, at a cost proportional to what expires.

Used for in-memory state keyed by an id that must be forgotten once idle: sessions
(``MemorySessionStore``) and the categories of recent orders (``classify``). Each value
carries its own time (``time_of(value)``, epoch ms) and its key is filed under that
time's minute (``bucket_ms``). :meth:`ExpiringDict.expire` drops whole minutes that end at
or before the cut-off, so an entry lives at most one ``bucket_ms`` past it and expiry
never scans live entries.

**Cap** (``capacity``): a new key that would make the dict larger than ``capacity`` first
evicts the oldest minute of entries (by their time: the least recently active), counted
in :attr:`ExpiringDict.evicted`. Memory stays bounded when expiry cannot keep up (a flood
of new sessions); what an eviction costs is the owner's to document.

Filing is lazy, to keep :meth:`ExpiringDict.set` cheap on the hot path: a key whose time
moves to another minute is filed there too, without being removed from the old minute;
expiry deletes a key only from the minute its current time is in. A key is thus filed at
most once per minute of its life (a 30-minute session: ≤ 31 set entries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringDict(Generic[V]):
    """``key -> value``; :meth:`expire` forgets entries whose time is before a cut-off.

    ``expire(before_ms)`` deletes the entries whose ``time_of(value)`` is before
    ``before_ms`` (those in the minute of ``before_ms`` itself wait for a later call) and
    returns how many it deleted.
    """

    __slots__ = ("_bucket_ms", "_buckets", "_entries", "_time_of", "capacity", "evicted", "get")

    def __init__(
        self, time_of: Callable[[V], int], bucket_ms: int = 60_000, capacity: int | None = None
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._time_of = time_of
        self._bucket_ms = bucket_ms
        self.capacity = capacity
        self.evicted = 0  # entries dropped by the cap, before their time
        self._entries: dict[str, V] = {}
        self._buckets: dict[int, set[str]] = {}
        self.get: Callable[[str], V | None] = self._entries.get

    def set(self, key: str, value: V) -> None:
        entries = self._entries
        old = entries.get(key)
        if old is None and self.capacity is not None and len(entries) >= self.capacity:
            self._evict_oldest()
        entries[key] = value
        bucket = self._time_of(value) // self._bucket_ms
        if old is not None and self._time_of(old) // self._bucket_ms == bucket:
            return
        members = self._buckets.get(bucket)
        if members is None:
            members = self._buckets[bucket] = set()
        members.add(key)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)  # its filings go when their minutes expire

    def items(self) -> Iterator[tuple[str, V]]:
        return iter(list(self._entries.items()))

    def expire(self, before_ms: int) -> int:
        bucket_ms = self._bucket_ms
        limit = before_ms // bucket_ms  # minute b < limit: every time in it < before_ms
        entries = self._entries
        time_of = self._time_of
        deleted = 0
        for bucket in [b for b in self._buckets if b < limit]:
            for key in self._buckets.pop(bucket):
                value = entries.get(key)
                if value is not None and time_of(value) // bucket_ms == bucket:
                    del entries[key]
                    deleted += 1
        return deleted

    def _evict_oldest(self) -> None:
        """Drop the live entries of the oldest minute that holds any."""
        entries = self._entries
        time_of = self._time_of
        while self._buckets:
            bucket = min(self._buckets)
            dropped = 0
            for key in self._buckets.pop(bucket):
                value = entries.get(key)
                if value is not None and time_of(value) // self._bucket_ms == bucket:
                    del entries[key]
                    dropped += 1
            if dropped:
                self.evicted += dropped
                return

    def __len__(self) -> int:
        return len(self._entries)

    def filings(self) -> int:
        """Keys filed under all minutes, live or stale (memory check)."""
        return sum(len(keys) for keys in self._buckets.values())
