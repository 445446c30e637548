"""A dict whose entries expire by event time, at a cost proportional to what expires.

Used for in-memory state keyed by an id that must be forgotten once idle: sessions
(``MemorySessionStore``) and the categories of recent orders (``classify``). Each entry
is filed under the minute (``bucket_ms``) of its time; :meth:`ExpiringDict.expire` drops
whole buckets that end at or before the cut-off, so an entry lives at most one
``bucket_ms`` past it and expiry never scans live entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringDict(Generic[V]):
    """``key -> value`` with a time per entry; :meth:`expire` forgets entries by time.

    ``set(key, value, time_ms)`` replaces the value and time of ``key``. ``expire(
    before_ms)`` deletes entries whose time is before ``before_ms`` (those in the bucket
    of ``before_ms`` itself wait for a later call) and returns how many it deleted.
    """

    __slots__ = ("_bucket_ms", "_buckets", "_entries")

    def __init__(self, bucket_ms: int = 60_000) -> None:
        self._bucket_ms = bucket_ms
        self._entries: dict[str, tuple[V, int]] = {}
        self._buckets: dict[int, set[str]] = {}

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def set(self, key: str, value: V, time_ms: int) -> None:
        bucket = time_ms // self._bucket_ms
        old = self._entries.get(key)
        self._entries[key] = (value, time_ms)
        if old is not None:
            old_bucket = old[1] // self._bucket_ms
            if old_bucket == bucket:
                return
            self._discard(old_bucket, key)
        members = self._buckets.get(bucket)
        if members is None:
            members = self._buckets[bucket] = set()
        members.add(key)

    def delete(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._discard(old[1] // self._bucket_ms, key)

    def items(self) -> Iterator[tuple[str, V]]:
        return ((key, entry[0]) for key, entry in list(self._entries.items()))

    def expire(self, before_ms: int) -> int:
        limit = before_ms // self._bucket_ms  # bucket b < limit: every time < before_ms
        deleted = 0
        for bucket in [b for b in self._buckets if b < limit]:
            for key in self._buckets.pop(bucket):
                del self._entries[key]
                deleted += 1
        return deleted

    def __len__(self) -> int:
        return len(self._entries)

    def bucket_count(self) -> int:
        return len(self._buckets)

    def _discard(self, bucket: int, key: str) -> None:
        members = self._buckets[bucket]
        members.discard(key)
        if not members:
            del self._buckets[bucket]
