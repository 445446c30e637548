"""Orders forwarded to ``orders_by_session`` twice from one source record, to skip once.

The worker that reads an ``orders`` partition stores the orders raw and forwards the valid
ones to ``orders_by_session`` at once; the owner of the session counts them from there. A
worker that dies after forwarding an order but before storing it (the insert queue holds
rows up to ``SALEWATCH_INSERT_LINGER_S``, and one insert) leaves the order unstored; the
next reader of that ``orders`` partition resumes after the stored offsets, reads the order
again and forwards it again. ``orders_by_session`` then holds two copies with the same
``event_id``. The counting pipeline's dedupe (``streams.counting.dedupe``) would count the
second one in ``salewatch_events_duplicate_total`` as a producer's duplicate, which it is
not: a crash moved that counter by the orders of the last second or more (18 of the 15 the
ground-truth test's stream holds, in its restart test).

A forwarded record therefore carries where it came from (:data:`SOURCE_HEADER`: the
``orders`` partition and offset); :class:`Reforwards` remembers the last ``capacity``
``(source, event_id)`` pairs read from ``orders_by_session`` and tells a second copy of one
apart from a producer's duplicate (another source record, same ``event_id``: counted as a
duplicate as before). The second copy is skipped uncounted: whichever copy came first
was counted, by this worker or the one that died (``docs/reliability.md``, gap 2: its
count in Prometheus is the small double count of a crash, not a duplicate).

Bound: ~60 bytes per remembered pair (``streams.counting.dedupe.RecentIds``); the second copy
follows the first within a restart, a few seconds of orders. Records without the header
(forwarded by a version before it) are never skipped here.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.counting.dedupe import RecentIds

SOURCE_HEADER = "salewatch-source"
# (source, event id) pairs remembered: minutes of orders at a sale's peak rate
DEFAULT_CAPACITY = 100_000


def source_header(partition: int, offset: int) -> tuple[str, bytes]:
    """The header of an order forwarded from ``orders`` partition ``partition``, ``offset``."""
    return (SOURCE_HEADER, b"%d:%d" % (partition, offset))


def source_of(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    """The :data:`SOURCE_HEADER` value among a record's ``headers``; None without it."""
    for key, value in headers:
        if key == SOURCE_HEADER:
            return value
    return None


class Reforwards:
    """Second copies of forwarded orders: :meth:`again` is True for an order whose source
    record was already read with this ``event_id``, and remembers it otherwise."""

    __slots__ = ("_recent",)

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._recent = RecentIds(capacity)

    def again(self, headers: Sequence[tuple[str, bytes]], event_id: str) -> bool:
        """True: ``event_id`` was read before from the same source record (skip it)."""
        source = source_of(headers)
        if source is None:
            return False
        return self._recent.seen(f"{source.decode()}/{event_id}")
