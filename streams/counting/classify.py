"""Turn one validated event into :class:`~streams.counting.tally.Tally` increments.

This is the per-event hot path (issue 8: 50k events/s on two workers), so it is plain
dict and tuple work: every label is normalised with one ``dict.get`` against a table of
its closed set (``streams.metrics.labels``; anything else, including a missing optional field,
is ``other``), the top-level category is cached, and nothing is logged.

Label rules beyond the closed sets:

* ``traffic_source`` is the event's own (clicks only); a session started by a cart or
  order event has traffic source ``other``.
* ``category`` of an order event is the top-level category of its first item. Payment,
  cancel and refund events usually carry no items: they get the category of their
  ``order_created``, remembered per ``order_id`` for ``ORDER_MEMORY_MS`` (30 minutes of
  event time: payment must follow within 15 minutes or the order is auto-cancelled);
  ``other`` when unknown (a refund days later, an order created before a restart).
* payment outcomes are also counted per ORDER and method (``salewatch_payment_orders_
  total``): ``attempted`` at an order's first ``payment_succeeded``/``payment_failed``
  with a method, ``failed`` at its first ``payment_failed`` with it (remembered like the
  categories). A shopper retrying one order three times is one failed order, so a burst
  of retries does not look like many shoppers failing; and the counter has one series per
  method and outcome, so Prometheus' ``rate()`` does not lose the first event of the many
  sparse (channel, region) series of a rarely used method. A restarted worker restores
  them from ClickHouse (``streams.worker.recovery``), like the categories.
* an order ``redeems a coupon`` when ``coupon_code`` is present and not empty.
* funnel steps and visits use the session's channel (its first event's), every other
  number the event's own channel.
* a ``page_view``'s load time and Core Web Vitals (``load_ms``, ``inp_ms``, ``cls``,
  ``ttfb_ms``) are optional: each is observed only when present, and an absent one is not
  a zero.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any

from streams.counting.expiring import ExpiringDict
from streams.counting.funnel import CART, CHECKOUT, DETAIL, NO_STEP, PAID, VISIT, SessionTracker
from streams.counting.tally import (
    CENTS,
    EVENTS,
    LOAD_MS_SUM,
    PAGE_LOAD_BOUNDS_MS,
    PAGE_LOAD_BUCKETS,
    VITALS,
    WITH_COUPON,
    Tally,
)
from streams.events.contract import EVENT_TYPES
from streams.metrics import labels as lv
from streams.metrics.defs import REGION_VALUES

OTHER = lv.OTHER
Event = Mapping[str, Any]

CATEGORY_CACHE_SIZE = 4096
ORDER_MEMORY_MS = 30 * 60 * 1000

# the funnel step an event means, by event type (anything else: none)
PAYMENT_OUTCOMES = frozenset({"payment_succeeded", "payment_failed"})
ORDER_STEPS = {"order_created": CHECKOUT, "payment_succeeded": PAID, "payment_failed": NO_STEP}
# (field, bucket bounds, slots: one per bucket + the overflow bucket + the sum) per vital
_VITAL_SLOTS = tuple((v.field, v.bounds, len(v.bounds) + 2) for v in VITALS.values())


def lookup(allowed: Iterable[str]) -> dict[str, str]:
    """A normalisation table: ``table.get(value, OTHER)`` is ``closed(value, allowed)``."""
    return {value: value for value in allowed}


class Classifier:
    """Adds each event to a tally and its session activity to a :class:`SessionTracker`.

    One method per topic, ``(event, tally) -> None``; events must be valid (``streams.
    decode``): required fields present with their JSON types.
    """

    def __init__(
        self,
        sessions: SessionTracker,
        regions: Iterable[str] = REGION_VALUES,
        categories: frozenset[str] = lv.DEFAULT_CATEGORIES,
        max_order_categories: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.channels = lookup(lv.CHANNELS)
        self.page_types = lookup(lv.PAGE_TYPES)
        self.traffic_sources = lookup(lv.TRAFFIC_SOURCES)
        self.payment_methods = lookup(lv.PAYMENT_METHODS)
        self.failure_reasons = lookup(lv.FAILURE_REASONS)
        self.ticket_kinds = lookup(lv.TICKET_KINDS)
        self.ticket_reasons = lookup(lv.TICKET_REASONS)
        self.regions = lookup(lv.closed_set(regions))
        self.cart_types = lookup(EVENT_TYPES["carts"])
        self.order_types = lookup(EVENT_TYPES["orders"])
        self.ticket_types = lookup(EVENT_TYPES["tickets"])
        self.category: Callable[[object], str] = lru_cache(maxsize=CATEGORY_CACHE_SIZE)(
            partial(lv.top_category, allowed=categories)
        )
        # order_id -> (category, order_created ts); beyond ``max_order_categories`` the
        # oldest minute is forgotten early: a payment of such an order counts under
        # category "other" (salewatch_state_evictions_total{state="order_categories"})
        self.order_categories: ExpiringDict[tuple[str, int]] = ExpiringDict(
            itemgetter(1), capacity=max_order_categories
        )
        # "order_id payment_method" -> (ts of its first payment attempt, failed once)
        self.paying_orders: ExpiringDict[tuple[int, bool]] = ExpiringDict(itemgetter(0))

    def by_topic(self) -> dict[str, Callable[[Event, Tally], None]]:
        return {
            "clicks": self.click,
            "carts": self.cart,
            "orders": self.order,
            "tickets": self.ticket,
        }

    def click(self, e: Event, t: Tally) -> None:
        channel = self.channels.get(e["channel"], OTHER)
        source = self.traffic_sources.get(e.get("traffic_source"), OTHER)  # type: ignore[arg-type]
        step = NO_STEP
        if e["event_type"] == "page_view":
            page_type = self.page_types.get(e["page_type"], OTHER)
            key = (channel, source, page_type)
            t.page_views[key] = t.page_views.get(key, 0) + 1
            user_key = (channel, source)
            users = t.users.get(user_key)
            if users is None:
                users = t.users[user_key] = set()
            users.add(e["user_id"])
            load_ms = e.get("load_ms")
            if load_ms is not None:
                load_key = (page_type, channel)
                slots = t.page_loads.get(load_key)
                if slots is None:
                    slots = t.page_loads[load_key] = [0] * (PAGE_LOAD_BUCKETS + 1)
                slots[bisect_left(PAGE_LOAD_BOUNDS_MS, load_ms)] += 1
                slots[LOAD_MS_SUM] += load_ms
            vitals = t.vitals
            for field, bounds, size in _VITAL_SLOTS:
                value = e.get(field)
                if value is not None:
                    vital_key = (field, page_type, channel)
                    values = vitals.get(vital_key)
                    if values is None:
                        values = vitals[vital_key] = [0.0] * size
                    values[bisect_left(bounds, value)] += 1
                    values[-1] += value
            step = DETAIL if page_type == "detail" else VISIT
        self.sessions.touch(e["session_id"], channel, source, e["ts"], step, t)

    def cart(self, e: Event, t: Tally) -> None:
        channel = self.channels.get(e["channel"], OTHER)
        event_type = self.cart_types.get(e["event_type"], OTHER)
        key = (event_type, channel)
        t.carts[key] = t.carts.get(key, 0) + 1
        step = CART if event_type == "add_to_cart" else NO_STEP
        self.sessions.touch(e["session_id"], channel, OTHER, e["ts"], step, t)

    def order(self, e: Event, t: Tally) -> None:
        channel = self.channels.get(e["channel"], OTHER)
        event_type = self.order_types.get(e["event_type"], OTHER)
        method = self.payment_methods.get(e["payment_method"], OTHER)
        region = self.regions.get(e["region"], OTHER)
        cents = round(e["amount"] * 100)
        key = (event_type, channel, method, region)
        counts = t.orders.get(key)
        if counts is None:
            counts = t.orders[key] = [0, 0, 0]
        counts[EVENTS] += 1
        counts[CENTS] += cents
        if e.get("coupon_code"):
            counts[WITH_COUPON] += 1
        items = e.get("items")
        if items:
            category = self.category(items[0]["category"])
            if event_type == "order_created":
                self.order_categories.set(e["order_id"], (category, e["ts"]))
        else:
            remembered = self.order_categories.get(e["order_id"])
            category = OTHER if remembered is None else remembered[0]
        amount_key = (event_type, channel, category)
        sums = t.amounts.get(amount_key)
        if sums is None:
            sums = t.amounts[amount_key] = [0, 0]
        sums[EVENTS] += 1
        sums[CENTS] += cents
        if event_type == "payment_failed":
            reason = self.failure_reasons.get(e.get("failure_reason"), OTHER)  # type: ignore[arg-type]
            failure_key = (method, region, reason)
            t.failures[failure_key] = t.failures.get(failure_key, 0) + 1
        if event_type in PAYMENT_OUTCOMES:
            self._payment_order(e, method, event_type == "payment_failed", t)
        step = ORDER_STEPS.get(event_type)
        if step is not None:
            self.sessions.touch(e["session_id"], channel, OTHER, e["ts"], step, t)

    def restore_paying_order(
        self, order_id: str, payment_method: str, failed: bool, first_ms: int
    ) -> None:
        method = self.payment_methods.get(payment_method, OTHER)
        self.paying_orders.set(f"{order_id} {method}", (first_ms, failed))

    def _payment_order(self, e: Event, method: str, failed: bool, t: Tally) -> None:
        key = f"{e['order_id']} {method}"
        seen = self.paying_orders.get(key)
        counts = t.payment_orders
        if seen is None:
            counts[(method, "attempted")] = counts.get((method, "attempted"), 0) + 1
            self.paying_orders.set(key, (e["ts"], failed))
        elif failed and not seen[1]:
            self.paying_orders.set(key, (seen[0], True))
        else:
            return
        if failed:
            counts[(method, "failed")] = counts.get((method, "failed"), 0) + 1

    def ticket(self, e: Event, t: Tally) -> None:
        key = (
            self.ticket_types.get(e["event_type"], OTHER),
            self.ticket_kinds.get(e["kind"], OTHER),
            self.ticket_reasons.get(e["reason"], OTHER),
        )
        t.tickets[key] = t.tickets.get(key, 0) + 1

    def expire(self, now_ms: int, grace_ms: int) -> int:
        """Forget order categories and paying orders older than ``ORDER_MEMORY_MS +
        grace_ms`` at ``now_ms``."""
        cut = now_ms - ORDER_MEMORY_MS - grace_ms + 1
        return self.order_categories.expire(cut) + self.paying_orders.expire(cut)
