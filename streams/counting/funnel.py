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

Persistence: the worker keeps sessions in a Faust table with a changelog (a
:class:`SessionStore` adapter converting with :meth:`Session.to_wire` /
:meth:`Session.from_wire`); tests and the backtest use :class:`MemorySessionStore`.
:class:`SessionTracker` writes each touched session back once per batch (one changelog
record per session per batch, not per event).

Expiry: a session idle for ``timeout_ms`` plus the windows' ``size_ms + lateness_ms`` is
deleted. The extra grace makes deletion invisible: an event that is not late has
``ts > clock - size_ms - lateness_ms``, so it could only have continued a deleted session
if that session's gap were under ``timeout_ms``, which the grace excludes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from streams.counting.expiring import ExpiringDict
from streams.metric_defs import FUNNEL_STEPS

SESSION_TIMEOUT_MS = 30 * 60 * 1000

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


class MemorySessionStore:
    """An in-memory :class:`SessionStore` whose expiry costs O(expired sessions).

    Sessions are filed by the minute of their ``last_seen_ms`` (``ExpiringDict``), so a
    session is deleted at most one minute after it became idle enough.
    """

    def __init__(self) -> None:
        self._sessions: ExpiringDict[Session] = ExpiringDict()

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def set(self, session_id: str, session: Session) -> None:
        self._sessions.set(session_id, session, session.last_seen_ms)

    def delete(self, session_id: str) -> None:
        self._sessions.delete(session_id)

    def items(self) -> Iterator[tuple[str, Session]]:
        return self._sessions.items()

    def expire_idle(self, before_ms: int) -> int:
        return self._sessions.expire(before_ms)

    def __len__(self) -> int:
        return len(self._sessions)


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

    def touch(
        self,
        session_id: str,
        channel: str,
        traffic_source: str,
        ts: int,
        step: int,
        sink: StepSink,
    ) -> None:
        session = self._dirty.get(session_id)
        if session is None:
            session = self.store.get(session_id)
        if session is None or ts - session.last_seen_ms >= self.timeout_ms:
            session = Session(step, channel, ts, ts)
            old = NO_STEP
        else:
            old = session.step
            if step <= old and session.first_seen_ms <= ts <= session.last_seen_ms:
                return  # nothing changes: no write, no changelog record
            session = Session(
                step if step > old else old,
                session.channel,
                ts if ts < session.first_seen_ms else session.first_seen_ms,
                ts if ts > session.last_seen_ms else session.last_seen_ms,
            )
        self._dirty[session_id] = session
        if session.step > old:
            sink.reached(session.channel, traffic_source, old, session.step)

    def flush(self) -> None:
        """Write every session touched since the last flush to the store."""
        store_set = self.store.set
        for session_id, session in self._dirty.items():
            store_set(session_id, session)
        self._dirty.clear()

    def expire(self, now_ms: int) -> int:
        """Delete sessions idle for ``timeout_ms + grace_ms`` at ``now_ms``; count them."""
        self.flush()
        return self.store.expire_idle(now_ms - self.timeout_ms - self.grace_ms + 1)
