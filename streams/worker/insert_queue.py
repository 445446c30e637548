"""Counted batches waiting for ClickHouse, in order, bounded by events.

The worker counts a batch as soon as it is read (live metrics must not wait for the
database) and stores its raw rows afterwards. Between the two, the batch waits here:

* **order**: batches leave in the order they entered, so each partition's stored offsets
  stay a prefix of the partition (what ``streams.worker.recovery`` resumes from) and the offsets
  committed after a store only move forward;
* **bound**: :meth:`put` waits while ``max_events`` events are queued (a single batch
  larger than the bound is still accepted into an empty queue). While ClickHouse is down
  the reader therefore counts up to ``max_events`` further events, then stops reading;
  Kafka holds the rest. Memory stays bounded; nothing is dropped;
* **merging**: :meth:`take` hands the inserter everything queued (up to ``max_events``), so a
  backlog drains in few large inserts once ClickHouse is back;
* **lingering**: with ``linger_s`` > 0, :meth:`take` waits until the oldest queued batch has
  waited ``linger_s``, the queue holds ``max_events``, or someone waits in :meth:`drained`
  (a revocation or a stop must not wait for the linger). Under steady load each insert then
  carries ``linger_s`` of traffic instead of one fetch: ClickHouse makes one part per insert
  and table, and many small parts cost it more CPU in inserts and merges than the rows
  themselves (issue 18, bench/RESULTS.md round 3);
* **failure**: an inserter that dies calls :meth:`fail`; from then on every waiter
  (:meth:`put` on a full queue, :meth:`drained`, :meth:`take`) raises
  :class:`InsertQueueFailed` at once instead of waiting for room that never comes.

Pure asyncio; nothing here knows about Kafka or ClickHouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class InsertQueueFailed(Exception):
    """The inserter died; ``__cause__`` is why. Nothing queued will be stored."""


@dataclass(slots=True)
class Queued(Generic[T]):
    """One read batch: what to store, and how many events it holds."""

    item: T
    events: int
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class InsertQueue(Generic[T]):
    """FIFO of batches between counting and storing; see the module docstring."""

    max_events: int
    on_size: Callable[[int], None] = lambda events: None
    linger_s: float = 0.0
    _items: deque[Queued[T]] = field(default_factory=deque)
    _events: int = 0  # queued or being stored
    _queued_events: int = 0  # queued, not taken
    _flushes: int = 0  # callers waiting in drained(): no lingering
    _in_flight: int = 0  # batches taken and not yet done
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _failed: BaseException | None = None

    def _check(self) -> None:
        if self._failed is not None:
            raise InsertQueueFailed(f"the inserter died: {self._failed!r}") from self._failed

    async def fail(self, exc: BaseException) -> None:
        """The inserter died with ``exc``: wake every waiter, which raises from now on."""
        async with self._changed:
            self._failed = exc
            self._changed.notify_all()

    @property
    def failed(self) -> bool:
        """True once the inserter died (:meth:`fail`)."""
        return self._failed is not None

    @property
    def events(self) -> int:
        """Events queued or being stored."""
        return self._events

    async def put(self, item: T, events: int) -> None:
        """Queue ``item``; waits while the queue holds ``max_events`` events or more.

        Raises :class:`InsertQueueFailed` once the inserter died (:meth:`fail`)."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    self._failed is not None
                    or self._events == 0
                    or self._events + events <= self.max_events
                )
            )
            self._check()
            self._items.append(Queued(item, events))
            self._events += events
            self._queued_events += events
            self.on_size(self._events)
            self._changed.notify_all()

    async def take(self, max_events: int) -> list[Queued[T]]:
        """The oldest batches, at least one, then more while they add up to ``max_events``.

        Waits for a batch, then lingers (module docstring). The caller stores them, then
        passes them to :meth:`done`.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: self._failed is not None or bool(self._items))
            await self._linger(max_events)
            self._check()
            taken = [self._items.popleft()]
            total = taken[0].events
            while self._items and total + self._items[0].events <= max_events:
                total += self._items[0].events
                taken.append(self._items.popleft())
            self._in_flight += len(taken)
            self._queued_events -= total
            return taken

    async def _linger(self, max_events: int) -> None:
        """With the lock held and a batch queued: wait until an insert should start."""
        if self.linger_s <= 0:
            return
        deadline = self._items[0].queued_at + self.linger_s
        while (
            self._failed is None
            and self._flushes == 0
            and self._queued_events < max_events
            and (left := deadline - time.monotonic()) > 0
        ):
            with contextlib.suppress(TimeoutError):
                # Condition.wait re-acquires the lock when the timeout cancels it
                await asyncio.wait_for(self._changed.wait(), left)

    async def done(self, batches: list[Queued[T]]) -> None:
        """The inserter stored ``batches`` (from :meth:`take`): free their room."""
        async with self._changed:
            self._in_flight -= len(batches)
            self._events -= sum(b.events for b in batches)
            self.on_size(self._events)
            self._changed.notify_all()

    async def drained(self) -> None:
        """Wait until every batch put so far has been stored (``done``); raises
        :class:`InsertQueueFailed` once the inserter died."""
        async with self._changed:
            self._flushes += 1
            self._changed.notify_all()  # a lingering take() inserts now
            try:
                await self._changed.wait_for(
                    lambda: self._failed is not None or (not self._items and self._in_flight == 0)
                )
            finally:
                self._flushes -= 1
            self._check()
