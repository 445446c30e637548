"""Orders forwarded to ``orders_by_session`` twice from one source record, to skip once.

The worker that reads an ``orders`` partition stores the orders raw and forwards the valid
ones to ``orders_by_session`` at once; the owner of the session counts them from there. A
worker that dies after forwarding an order but before storing it (the insert queue holds
rows up to ``SALEWATCH_INSERT_LINGER_S``, and one insert) leaves the order unstored; the
next reader of that ``orders`` partition resumes after the stored offsets, reads the order
again and forwards it again. ``orders_by_session`` then holds two copies with the same
``event_id``. The counting pipeline's dedupe (``streams.counting.dedupe``) would count the
second one in ``salewatch_events_duplicate_total`` as a producer's duplicate, which it is
not: a crash moved that counter by the orders of the last second or more (14-18 false
duplicates in the ground-truth restart test, whose stream holds 15 real ones).

A forwarded record therefore carries where it came from (:data:`SOURCE_HEADER`: the
``orders`` partition and offset). :func:`forwarded_again` keeps ``(source, event_id)`` keys in
the counting pipeline's ``forwarded`` memory (``Pipeline.forwarded``) and tells a second copy
of one source record apart from a producer's duplicate (another source record, same
``event_id``: counted as a duplicate as before). The second copy is skipped uncounted:
whichever copy came first was counted, by this worker or the one that died
(``docs/reliability.md``, gap 2: its count in Prometheus is the small double count of a
crash, not a duplicate).

The memory belongs to the counting state, not to the process: a rebuild from ClickHouse
(``streams.worker.recovery``) replaces the state, and a first copy counted into the state it
replaced must be counted again when Kafka delivers it again; an empty memory lets it.
Records without the header (forwarded by a version before it) are never skipped here.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.counting.dedupe import RecentIds

SOURCE_HEADER = "salewatch-source"


def source_header(partition: int, offset: int) -> tuple[str, bytes]:
    """The header of an order forwarded from ``orders`` partition ``partition``, ``offset``."""
    return (SOURCE_HEADER, b"%d:%d" % (partition, offset))


def source_of(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    """The :data:`SOURCE_HEADER` value among a record's ``headers``; None without it."""
    for key, value in headers:
        if key == SOURCE_HEADER:
            return value
    return None


def forwarded_again(
    forwarded: RecentIds, headers: Sequence[tuple[str, bytes]], event_id: str
) -> bool:
    """True: ``event_id`` was read before from the same source record (skip it); otherwise
    ``forwarded`` remembers it (bounded: ``RecentIds``)."""
    source = source_of(headers)
    if source is None:
        return False
    return forwarded.seen(f"{source.decode()}/{event_id}")
