"""The rebuild plan (pure): which stored events a rebuild reads, per assigned partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streams.counting.classify import ORDER_MEMORY_MS
from streams.counting.funnel import SESSION_TIMEOUT_MS
from streams.worker.window_emitters import plan_windows

# how far back windows that closed while the worker was down are still emitted
MAX_CATCH_UP_MS = 60 * 60 * 1000
# stored offsets / redelivered ids are looked for among events of this span of event time
OFFSET_LOOKBACK_MS = 60 * 60 * 1000


@dataclass(frozen=True)
class RebuildPlan:
    """Which stored events a rebuild reads, all in epoch ms of event time.

    ``replay_from``: first window start that is not emitted yet (aligned to the window
    size); ``clock_ms``: the window clock of the rebuilt state, at which exactly the
    windows before ``replay_from`` are closed; ``sessions_from``: start of the session
    lookback; ``live_after``: sessions last seen at or before it cannot be continued;
    ``orders_from``: oldest ``order_created`` whose category is still remembered;
    ``offsets_from``: oldest event time looked at for stored offsets; ``windows_from``:
    ``{partition: first window start it emits}`` (its events before only restore state).
    """

    replay_from: int
    clock_ms: int
    sessions_from: int
    live_after: int
    orders_from: int
    offsets_from: int
    windows_from: dict[int, int] = field(default_factory=dict)


def plan_rebuild(
    *,
    now_ms: int,
    partitions: Sequence[int],
    newest_marked: Mapping[int, int],
    any_emitted: int | None,
    live_emitted: Mapping[int, int] | None = None,
    size_ms: int,
    lateness_ms: int,
    timeout_ms: int = SESSION_TIMEOUT_MS,
    max_catch_up_ms: int = MAX_CATCH_UP_MS,
) -> RebuildPlan:
    """The rebuild plan of ``partitions`` at clock ``now_ms``.

    ``newest_marked``: newest marked window start (ms) of each partition in the catch-up
    horizon; ``any_emitted``: newest ``window_start`` of any rollup row (None: none), for a
    store without marks; ``live_emitted``: the newest window the running pipeline closed,
    for the partitions it holds. ``replay_from`` is the oldest first window of a partition
    (:func:`streams.worker.window_emitters.plan_windows`). The session lookback is ``timeout +
    size + lateness``: every session a future event can continue, seen over the session
    timeout and the grace the live store keeps it.
    """
    oldest = oldest_catch_up(now_ms, size_ms, max_catch_up_ms)
    windows_from = plan_windows(
        partitions=partitions,
        newest_marked_ms=newest_marked,
        live_emitted_ms=live_emitted or {},
        any_emitted_ms=any_emitted,
        oldest=oldest,
        size_ms=size_ms,
    )
    replay_from = min(windows_from.values(), default=oldest)
    plan = plan_from(replay_from, size_ms=size_ms, lateness_ms=lateness_ms, timeout_ms=timeout_ms)
    return replace(plan, windows_from=windows_from)


def oldest_catch_up(now_ms: int, size_ms: int, max_catch_up_ms: int = MAX_CATCH_UP_MS) -> int:
    """The oldest window start a rebuild at clock ``now_ms`` still emits."""
    oldest = now_ms - max_catch_up_ms
    return oldest - oldest % size_ms


def plan_from(replay_from: int, *, size_ms: int, lateness_ms: int, timeout_ms: int) -> RebuildPlan:
    """The plan whose first window not emitted yet starts at ``replay_from``."""
    return RebuildPlan(
        replay_from=replay_from,
        clock_ms=replay_from + lateness_ms,
        sessions_from=replay_from - timeout_ms - size_ms - lateness_ms,
        live_after=replay_from - timeout_ms,
        orders_from=replay_from - ORDER_MEMORY_MS - size_ms - lateness_ms,
        offsets_from=replay_from - OFFSET_LOOKBACK_MS,
    )
