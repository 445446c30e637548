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

Persistence: sessions live in memory (:class:`MemorySessionStore`, in the worker, the
backtest and the tests); after a restart or a rebalance the worker rebuilds them from
ClickHouse (``streams.worker.recovery``). Sessions must be processed by the worker that
owns them: orders are keyed by ``order_id`` in Kafka, so the worker re-keys order events by
``session_id`` (``orders_by_session``) before they touch its sessions.
:class:`SessionTracker` writes each touched session back once per batch, not per event.

Expiry: a session idle for ``timeout_ms`` plus the windows' ``size_ms + lateness_ms`` is
deleted. The extra grace makes deletion invisible: an event that is not late has
``ts > clock - size_ms - lateness_ms``, so it could only have continued a deleted session
if that session's gap were under ``timeout_ms``, which the grace excludes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import NamedTuple, Protocol

from streams.counting.expiring import ExpiringDict
from streams.metrics.defs import FUNNEL_STEPS

SESSION_TIMEOUT_MS = 30 * 60 * 1000
EXPIRY_INTERVAL_MS = 60_000

# step numbers: 0 = no step yet, i = FUNNEL_STEPS[i - 1]
NO_STEP = 0
VISIT, DETAIL, CART, CHECKOUT, PAID = range(1, len(FUNNEL_STEPS) + 1)


class Session(NamedTuple):
    """One session's state: small and immutable."""

    step: int  # highest step reached, 0..len(FUNNEL_STEPS)
    channel: str  # normalised channel of the first event
    first_seen_ms: int
    last_seen_ms: int


class SessionStore(Protocol):
    """Where sessions live between batches (:class:`MemorySessionStore`).

    ``expire_idle(before_ms)`` deletes sessions whose ``last_seen_ms < before_ms`` and
    returns how many it deleted; it may keep some of them until a later call (memory only:
    a kept idle session changes no count, the gap rule applies to it).
    """

    def get(self, session_id: str) -> Session | None: ...

    def set(self, session_id: str, session: Session) -> None: ...

    def delete(self, session_id: str) -> None: ...

    def items(self) -> Iterable[tuple[str, Session]]: ...

    def expire_idle(self, before_ms: int) -> int: ...


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
