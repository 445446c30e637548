"""streams.worker.insert_queue: order, the events bound, merging, draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from streams.worker.insert_queue import InsertQueue

TICK = 0.01


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


async def blocked(aw: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start ``aw`` and let it run until it waits."""
    task = asyncio.create_task(aw)
    await asyncio.sleep(TICK)
    return task


def test_batches_leave_in_the_order_they_entered_and_sizes_are_reported() -> None:
    sizes: list[int] = []

    async def scenario() -> list[str]:
        queue: InsertQueue[str] = InsertQueue(100, on_size=sizes.append)
        for name, events in [("a", 10), ("b", 20), ("c", 30)]:
            await queue.put(name, events)
        taken = await queue.take(max_events=1000)
        await queue.done(taken)
        return [q.item for q in taken]

    assert run(scenario()) == ["a", "b", "c"]
    assert sizes == [10, 30, 60, 0]


@pytest.mark.parametrize(
    ("sizes", "max_events", "first_take"),
    [
        ([10, 20, 30], 30, ["0", "1"]),  # up to the limit
        ([10, 20, 30], 29, ["0"]),  # 10 + 20 would exceed it
        ([50, 1, 1], 10, ["0"]),  # one batch over the limit is still taken alone
        ([0, 0, 5], 5, ["0", "1", "2"]),  # batches without events ride along
    ],
)
def test_take_merges_the_oldest_batches_up_to_max_events(
    sizes: list[int], max_events: int, first_take: list[str]
) -> None:
    async def scenario() -> list[str]:
        queue: InsertQueue[str] = InsertQueue(1000)
        for i, events in enumerate(sizes):
            await queue.put(str(i), events)
        return [q.item for q in await queue.take(max_events)]

    assert run(scenario()) == first_take


def test_put_waits_while_full_until_the_inserter_frees_room() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        queue: InsertQueue[str] = InsertQueue(max_events=100)
        await queue.put("a", 60)
        await queue.put("b", 40)  # exactly full
        third = await blocked(queue.put("c", 1))
        waited = not third.done()
        taken = await queue.take(max_events=60)  # "a" is being stored: still counts
        await asyncio.sleep(TICK)
        still_waiting = not third.done()
        await queue.done(taken)
        await asyncio.wait_for(third, 1)
        return waited, still_waiting, queue.events

    assert run(scenario()) == (True, True, 41)


def test_a_batch_larger_than_the_bound_enters_an_empty_queue() -> None:
    async def scenario() -> int:
        queue: InsertQueue[str] = InsertQueue(max_events=10)
        await queue.put("huge", 500)
        return queue.events

    assert run(scenario()) == 500


def test_take_waits_for_a_batch() -> None:
    async def scenario() -> list[str]:
        queue: InsertQueue[str] = InsertQueue(10)
        taker = await blocked(queue.take(10))
        assert not taker.done()
        await queue.put("late", 1)
        return [q.item for q in await asyncio.wait_for(taker, 1)]

    assert run(scenario()) == ["late"]


def test_drained_waits_for_batches_in_flight_including_empty_ones() -> None:
    async def scenario() -> list[str]:
        queue: InsertQueue[str] = InsertQueue(10)
        steps: list[str] = []
        await queue.put("commit-only", 0)  # no rows, but offsets to commit
        drained = await blocked(queue.drained())
        taken = await queue.take(10)
        await asyncio.sleep(TICK)
        steps.append("taken" if not drained.done() else "drained too early")
        await queue.done(taken)
        await asyncio.wait_for(drained, 1)
        steps.append("drained")
        return steps

    assert run(scenario()) == ["taken", "drained"]


@pytest.mark.parametrize("waiter", ["put", "drained", "take"])
def test_a_failed_queue_wakes_every_waiter_which_raises(waiter: str) -> None:
    """The inserter died: whoever waits on the queue raises at once, nobody hangs."""
    from streams.worker.insert_queue import InsertQueueFailed

    async def scenario() -> BaseException | None:
        q: InsertQueue[str] = InsertQueue(max_events=10)
        if waiter != "take":
            await q.put("full", 10)
        waits = {"put": lambda: q.put("more", 5), "drained": q.drained, "take": lambda: q.take(10)}
        task = await blocked(waits[waiter]())
        assert not task.done(), "should wait before the failure"
        await q.fail(RuntimeError("inserter crashed"))
        await asyncio.sleep(TICK)
        assert task.done()
        return task.exception()

    exc = run(scenario())
    assert isinstance(exc, InsertQueueFailed)
    assert isinstance(exc.__cause__, RuntimeError)


LINGER = 0.2


@pytest.mark.parametrize(
    ("case", "events", "max_events", "drain", "lingers"),
    [
        ("one small batch waits for the linger", [5], 100, False, True),
        ("max_events queued: insert at once", [60, 40], 100, False, False),
        ("one batch over max_events: insert at once", [150], 100, False, False),
        ("a drain cuts the linger short", [5], 100, True, False),
    ],
)
def test_take_lingers_until_the_oldest_batch_waited_linger_s(
    case: str, events: list[int], max_events: int, drain: bool, lingers: bool
) -> None:
    async def scenario() -> tuple[float, list[str]]:
        queue: InsertQueue[str] = InsertQueue(1000, linger_s=LINGER)
        for i, n in enumerate(events):
            await queue.put(str(i), n)
        started = time.monotonic()
        taker = asyncio.create_task(queue.take(max_events))
        if drain:
            await asyncio.sleep(TICK)
            drained = asyncio.create_task(queue.drained())
        taken = await taker
        waited = time.monotonic() - started
        if drain:
            await queue.done(taken)
            await asyncio.wait_for(drained, 1)
        return waited, [q.item for q in taken]

    waited, taken = run(scenario())
    assert taken == [str(i) for i in range(len(events))], case
    if lingers:
        assert waited >= LINGER - TICK, case
    else:
        assert waited < LINGER / 2, case


def test_batches_put_while_lingering_join_the_insert() -> None:
    async def scenario() -> list[str]:
        queue: InsertQueue[str] = InsertQueue(1000, linger_s=LINGER)
        await queue.put("first", 5)
        taker = asyncio.create_task(queue.take(100))
        await asyncio.sleep(LINGER / 4)
        await queue.put("second", 5)
        assert not taker.done()
        await queue.put("third", 90)  # reaches max_events: no more lingering
        return [q.item for q in await asyncio.wait_for(taker, LINGER / 2)]

    assert run(scenario()) == ["first", "second", "third"]


def test_the_linger_counts_from_when_the_oldest_batch_was_queued() -> None:
    """A batch that already waited (during the previous insert) is not held again."""

    async def scenario() -> float:
        queue: InsertQueue[str] = InsertQueue(1000, linger_s=LINGER)
        await queue.put("old", 5)
        await asyncio.sleep(LINGER)
        started = time.monotonic()
        await queue.take(100)
        return time.monotonic() - started

    assert run(scenario()) < LINGER / 2
