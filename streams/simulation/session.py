"""One shopper's session, from landing page to payment, cancel, refund and tickets.

``run_session`` turns a session's start time and its own ``random.Random`` into the full,
time-ordered list of its events, including those far ahead of the start (the automatic
cancel 15 minutes after an unpaid order, after-sales tickets). Giving each session its own
random stream keeps sessions independent: an incident that changes one session's choices
does not shift the random draws of any other, so a run with an incident equals the run
without it outside the incident's reach.

Behaviour in brief: a session lands on a page that fits its traffic source, browses
(home → search/list → detail), adds to cart, checks out, pays with the user's usual method,
retries after a failed payment (often with another method), and either pays or is
cancelled exactly ``AUTO_CANCEL_MS`` after the order was created. A few paid orders get a
ticket (and maybe a refund) later, in a separate after-sales session. "Hunter" sessions —
most of them during the sale rush — arrive with a filled cart and buy quickly.

Every gap between two events of one session is below ``MAX_GAP_MS`` (< 30 minutes, the
session rule of EVENTS.md).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from streams.events.contract import SCHEMA_VERSION
from streams.simulation.catalog import (
    CATEGORY_PICK,
    CHANNELS,
    FAILURE_REASONS,
    OUTAGE_FAILURE_REASONS,
    PAYMENT_FAILURE_P,
    PAYMENT_METHODS,
    TICKET_KINDS,
    TICKET_REASONS,
    TRAFFIC_SOURCES,
    Catalog,
    Population,
)
from streams.simulation.incidents import IncidentSchedule
from streams.simulation.model import SimEvent, event_time

AUTO_CANCEL_MS = 15 * 60 * 1000
MAX_GAP_MS = 20 * 60 * 1000
MAX_PAGES = 60
CURRENCY = "CNY"

PAGE_LOAD_MEDIAN_MS = {
    "home": 1300.0,
    "search": 1500.0,
    "list": 1600.0,
    "detail": 1800.0,
    "cart": 1200.0,
    "checkout": 1700.0,
    "pay_result": 1100.0,
}
PAGE_LOAD_SIGMA = 0.45
CHANNEL_LOAD_FACTOR = {"app": 0.8, "mini_program": 0.9, "web": 1.1, "h5": 1.25}
SLOW_PAGES = frozenset({"detail", "cart", "checkout"})  # what checkout_slow slows down
# Normal draws come from a table of quantiles: one random() instead of random.gauss, which
# is pure Python and was the single largest cost per page view.
_QUANTILES = 4096
_STANDARD_NORMAL = [NormalDist().inv_cdf((q + 0.5) / _QUANTILES) for q in range(_QUANTILES)]
_LOAD_SPREAD = [math.exp(PAGE_LOAD_SIGMA * z) for z in _STANDARD_NORMAL]
# (threshold, discount) in cents, best first: "spend 300, save 50"
COUPONS = ((30_000, 5_000), (20_000, 3_000), (9_900, 1_000))


@dataclass(frozen=True)
class Behaviour:
    """Probabilities and pace of one kind of shopper."""

    think_median_s: float
    think_sigma: float
    p_add_to_cart: float  # on a detail page
    p_checkout: float  # on the cart page with a non-empty cart
    p_order: float  # on the checkout page
    p_pay_attempt: float  # after order_created
    p_retry: float  # after a failed payment
    p_coupon: float
    p_ticket: float  # per paid order
    p_direct_refund: float  # per paid order, cancelled by the user before shipping


BROWSER = Behaviour(9.0, 0.9, 0.14, 0.5, 0.75, 0.9, 0.6, 0.35, 0.04, 0.005)
HUNTER = Behaviour(3.0, 0.5, 0.6, 0.85, 0.92, 0.97, 0.8, 0.6, 0.05, 0.005)


class World:
    """What all sessions of one run share: the catalog, the users, ids, the incidents.

    ``horizon_ms`` is the end of the run: a session stops browsing there (what it would do
    later is never emitted, and skipping it changes no earlier event). ``payment_success``
    overrides methods' normal success rates; ``ticket_delay_s`` is the (uniform) range of
    delays from a payment to its after-sales ticket.
    """

    def __init__(
        self,
        catalog: Catalog,
        population: Population,
        id_prefix: str,
        schedule: IncidentSchedule,
        horizon_ms: int = 2**62,
        payment_success: tuple[tuple[str, float], ...] = (),
        ticket_delay_s: tuple[float, float] = (300.0, 3600.0),
    ) -> None:
        self.catalog = catalog
        self.population = population
        self.prefix = id_prefix
        self.schedule = schedule
        self.horizon_ms = horizon_ms  # events from here on are never emitted: stop there
        self.slow_on = schedule.has("checkout_slow")
        self.outage_on = schedule.has("payment_outage")
        # normal failure probability per method (catalog defaults, overridden per run)
        self.failure_p = dict(PAYMENT_FAILURE_P)
        self.failure_p.update({m: 1.0 - s for m, s in payment_success})
        self.ticket_delay_ms = (round(ticket_delay_s[0] * 1000), round(ticket_delay_s[1] * 1000))


class _Session:
    """Builds the event list of one session; ``t`` is its clock in epoch ms."""

    __slots__ = (
        "b",
        "cart",
        "channel",
        "load_factor",
        "n",
        "out",
        "region",
        "rng",
        "sid",
        "slow_on",
        "source",
        "t",
        "u",
        "user_id",
        "w",
    )

    def __init__(self, w: World, rng: random.Random, sid: str, start_ms: int, b: Behaviour) -> None:
        self.w, self.rng, self.sid, self.t, self.b = w, rng, sid, start_ms, b
        self.out: list[SimEvent] = []
        self.n = 0
        self.cart: list[list[int]] = []  # [item index, quantity]
        pop = w.population
        self.u = u = rng.randrange(pop.n)
        self.user_id = Population.user_id(u)
        self.region = pop.regions[u]
        self.channel = pop.channels[u] if rng.random() < 0.8 else CHANNELS.pick(rng)
        self.source = ""
        self.load_factor = CHANNEL_LOAD_FACTOR.get(self.channel, 1.0)
        self.slow_on = w.slow_on

    # --- event builders ---------------------------------------------------------------
    def _base(self, event_type: str, ts: int, session_id: str) -> dict[str, Any]:
        self.n += 1
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"{self.sid}-{self.n}",
            "event_type": event_type,
            "ts": ts,
            "user_id": self.user_id,
            "session_id": session_id,
            "channel": self.channel,
            "region": self.region,
        }

    def _click(self, event_type: str, page: str, item: int, load_ms: int) -> None:
        # one dict literal: this is the hottest line of the simulator
        self.n += 1
        t, sid = self.t, self.sid
        ev = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"{sid}-{self.n}",
            "event_type": event_type,
            "ts": t,
            "user_id": self.user_id,
            "session_id": sid,
            "channel": self.channel,
            "region": self.region,
            "page_type": page,
            "traffic_source": self.source,
        }
        if item >= 0:
            ev["item_id"] = self.w.catalog.ids[item]
            ev["category"] = self.w.catalog.categories[item]
        if load_ms >= 0:
            ev["load_ms"] = load_ms
        self.out.append(SimEvent(t, "clicks", sid, ev))

    def view(self, page: str, item: int = -1) -> None:
        median = PAGE_LOAD_MEDIAN_MS[page] * self.load_factor
        if self.slow_on and page in SLOW_PAGES:
            median *= max(1.0, self.w.schedule.severity("checkout_slow", self.t))
        load = int(median * _LOAD_SPREAD[int(self.rng.random() * _QUANTILES)])
        self._click("page_view", page, item, min(max(load, 50), 600_000))

    def click(self, page: str, item: int = -1) -> None:
        self.t += 300 + int(self.rng.random() * 4000)
        self._click("click", page, item, -1)

    def cart_event(self, event_type: str, item: int, quantity: int) -> None:
        self.t += 1 + int(self.rng.random() * 500)
        cat = self.w.catalog
        ev = self._base(event_type, self.t, self.sid)
        ev["item_id"] = cat.ids[item]
        ev["category"] = cat.categories[item]
        ev["quantity"] = quantity
        ev["price"] = cat.price_cents[item] / 100
        self.out.append(SimEvent(self.t, "carts", self.sid, ev))

    def order_event(
        self,
        event_type: str,
        ts: int,
        session_id: str,
        order_id: str,
        amount_cents: int,
        method: str,
        **extra: Any,
    ) -> dict[str, Any]:
        ev = self._base(event_type, ts, session_id)
        ev["order_id"] = order_id
        ev["amount"] = amount_cents / 100
        ev["currency"] = CURRENCY
        ev["payment_method"] = method
        ev.update(extra)
        self.out.append(SimEvent(ts, "orders", order_id, ev))
        return ev

    def think(self) -> None:
        b, rng = self.b, self.rng
        if rng.random() < 0.03:  # stepped away and came back
            pause = 120_000 + rng.random() * (MAX_GAP_MS - 120_000)
        else:
            z = _STANDARD_NORMAL[int(rng.random() * _QUANTILES)]
            pause = 1000 * b.think_median_s * math.exp(b.think_sigma * z)
        self.t += 200 + int(min(pause, MAX_GAP_MS - 10_000))

    # --- the session ------------------------------------------------------------------
    def run(self, index: int, hunter: bool) -> None:
        rng, b, cat = self.rng, self.b, self.w.catalog
        self.source = "direct" if hunter and rng.random() < 0.6 else TRAFFIC_SOURCES.pick(rng)
        interest = CATEGORY_PICK.pick(rng)
        item = cat.pick(rng, interest)
        orders = 0
        if hunter:
            # waited for the sale with a filled cart, or a deep link to the product
            u = rng.random()
            page = "cart" if u < 0.5 else "detail" if u < 0.8 else "home"
            if page == "cart":
                for _ in range(1 + int(rng.random() * 3)):
                    self.cart.append([cat.pick(rng, interest), 1])
        elif self.source in ("ads", "social", "affiliate", "email"):
            page = "detail" if rng.random() < 0.7 else "list"
        elif self.source == "search":
            page = "search" if rng.random() < 0.5 else "detail"
        else:
            page = "home" if rng.random() < 0.8 else "search"

        for _ in range(MAX_PAGES):
            if page == "detail":
                self.view(page, item)
            else:
                self.view(page)
            u = rng.random()
            nxt = "exit"
            if page == "home":
                if u >= 0.3:
                    item = cat.pick(rng, interest if u < 0.8 else None)
                    self.click(page, item)
                    v = rng.random()
                    nxt = "detail" if v < 0.35 else "list" if v < 0.7 else "search"
            elif page in ("search", "list"):
                if u >= 0.2:
                    item = cat.pick(rng, interest)
                    self.click(page, item)
                    nxt = "detail" if page == "list" or u < 0.7 else "list"
            elif page == "detail":
                slow = self._slowness()
                if u < b.p_add_to_cart / slow:
                    self.click(page, item)
                    quantity = 1 if rng.random() < 0.85 else 2 + int(rng.random() * 2)
                    self.cart_event("add_to_cart", item, quantity)
                    self.cart.append([item, quantity])
                    nxt = "cart" if rng.random() < 0.45 else "list"
                elif u < 0.6:
                    nxt = "list" if u < 0.45 else "search"
                    item = cat.pick(rng, interest)
            elif page == "cart":
                if len(self.cart) > 1 and u < 0.1:
                    gone = self.cart.pop(int(rng.random() * len(self.cart)))
                    self.click(page, gone[0])
                    self.cart_event("remove_from_cart", gone[0], gone[1])
                    u = rng.random()
                if self.cart and u < b.p_checkout / self._slowness() ** 0.5:
                    self.click(page)
                    nxt = "checkout"
                elif u < 0.75:
                    nxt = "detail"
            elif page == "checkout":
                if u < b.p_order / self._slowness() ** 0.7:
                    self.click(page)
                    orders += 1
                    self._order(index, orders)
                    nxt = "home" if rng.random() < 0.15 else "exit"
                elif u < 0.95:
                    nxt = "cart"
            if nxt == "exit":
                break
            page = nxt
            self.think()
            if self.t >= self.w.horizon_ms:
                break

    def _slowness(self) -> float:
        """The checkout_slow factor now (≥ 1); conversion falls with it."""
        if not self.slow_on:
            return 1.0
        return max(1.0, self.w.schedule.severity("checkout_slow", self.t))

    def _order(self, index: int, k: int) -> None:
        rng, b, cat = self.rng, self.b, self.w.catalog
        order_id = f"{self.w.prefix}-o{index:x}-{k}"
        items = [
            {
                "item_id": cat.ids[i],
                "category": cat.categories[i],
                "quantity": q,
                "price": cat.price_cents[i] / 100,
            }
            for i, q in self.cart
        ]
        subtotal = sum(cat.price_cents[i] * q for i, q in self.cart)
        self.cart = []
        extra: dict[str, Any] = {"items": items}
        discount = 0
        if rng.random() < b.p_coupon:
            for threshold, off in COUPONS:
                if subtotal >= threshold:
                    discount = off
                    extra["coupon_code"] = f"SALE{threshold // 100}-{off // 100}"
                    break
        amount = max(1, subtotal - discount)
        method = self.w.population.methods[self.u]
        if rng.random() > 0.85:
            method = PAYMENT_METHODS.pick(rng)
        self.t += 1
        created = self.t
        self.order_event("order_created", created, self.sid, order_id, amount, method, **extra)

        paid = False
        if rng.random() < b.p_pay_attempt:
            self.t += 2000 + int(1000 * b.think_median_s * 2 * rng.random())
            for attempt in range(1, 5):
                if self.t >= created + AUTO_CANCEL_MS:
                    break
                outage = 0.0
                if self.w.outage_on:
                    outage = self.w.schedule.severity("payment_outage", self.t, method)
                if outage and rng.random() < outage:
                    reason = OUTAGE_FAILURE_REASONS.pick(rng)
                elif rng.random() < self.w.failure_p.get(method, 0.05):
                    reason = FAILURE_REASONS.pick(rng)
                else:
                    self.order_event(
                        "payment_succeeded", self.t, self.sid, order_id, amount, method
                    )
                    paid = True
                    break
                self.order_event(
                    "payment_failed",
                    self.t,
                    self.sid,
                    order_id,
                    amount,
                    method,
                    failure_reason=reason,
                )
                self.t += 500
                self.view("pay_result")
                p_retry = b.p_retry * (0.5 if reason == "user_cancelled" else 1.0) / attempt
                if rng.random() >= p_retry:
                    break
                if rng.random() < (0.6 if reason in ("timeout", "bank_error") else 0.3):
                    method = PAYMENT_METHODS.pick(rng)
                self.t += 10_000 + int(rng.random() * 110_000)
        if not paid:
            self.order_event(
                "order_cancelled", created + AUTO_CANCEL_MS, self.sid, order_id, amount, method
            )
            return
        self.t += 500
        self.view("pay_result")
        if rng.random() < b.p_direct_refund:
            ts = self.t + 60_000 + int(rng.random() * 540_000)
            self.order_event("order_refunded", ts, self.sid, order_id, amount, method)
        elif rng.random() < b.p_ticket:
            self._after_sales(index, k, order_id, amount, method)

    def _after_sales(self, index: int, k: int, order_id: str, amount: int, method: str) -> None:
        """A ticket about a paid order, in its own session: the user comes back later."""
        rng = self.rng
        asid = f"{self.w.prefix}-a{index:x}-{k}"
        tid = f"{self.w.prefix}-t{index:x}-{k}"
        low, high = self.w.ticket_delay_ms
        t = self.t + low + int(rng.random() * (high - low))
        kind, reason = TICKET_KINDS.pick(rng), TICKET_REASONS.pick(rng)
        self._ticket("ticket_opened", t, asid, tid, order_id, kind, reason)
        if kind in ("return", "refund") and rng.random() < 0.7:
            t += 60_000 + int(rng.random() * 19 * 60_000)
            self.order_event("order_refunded", t, asid, order_id, amount, method)
        if rng.random() < 0.85:
            t += 60_000 + int(rng.random() * 9 * 60_000)
            self._ticket("ticket_resolved", t, asid, tid, order_id, kind, reason)

    def _ticket(
        self, event_type: str, ts: int, sid: str, tid: str, order_id: str, kind: str, reason: str
    ) -> None:
        ev = self._base(event_type, ts, sid)
        ev["ticket_id"] = tid
        ev["order_id"] = order_id
        ev["kind"] = kind
        ev["reason"] = reason
        self.out.append(SimEvent(ts, "tickets", tid, ev))


def run_session(
    world: World, rng: random.Random, index: int, start_ms: int, hunter: bool
) -> list[SimEvent]:
    """All events of session ``index`` starting at ``start_ms``, sorted by event time."""
    s = _Session(world, rng, f"{world.prefix}-s{index:x}", start_ms, HUNTER if hunter else BROWSER)
    s.run(index, hunter)
    s.out.sort(key=event_time)
    return s.out
