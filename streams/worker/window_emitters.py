"""Which windows of each Kafka partition are emitted (``window_emitters``), and what a worker
given partitions emits for them.

Why: rollup rows are emitted per partition (``streams.counting.rollups.emitter``: the
``worker`` column is ``p3``), so a window of a partition emitted again by any worker
*replaces* its rows. What a worker given a partition must know is only where to start:
windows of it emitted before are left alone (their rows hold events the new owner may not
have: the previous owner's late-stored tail), windows after the newest emitted one are
rebuilt from the stored events and emitted by the new owner.

The contract (migration ``0019_window_emitters.sql``):

* after the rollup rows of a closing are stored, the worker stores one **mark** per
  partition it holds, ``(window_start, emitter, [partition])``: every window of the
  partition up to ``window_start`` is emitted (or had no event);
* at an assignment, :func:`plan_windows` gives each assigned partition the first window
  start it (re-)emits: after its newest mark, by any worker (:func:`newest_marked_sql`).

Why this is exact whatever the interleaving (measured before: a SIGKILLed member's windows
counted 1.5×, or a rolling restart's short by 1.5 % of orders, one run in a few under load):

* a worker killed between a closing's rows and its marks: the next owner starts at the
  last mark, emits that window again, and its rows replace the partial ones;
* a mark still in flight while another worker plans (a timer's store racing a rebalance):
  the same — the window is emitted twice under one key, the newest version wins;
* the moved partition's windows that the survivor's clock has already closed are emitted
  at its next timer tick (they are in the rebuilt state, older than its clock).

Emitting a window again is always safe; skipping one is not: so a partition with no mark
while others have one (its owner died before its first closing) starts at the catch-up
horizon. A store with no mark at all (written before marks existed, rows named by
process) starts after the newest window any worker emitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.counting.rollups import emitter

TABLE = "window_emitters"
COLUMNS = ("window_start", "worker", "partitions", "version")


@dataclass(frozen=True)
class Mark:
    """Windows of ``partition`` up to ``window_start_ms`` are emitted."""

    window_start_ms: int
    partition: int

    def row(self, version: int) -> tuple[int, str, list[int], int]:
        """The insert tuple in :data:`COLUMNS` order (``window_start`` in epoch seconds)."""
        return (
            self.window_start_ms // 1000,
            emitter(self.partition),
            [self.partition],
            version,
        )


def marks_for(window_start_ms: int, partitions: Iterable[int]) -> list[Mark]:
    """One mark per partition: its windows up to ``window_start_ms`` are emitted."""
    return [Mark(window_start_ms, p) for p in sorted(set(partitions))]


def newest_marked_sql(database: str, from_ms: int) -> str:
    """``(partition, newest marked window_start in epoch s)`` of every partition with a
    mark at or after ``from_ms``, by any worker (marks of older versions, named by process,
    list several partitions: ``ARRAY JOIN``)."""
    return (
        f"SELECT p, toUInt32(max(window_start)) FROM {database}.{TABLE} "
        f"ARRAY JOIN partitions AS p "
        f"WHERE window_start >= toDateTime({max(from_ms // 1000, 0)}) "
        f"GROUP BY p"
    )


def plan_windows(
    *,
    partitions: Sequence[int],
    newest_marked_ms: Mapping[int, int],
    live_emitted_ms: Mapping[int, int],
    any_emitted_ms: int | None,
    oldest: int,
    size_ms: int,
) -> dict[int, int]:
    """``{partition: first window start to emit}`` for ``partitions`` (pure).

    ``newest_marked_ms``: newest marked window start of each partition since ``oldest``
    (the first window of the catch-up horizon); ``live_emitted_ms``: the newest window the
    live pipeline closed, for partitions it held (its marks may still be on their way);
    ``any_emitted_ms``: the newest window start of any rollup row (None: none), used only
    when no partition has a mark. Never before ``oldest``.
    """
    first: dict[int, int] = {}
    for partition in partitions:
        marked = newest_marked_ms.get(partition)
        if marked is not None:
            start = marked + size_ms
        elif newest_marked_ms:
            start = oldest  # marks exist, none for it: never emitted in the horizon
        elif any_emitted_ms is not None:
            start = any_emitted_ms + size_ms  # a store from before the marks
        else:
            start = oldest
        live = live_emitted_ms.get(partition)
        if live is not None:
            start = max(start, live + size_ms)
        first[partition] = max(start, oldest)
    return first
