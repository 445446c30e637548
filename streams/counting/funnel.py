"""Sessions and the purchase funnel (EVENTS.md): visit → detail → cart → checkout → paid.

A session is keyed by ``session_id``. Its state (:class:`Session`) is the highest funnel
step reached, the channel of the event that started it, and its first/last event time.

Session boundary: an event whose ``ts`` is at least ``timeout_ms`` (30:00.000) after the
session's ``last_seen_ms`` starts a new session; a gap of 29:59.999 continues it. An event
*before* ``last_seen_ms`` (out of order) always belongs to the current session, however
old. Each step is counted once per session; reaching a step counts every earlier step not
yet reached, at that moment (a deep link straight to checkout counts visit, detail, cart
and checkout). Steps never go back, so a duplicate event cannot count a step twice.

Which events are session activity: every ``clicks`` and ``carts`` event and the orders
events a shopper makes (``order_created``, ``payment_succeeded``, ``payment_failed``).
Cancels, refunds and tickets happen outside the shopping session and do not touch it.

Persistence: the worker keeps sessions in a Faust table with a changelog through
:class:`MappingSessionStore` (values are :meth:`Session.to_wire` lists); tests and the
backtest use :class:`MemorySessionStore`. Sessions must be processed by the worker that
owns them: orders are keyed by ``order_id`` in Kafka, so the worker re-keys order events by
``session_id`` before they touch a partitioned session table.
:class:`SessionTracker` writes each touched session back once per batch (one changelog
record per session per batch, not per event).

Expiry: a session idle for ``timeout_ms`` plus the windows' ``size_ms + lateness_ms`` is
deleted. The extra grace makes deletion invisible: an event that is not late has
``ts > clock - size_ms - lateness_ms``, so it could only have continued a deleted session
if that session's gap were under ``timeout_ms``, which the grace excludes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from streams.counting.expiring import ExpiringDict
from streams.metrics.defs import FUNNEL_STEPS

SESSION_TIMEOUT_MS = 30 * 60 * 1000
EXPIRY_INTERVAL_MS = 60_000

# step numbers: 0 = no step yet, i = FUNNEL_STEPS[i - 1]
NO_STEP = 0
VISIT, DETAIL, CART, CHECKOUT, PAID = range(1, len(FUNNEL_STEPS) + 1)

WIRE_VERSION = 1


class Session(NamedTuple):
    """One session's state: small, immutable, JSON-able through :meth:`to_wire`."""

    step: int  # highest step reached, 0..len(FUNNEL_STEPS)
    channel: str  # normalised channel of the first event
    first_seen_ms: int
    last_seen_ms: int

    def to_wire(self) -> list[int | str]:
        """``[version, step, channel, first_seen_ms, last_seen_ms]``, for a changelog."""
        return [WIRE_VERSION, self.step, self.channel, self.first_seen_ms, self.last_seen_ms]

    @classmethod
    def from_wire(cls, value: Any) -> Session:
        """Inverse of :meth:`to_wire`; raises ``ValueError`` on anything else."""
        if not isinstance(value, list | tuple) or len(value) != 5 or value[0] != WIRE_VERSION:
            raise ValueError(f"not a v{WIRE_VERSION} session: {value!r}")
        _, step, channel, first, last = value
        ints_ok = all(type(v) is int for v in (step, first, last))
        if not ints_ok or not isinstance(channel, str) or not 0 <= step <= len(FUNNEL_STEPS):
            raise ValueError(f"malformed session: {value!r}")
        return cls(step, channel, first, last)


class SessionStore(Protocol):
    """Where sessions live between batches: a dict, or a Faust table in the worker.

    ``expire_idle(before_ms)`` deletes sessions whose ``last_seen_ms < before_ms`` and
    returns how many it deleted; it may keep some of them until a later call (memory only:
    a kept idle session changes no count, the gap rule applies to it).
    """

    def get(self, session_id: str) -> Session | None: ...

    def set(self, session_id: str, session: Session) -> None: ...

    def delete(self, session_id: str) -> None: ...

    def items(self) -> Iterable[tuple[str, Session]]: ...

    def expire_idle(self, before_ms: int) -> int: ...


def expire_by_scan(store: SessionStore, before_ms: int) -> int:
    """``expire_idle`` for any store, by a full scan: O(sessions), for table adapters."""
    idle = [sid for sid, session in store.items() if session.last_seen_ms < before_ms]
    for sid in idle:
        store.delete(sid)
    return len(idle)


