"""The additive facts of a set of events: counts and sums keyed by normalised labels.

One :class:`Tally` is filled per batch and event-time window, then merged into that
window's tally (the rollup rows when it closes) and added to the Prometheus ``Totals``
(``streams.counting.counters.add_to_totals``). Keys are tuples of label values already
normalised to their closed sets, in the label order of the metric or rollup they feed,
so a tally holds at most the bounded number of series its metrics allow, plus the
distinct users of the window.

Money is kept in integer cents so that sums are exact (ClickHouse ``Decimal(18, 2)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from streams.metrics.defs import FUNNEL_STEPS, METRICS, PAGE_LOAD_BUCKETS_S

K = TypeVar("K")
N = TypeVar("N", int, float)

# the page-load histogram in ms: bucket i counts load_ms <= PAGE_LOAD_BOUNDS_MS[i] (and
# above the previous bound); the last bucket counts everything above the last bound
PAGE_LOAD_BOUNDS_MS = tuple(round(b * 1000) for b in PAGE_LOAD_BUCKETS_S)
PAGE_LOAD_BUCKETS = len(PAGE_LOAD_BOUNDS_MS) + 1
LOAD_MS_SUM = PAGE_LOAD_BUCKETS  # index of the sum of load_ms, after the bucket counts


@dataclass(frozen=True, slots=True)
class Vital:
    """An optional Core Web Vital field of ``page_view`` events and the histogram it feeds.

    ``bounds`` are the histogram's bucket upper bounds in the field's own unit (ms, or the
    unitless CLS score), so an event is bucketed without converting it, le-inclusive like
    Prometheus; ``per_unit`` field units make one unit of the metric (1000 ms = 1 s)."""

    field: str
    metric: str
    per_unit: int
    bounds: tuple[float, ...]


def _vital(field: str, metric: str, per_unit: int) -> Vital:
    buckets = METRICS[metric].buckets
    bounds = buckets if per_unit == 1 else tuple(round(b * per_unit) for b in buckets)
    return Vital(field, metric, per_unit, bounds)


# LCP is not among them: it is load_ms (the collector copies lcp_ms into it), counted in
# the page-load histogram and the page_load_1m rollup
VITALS: dict[str, Vital] = {
    v.field: v
    for v in (
        _vital("inp_ms", "salewatch_web_vitals_inp_seconds", 1000),
        _vital("cls", "salewatch_web_vitals_cls", 1),
        _vital("ttfb_ms", "salewatch_web_vitals_ttfb_seconds", 1000),
    )
}

# index into the value lists of Tally.orders and Tally.amounts
EVENTS, CENTS, WITH_COUPON = 0, 1, 2


class Tally:
    """Counts and sums of events by label tuple; see the attribute comments for keys."""

    __slots__ = (
        "amounts",
        "carts",
        "failures",
        "funnel",
        "orders",
        "page_loads",
        "page_views",
        "payment_orders",
        "tickets",
        "users",
        "visits",
        "vitals",
    )

    def __init__(self) -> None:
        # (channel, traffic_source, page_type) -> page_view events
        self.page_views: dict[tuple[str, str, str], int] = {}
        # (page_type, channel) -> PAGE_LOAD_BOUNDS_MS bucket counts + [sum of load_ms]
        self.page_loads: dict[tuple[str, str], list[int]] = {}
        # (vital field, page_type, channel) -> counts per bucket of VITALS[field].bounds
        # (the last one above them) + [sum of the field's values]
        self.vitals: dict[tuple[str, str, str], list[float]] = {}
        # (channel, traffic_source) -> sessions started (funnel step visit)
        self.visits: dict[tuple[str, str], int] = {}
        # (channel, traffic_source) -> distinct user_ids with a page_view
        self.users: dict[tuple[str, str], set[str]] = {}
        # (step, session channel) -> sessions reaching the step
        self.funnel: dict[tuple[str, str], int] = {}
        # (event_type, channel) -> cart events
        self.carts: dict[tuple[str, str], int] = {}
        # (event_type, channel, payment_method, region) -> [events, cents, with coupon]
        self.orders: dict[tuple[str, str, str, str], list[int]] = {}
        # (event_type, channel, category) -> [events, cents]
        self.amounts: dict[tuple[str, str, str], list[int]] = {}
        # (payment_method, region, failure_reason) -> payment_failed events
        self.failures: dict[tuple[str, str, str], int] = {}
        # (payment_method, outcome attempted|failed) -> orders, once each (classify)
        self.payment_orders: dict[tuple[str, str], int] = {}
        # (event_type, kind, reason) -> ticket events
        self.tickets: dict[tuple[str, str, str], int] = {}

    def reached(self, channel: str, traffic_source: str, old: int, new: int) -> None:
        """A session went from funnel step ``old`` to ``new`` (``StepSink``)."""
        if old == 0:
            key = (channel, traffic_source)
            self.visits[key] = self.visits.get(key, 0) + 1
        funnel = self.funnel
        for step in FUNNEL_STEPS[old:new]:
            key = (step, channel)
            funnel[key] = funnel.get(key, 0) + 1

    def merge(self, other: Tally) -> None:
        """Add ``other`` into this tally."""
        _add_counts(self.page_views, other.page_views)
        _add_counts(self.visits, other.visits)
        _add_counts(self.funnel, other.funnel)
        _add_counts(self.carts, other.carts)
        _add_counts(self.failures, other.failures)
        _add_counts(self.payment_orders, other.payment_orders)
        _add_counts(self.tickets, other.tickets)
        _add_lists(self.page_loads, other.page_loads)
        _add_lists(self.vitals, other.vitals)
        _add_lists(self.orders, other.orders)
        _add_lists(self.amounts, other.amounts)
        merge_users(self.users, other.users)


def _add_counts(mine: dict[K, int], theirs: dict[K, int]) -> None:
    for key, n in theirs.items():
        mine[key] = mine.get(key, 0) + n


def _add_lists(mine: dict[K, list[N]], theirs: dict[K, list[N]]) -> None:
    for key, values in theirs.items():
        current = mine.get(key)
        if current is None:
            mine[key] = list(values)
        else:
            for i, v in enumerate(values):
                current[i] += v


def merge_users(
    into: dict[tuple[str, str], set[str]], other: Mapping[tuple[str, str], set[str]]
) -> None:
    """Add ``other``'s distinct users by ``(channel, traffic_source)`` to ``into`` (copies
    the sets it adopts)."""
    for key, their_users in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = set(their_users)
        else:
            mine |= their_users
