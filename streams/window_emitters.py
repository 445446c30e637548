"""Which partitions each worker's rollup rows of a closed window hold (``window_emitters``).

Why: rollup rows are keyed by worker (``streams.counting.rollups``), not by partition, so
when partitions move from one worker to another — a crash, a rebalance — the new owner must
know, per partition, which windows the previous owner already emitted. Counting a moved
partition into a window its previous owner emitted counts it twice; not counting it into a
window nobody emitted loses it. Measured before this table existed: the rollups of a
two-worker group whose member was SIGKILLed lacked ~13 % of all carts and orders (about
half of the 2-3 windows around the kill).

The contract (migration ``0019_window_emitters.sql``):

* after the rollup rows of a closing are stored, the worker stores one **mark**
  ``(window_start, worker, partitions)``: it has emitted every window up to
  ``window_start`` for ``partitions`` (the partition numbers it owned; the range assignor
  gives a worker the same numbers of every topic);
* at an assignment, :func:`plan_takeover` reads the newest marked window of each assigned
  partition (:func:`newest_marked_sql`) and decides, per partition, which windows the new
  owner emits for it: the rebuilt pipeline's windows from ``replay_from`` on (its own
  worker name), but a partition's events count into them only after its newest marked
  window; windows between a moved partition's newest mark and ``replay_from`` are emitted
  once, by a **catch-up** pipeline of that partition alone, under the name
  :func:`catch_up_worker` (deterministic: a catch-up repeated after a crash replaces its
  rows instead of adding to them).

A partition without a mark in the catch-up horizon while other partitions have one was
never emitted there (its owner died before its first closing): it is caught up from the
horizon. Without any mark at all (a store written before this table existed) partitions
are planned as before: from the worker's own newest window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

TABLE = "window_emitters"
COLUMNS = ("window_start", "worker", "partitions", "version")


@dataclass(frozen=True)
class Mark:
    """Windows up to ``window_start_ms`` are emitted for ``partitions`` by ``worker``."""

    window_start_ms: int
    worker: str
    partitions: tuple[int, ...]

    def row(self, version: int) -> tuple[int, str, list[int], int]:
        """The insert tuple in :data:`COLUMNS` order (``window_start`` in epoch seconds)."""
        return (self.window_start_ms // 1000, self.worker, list(self.partitions), version)


def catch_up_worker(partition: int) -> str:
    """The worker name of catch-up rows for ``partition`` (never a live worker's name:
    those are ``host:port``)."""
    return f"catch-up/p{partition}"


def newest_marked_sql(database: str, from_ms: int) -> str:
    """``(partition, newest marked window_start in epoch s)`` of every partition with a
    mark at or after ``from_ms``, by any worker."""
    return (
        f"SELECT p, toUInt32(max(window_start)) FROM {database}.{TABLE} "
        f"ARRAY JOIN partitions AS p "
        f"WHERE window_start >= toDateTime({max(from_ms // 1000, 0)}) "
        f"GROUP BY p"
    )


@dataclass(frozen=True)
class Takeover:
    """What a rebuild of an assignment emits per partition.

    ``catch_up``: ``{partition: first window start}`` — a moved partition whose windows
    from there up to (not including) ``replay_from`` nobody emitted; ``tally_from``:
    ``{partition: ms}`` — a partition whose events before ``ms`` must not count into the
    rebuilt windows (another worker emitted those windows for it); they still update
    session state.
    """

    catch_up: dict[int, int]
    tally_from: dict[int, int]


def plan_takeover(
    *,
    partitions: Sequence[int],
    held: Iterable[int],
    newest_marked_ms: Mapping[int, int],
    replay_from: int,
    oldest: int,
    size_ms: int,
) -> Takeover:
    """Plan the windows of ``partitions`` around ``replay_from`` (pure).

    ``held``: partitions the live pipeline already counts (their windows before
    ``replay_from`` are this worker's own, emitted or about to be: never caught up);
    ``newest_marked_ms``: the newest marked window start of each partition since
    ``oldest``, the first window of the catch-up horizon (absent: none).
    """
    held_now = set(held)
    catch_up: dict[int, int] = {}
    tally_from: dict[int, int] = {}
    for partition in partitions:
        newest = newest_marked_ms.get(partition)
        if newest is None:
            if not newest_marked_ms:
                continue
            newest = oldest - size_ms  # marks exist, none for it: never emitted
        after = newest + size_ms
        if after > replay_from:
            tally_from[partition] = after
        elif after < replay_from and partition not in held_now:
            catch_up[partition] = after
    return Takeover(catch_up, tally_from)