class MemorySessionStore(ExpiringDict[Session]):
    """An in-memory :class:`SessionStore` whose expiry costs O(expired sessions).

    Sessions are filed by the minute of their ``last_seen_ms`` (``ExpiringDict``), so a
    session is deleted at most one minute after it became idle enough. ``capacity``
    (``SALEWATCH_MAX_LIVE_SESSIONS``): beyond it the least recently active minute of
    sessions is forgotten early; a later event of such a session starts a new one, whose
    funnel steps count again (visits over-counted, conversion under-stated), so the worker
    shows ``salewatch_state_entries{state="sessions"}`` against its capacity and counts
    ``salewatch_state_evictions_total{state="sessions"}``.
    """

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__(_LAST_SEEN, capacity=capacity)

    def expire_idle(self, before_ms: int) -> int:
        return self.expire(before_ms)


_LAST_SEEN: Callable[[Session], int] = itemgetter(3)


class MappingSessionStore:
    """A :class:`SessionStore` over any mapping of wire values, e.g. a Faust table.

    ``table[session_id] = session.to_wire()`` is a plain JSON-able list, so a Faust table
    with a changelog (``app.Table(..., value_type=list)``, JSON serializer) persists it and
    restores it after a restart or rebalance; ``del table[key]`` writes the tombstone.
    Expiry scans the table (:func:`expire_by_scan`), which ``SessionTracker`` runs at most
    once a minute. A stored value that is not a valid wire session counts as no session.
    """

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def get(self, session_id: str) -> Session | None:
        value = self.table.get(session_id)
        if value is None:
            return None
        try:
            return Session.from_wire(value)
        except ValueError:
            return None

    def set(self, session_id: str, session: Session) -> None:
        self.table[session_id] = session.to_wire()

    def delete(self, session_id: str) -> None:
        if session_id in self.table:
            del self.table[session_id]

    def items(self) -> Iterator[tuple[str, Session]]:
        for session_id in list(self.table):
            # a malformed value shows as idle since 1970, so the next expiry removes it
            yield session_id, self.get(session_id) or _MALFORMED

    def expire_idle(self, before_ms: int) -> int:
        return expire_by_scan(self, before_ms)


_MALFORMED = Session(NO_STEP, "other", 0, 0)


class StepSink(Protocol):
    """Receives funnel progress: a session of ``channel`` went from ``old`` to ``new``."""

    def reached(self, channel: str, traffic_source: str, old: int, new: int) -> None: ...


class SessionTracker:
    """Applies session activity to a :class:`SessionStore` and reports funnel steps.

    :meth:`touch` takes one event's session id, normalised channel and traffic source,
    event time and the funnel step the event means (0 for none); it calls
    ``sink.reached`` when the session reaches new steps. Touched sessions are buffered
    until :meth:`flush`, which writes each of them to the store once; the caller flushes
    at the end of every batch.
    """

    def __init__(
        self,
        store: SessionStore,
        timeout_ms: int = SESSION_TIMEOUT_MS,
        grace_ms: int = 0,
    ) -> None:
        self.store = store
        self.timeout_ms = timeout_ms
        self.grace_ms = grace_ms
        self._dirty: dict[str, Session] = {}
        self._next_expiry_ms = -(1 << 62)

    def touch(
        self,
        session_id: str,
        channel: str,
        traffic_source: str,
        ts: int,
        step: int,
        sink: StepSink,
    ) -> None:
        dirty = self._dirty
        session = dirty.get(session_id)
        if session is None:
            session = self.store.get(session_id)
        # index access: NamedTuple attribute lookups cost more on this per-event path
        if session is None or ts - session[3] >= self.timeout_ms:
            session = Session(step, channel, ts, ts)
            old = NO_STEP
        else:
            old, first, last = session[0], session[2], session[3]
            if step <= old and first <= ts <= last:
                return  # nothing changes: no write, no changelog record
            session = Session(
                step if step > old else old,
                session[1],
                ts if ts < first else first,
                ts if ts > last else last,
            )
        dirty[session_id] = session
        if session[0] > old:
            sink.reached(session[1], traffic_source, old, session[0])

    def flush(self) -> None:
        """Write every session touched since the last flush to the store."""
        store_set = self.store.set
        for session_id, session in self._dirty.items():
            store_set(session_id, session)
        self._dirty.clear()

    def expire(self, now_ms: int) -> int:
        """Delete sessions idle for ``timeout_ms + grace_ms`` at ``now_ms``; count them.

        Runs at most once per ``EXPIRY_INTERVAL_MS`` of clock (a table adapter scans every
        session); a session kept a little longer changes no count.
        """
        self.flush()
        if now_ms < self._next_expiry_ms:
            return 0
        self._next_expiry_ms = now_ms + EXPIRY_INTERVAL_MS
        return self.store.expire_idle(now_ms - self.timeout_ms - self.grace_ms + 1)
