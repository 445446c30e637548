"""``generate(config, seed)``: the whole simulated stream, in event-time order.

Sessions start by a Poisson process that follows the traffic curve; each session's events
are generated whole when it starts (``run_session``) and merged with all others through a
heap keyed by event time, so the output is non-decreasing in ``ts``. Events at or after
``config.end_ms`` are not emitted (an order created 5 minutes before the end has no
cancel in the stream: the cancel lies in the future), nor are those of the warm-up before
``config.start_ms`` (``SimConfig.warmup_s``).

Reproducibility: independent random streams, all derived from the seed, drive the world
(catalog, users), the arrivals, each session, surge tickets, invalid messages and lossy
incidents. So the same seed and config give the identical stream, and adding an incident
or invalid messages leaves everything outside their reach unchanged.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from streams.events.contract import SCHEMA_VERSION
from streams.simulation.catalog import (
    SURGE_TICKET_KINDS,
    SURGE_TICKET_REASONS,
    Catalog,
    Population,
)
from streams.simulation.config import SimConfig
from streams.simulation.incidents import IncidentSchedule
from streams.simulation.invalid import make_invalid
from streams.simulation.model import SimEvent, event_time
from streams.simulation.session import World, run_session
from streams.simulation.traffic import TrafficCurve, arrivals

# random streams derived from the seed; sessions use SESSIONS + their index
_WORLD, _ARRIVALS, _SURGE, _INVALID, _LOSS, _SESSIONS = range(6)
_STREAM_BITS = 40

HUNTER_SHARE_BASE = 0.08  # sale-day shoppers who come to buy, outside the rush
HUNTER_SHARE_RUSH = 0.6  # extra share at the peak of the rush
SURGE_POOL = 5000  # recent paid orders a surge ticket may be about


def _stream_seed(seed: int, stream: int, index: int = 0) -> int:
    return ((seed * 8 + stream) << _STREAM_BITS) + index


def hunter_share(rush: float) -> float:
    return HUNTER_SHARE_BASE + HUNTER_SHARE_RUSH * rush


@dataclass(frozen=True)
class Calibration:
    """Mean events and opened tickets per session, by kind of shopper."""

    browser_events: float
    hunter_events: float
    browser_tickets: float
    hunter_tickets: float


@cache
def calibration(sessions: int = 1500) -> Calibration:
    """Measured once per process on a fixed world, so that ``rate`` means events/s."""
    rng = random.Random(20241111)
    world = World(
        Catalog(500, rng),
        Population(1000, ("CN-GD",), rng),
        "cal",
        IncidentSchedule((), 0),
    )
    totals: list[float] = []
    for hunter in (False, True):
        events = tickets = 0
        for i in range(sessions):
            rng.seed(i + (10**6 if hunter else 0))
            out = run_session(world, rng, i, 10**12, hunter)
            events += len(out)
            tickets += sum(1 for e in out if e.event["event_type"] == "ticket_opened")
        totals += [events / sessions, tickets / sessions]
    return Calibration(totals[0], totals[2], totals[1], totals[3])


def id_prefix(config: SimConfig, seed: int) -> str:
    """8 hex chars naming the run: ids differ across runs unless seed and start are equal."""
    return hashlib.blake2b(f"{seed}:{config.start_ms}".encode(), digest_size=4).hexdigest()


def build_world(config: SimConfig, seed: int) -> World:
    rng = random.Random(_stream_seed(seed, _WORLD))
    catalog = Catalog(config.catalog_items, rng)
    population = Population(config.users, config.regions, rng)
    schedule = IncidentSchedule(config.incidents, config.start_ms)
    return World(
        catalog,
        population,
        id_prefix(config, seed),
        schedule,
        config.end_ms,
        config.payment_success,
        config.ticket_delay_s,
    )


class _Rates:
    """Session and surge-ticket intensities (per second) derived from the traffic curve."""

    def __init__(self, config: SimConfig, schedule: IncidentSchedule) -> None:
        self.curve = TrafficCurve(config)
        self.cal = calibration()
        self.schedule = schedule
        self.sessions_per_min = config.sessions_per_min

    def sessions_per_s(self, ts: int) -> float:
        if self.sessions_per_min is not None:
            return self.sessions_per_min / 60 * self.curve.shape(ts)
        h = hunter_share(self.curve.rush(ts))
        per_session = h * self.cal.hunter_events + (1 - h) * self.cal.browser_events
        return self.curve.events_per_s(ts) / per_session

    def surge_tickets_per_s(self, ts: int) -> float:
        surge = self.schedule.severity("ticket_surge", ts)
        if surge <= 1:
            return 0.0
        h = hunter_share(self.curve.rush(ts))
        normal = h * self.cal.hunter_tickets + (1 - h) * self.cal.browser_tickets
        return (surge - 1) * normal * self.sessions_per_s(ts)


def _surge_ticket(
    world: World, rng: random.Random, n: int, ts: int, pool: deque[tuple[str, ...]]
) -> list[SimEvent]:
    """A ticket opened during a surge, about a recent paid order if there is one."""
    sid = f"{world.prefix}-x{n:x}"
    tid = f"{world.prefix}-tx{n:x}"
    if pool:
        order_id, user_id, channel, region = pool[int(rng.random() * len(pool))]
    else:
        u = rng.randrange(world.population.n)
        order_id, user_id = "", Population.user_id(u)
        channel, region = world.population.channels[u], world.population.regions[u]
    kind, reason = SURGE_TICKET_KINDS.pick(rng), SURGE_TICKET_REASONS.pick(rng)
    times = [("ticket_opened", ts)]
    if rng.random() < 0.5:
        times.append(("ticket_resolved", ts + 300_000 + int(rng.random() * 1_200_000)))
    out = []
    for k, (event_type, t) in enumerate(times, 1):
        ev: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"{sid}-{k}",
            "event_type": event_type,
            "ts": t,
            "user_id": user_id,
            "session_id": sid,
            "channel": channel,
            "region": region,
            "ticket_id": tid,
            "kind": kind,
            "reason": reason,
        }
        if order_id:
            ev["order_id"] = order_id
        out.append(SimEvent(t, "tickets", tid, ev))
    return out


def generate(config: SimConfig, seed: int) -> Iterator[SimEvent]:
    """Yield the simulated stream of ``config`` for ``seed``, in non-decreasing ``ts``.

    Except under a ``pipeline_lag`` incident: the stream is then in ARRIVAL order, the
    delayed topic's events coming ``SEVERITY`` seconds after their ``ts`` (what a consumer
    that fell behind sees), so a replay in file order measures the lag.
    """
    world = build_world(config, seed)
    schedule = world.schedule
    rates = _Rates(config, schedule)
    start, end = config.start_ms, config.end_ms
    curve = rates.curve

    arrival_rng = random.Random(_stream_seed(seed, _ARRIVALS))
    warm_start = start - round(config.warmup_s * 1000)
    session_arrivals = arrivals(rates.sessions_per_s, warm_start, end, arrival_rng)
    session_rng = random.Random()
    never = end + 1
    next_session = next(session_arrivals, never)
    index = 0

    surge_on = schedule.has("ticket_surge")
    surge_rng = random.Random(_stream_seed(seed, _SURGE))
    surge_arrivals = arrivals(rates.surge_tickets_per_s, start, end, surge_rng)
    next_surge = next(surge_arrivals, never) if surge_on else never
    surge_n = 0
    paid_pool: deque[tuple[str, ...]] = deque(maxlen=SURGE_POOL)

    drop_on = schedule.has("traffic_drop")
    stall_on = schedule.has("pipeline_stall")
    lost_on = schedule.has("orders_lost")
    loss_rng = random.Random(_stream_seed(seed, _LOSS))
    lag_on = schedule.has("pipeline_lag")
    # delayed events by arrival time: (arrival ms, event ts, event)
    late: list[tuple[int, int, SimEvent]] = []
    special = surge_on or stall_on or lost_on or lag_on
    invalid_rate = config.invalid_rate
    invalid_rng = random.Random(_stream_seed(seed, _INVALID))

    # (next ts, tie-breaker, the session's events, position of the next one)
    heap: list[tuple[int, int, list[SimEvent], int]] = []
    heappush, heapreplace, heappop = heapq.heappush, heapq.heapreplace, heapq.heappop
    while True:
        head = heap[0][0] if heap else never
        if next_session <= head and next_session <= next_surge and next_session < end:
            ts = next_session
            index += 1
            # always draw both, so dropping a session never shifts later draws
            hunter = arrival_rng.random() < hunter_share(curve.rush(ts))
            u_drop = arrival_rng.random()
            next_session = next(session_arrivals, never)
            if drop_on and u_drop < schedule.severity("traffic_drop", ts):
                continue
            session_rng.seed(_stream_seed(seed, _SESSIONS, index))
            events = run_session(world, session_rng, index, ts, hunter)
            # a warm-up session joins at its first event from the start on, if it has one
            first = 0 if ts >= start else bisect_left(events, start, key=event_time)
            if first < len(events):
                heappush(heap, (events[first].ts, index, events, first))
            continue
        if next_surge <= head and next_surge < end:
            surge_n += 1
            events = _surge_ticket(world, surge_rng, surge_n, next_surge, paid_pool)
            # negative tie-breakers: never equal to a session's index
            heappush(heap, (events[0].ts, -surge_n, events, 0))
            next_surge = next(surge_arrivals, never)
            continue
        if head >= end:
            while late and late[0][0] < end:  # the backlog that arrives before the end
                yield heappop(late)[2]
            return
        _, tie, events, pos = heap[0]
        ev = events[pos]
        if pos + 1 < len(events):
            heapreplace(heap, (events[pos + 1].ts, tie, events, pos + 1))
        else:
            heappop(heap)
        if special:
            if surge_on and ev.event["event_type"] == "payment_succeeded":
                e = ev.event
                paid_pool.append((e["order_id"], e["user_id"], e["channel"], e["region"]))
            if stall_on:
                loss = schedule.severity_on_topic("pipeline_stall", ev.ts, ev.topic)
                if loss and (loss >= 1 or loss_rng.random() < loss):
                    continue
            if lost_on and ev.topic == "orders":
                loss = schedule.severity("orders_lost", ev.ts)
                if loss and (loss >= 1 or loss_rng.random() < loss):
                    continue
            if lag_on:
                delay_s = schedule.severity("pipeline_lag", ev.ts, ev.topic)
                if delay_s:
                    heappush(late, (ev.ts + round(delay_s * 1000), ev.ts, ev))
                    continue
        while late and late[0][0] <= ev.ts:
            yield heappop(late)[2]
        yield ev
        if invalid_rate and invalid_rng.random() < invalid_rate:
            yield make_invalid(invalid_rng, ev)
