"""What ``recap.json`` must say, computed here in plain Python from the events themselves.

Independent of the SQL: events are deduplicated by ``(topic, event_id)`` (what the raw
tables' ``FINAL`` does with a redelivered event), put in the window by their event time in
whole seconds (the tables' ``event_time``), and counted with sets and sums. Only the
RFM segment rules (pure functions) are shared with the code under test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from streams.recap.compute import RFM_SEGMENTS, rfm_segment, tertile_scores

DAY_MS = 86_400_000
LOOKBACK_DAYS = 365
Event = tuple[str, dict[str, Any]]


def unique(events: Iterable[Event]) -> list[Event]:
    seen: dict[tuple[str, str], Event] = {}
    for topic, event in events:
        seen.setdefault((topic, event["event_id"]), (topic, event))
    return list(seen.values())


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def truth(events: Iterable[Event], from_s: int, to_s: int) -> dict[str, Any]:
    events = unique(events)

    def inside(e: dict[str, Any], lo_s: int = from_s, hi_s: int = to_s) -> bool:
        return lo_s <= e["ts"] // 1000 < hi_s

    paid = [e for t, e in events if t == "orders" and e["event_type"] == "payment_succeeded"]
    paid_in = [e for e in paid if inside(e)]
    gmv = sum((money(e["amount"]) for e in paid_in), Decimal(0))
    orders = {e["order_id"] for e in paid_in}
    paid_sessions = {e["session_id"] for e in paid_in}
    visits = {
        e["session_id"]
        for t, e in events
        if t == "clicks" and e["event_type"] == "page_view" and inside(e)
    }
    tickets = {
        e["ticket_id"]
        for t, e in events
        if t == "tickets" and e["event_type"] == "ticket_opened" and inside(e)
    }
    per_minute: dict[int, Decimal] = defaultdict(Decimal)
    for e in paid_in:
        per_minute[e["ts"] // 60_000 * 60_000] += money(e["amount"])
    peak = min(per_minute.items(), key=lambda kv: (-kv[1], kv[0])) if per_minute else None

    # funnel: each session's deepest step, its channel that of its first step event
    depth: dict[str, tuple[int, int, str]] = {}  # session -> (depth, first ts, channel)
    first: dict[str, tuple[int, str]] = {}
    for topic, e in events:
        if not inside(e):
            continue
        step = 0
        if topic == "clicks" and e["event_type"] == "page_view":
            step = 2 if e["page_type"] == "detail" else 1
        elif topic == "carts" and e["event_type"] == "add_to_cart":
            step = 3
        elif topic == "orders" and e["event_type"] == "order_created":
            step = 4
        elif topic == "orders" and e["event_type"] == "payment_succeeded":
            step = 5
        if not step:
            continue
        s = e["session_id"]
        depth[s] = (max(step, depth.get(s, (0, 0, ""))[0]), 0, "")
        if s not in first or e["ts"] < first[s][0]:
            first[s] = (e["ts"], e["channel"])
    funnel: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
    for s, (d, _, _) in depth.items():
        for i in range(d):
            funnel[first[s][1]][i] += 1

    # customers
    buyers = {e["user_id"] for e in paid_in}
    lookback_lo = from_s - LOOKBACK_DAYS * 86_400
    earlier = {e["user_id"] for e in paid if inside(e, lookback_lo, from_s)}
    returning = buyers & earlier
    new = buyers - earlier
    first_buy: dict[str, dict[str, Any]] = {}
    for e in sorted(paid_in, key=lambda e: e["ts"]):
        first_buy.setdefault(e["user_id"], e)
    horizon_hi = to_s + 7 * 86_400 + 1
    later = [e for e in paid if inside(e, from_s, horizon_hi)]
    repurchased = {1: set(), 7: set()}  # type: dict[int, set[str]]
    for e in later:
        f = first_buy.get(e["user_id"])
        if f is None or e["user_id"] not in new or e["order_id"] == f["order_id"]:
            continue
        for days in (1, 7):
            if f["ts"] <= e["ts"] <= f["ts"] + days * DAY_MS:
                repurchased[days].add(e["user_id"])
    per_buyer: dict[str, list[Any]] = {}
    for e in paid:
        if e["user_id"] in buyers and inside(e, lookback_lo, to_s):
            b = per_buyer.setdefault(e["user_id"], [0, set(), Decimal(0)])
            b[0] = max(b[0], e["ts"])
            b[1].add(e["order_id"])
            b[2] += money(e["amount"])
    users = sorted(per_buyer)
    r_scores = tertile_scores([-(to_s * 1000 - per_buyer[u][0]) for u in users])
    m_scores = tertile_scores([float(per_buyer[u][2]) for u in users])
    segments = dict.fromkeys(RFM_SEGMENTS, 0)
    for u, r, m in zip(users, r_scores, m_scores, strict=True):
        segments[rfm_segment(r, len(per_buyer[u][1]), m)] += 1

    return {
        "gmv_paid": float(gmv),
        "orders_paid": len(orders),
        "visit_sessions": len(visits),
        "paid_sessions": len(paid_sessions),
        "conversion": len(paid_sessions) / len(visits) if visits else None,
        "aov": float(gmv / len(orders)) if orders else None,
        "peak_minute": peak[0] if peak else None,
        "peak_minute_gmv": float(peak[1]) if peak else None,
        "tickets_per_1000_paid": 1000 * len(tickets) / len(orders) if orders else None,
        "funnel_by_channel": {
            channel: dict(zip(("visit", "detail", "cart", "checkout", "paid"), counts, strict=True))
            for channel, counts in funnel.items()
        },
        "new_buyers": len(new),
        "returning_buyers": len(returning),
        "repurchased_d1": len(repurchased[1]),
        "repurchased_d7": len(repurchased[7]),
        "rfm_segments": segments,
    }


HEADLINE = (
    "gmv_paid",
    "orders_paid",
    "visit_sessions",
    "paid_sessions",
    "conversion",
    "aov",
    "peak_minute",
    "peak_minute_gmv",
    "tickets_per_1000_paid",
)


def compare(recap: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Differences between a recap and the truth, one line each (empty: they agree)."""
    problems = []

    def check(name: str, got: Any, want: Any) -> None:
        if isinstance(want, float) and isinstance(got, int | float):
            same = abs(got - want) <= 1e-9 * max(1.0, abs(want))
        else:
            same = got == want
        if not same:
            problems.append(f"{name}: recap {got!r}, truth {want!r}")

    for key in HEADLINE:
        check(key, recap[key], expected[key])
    funnel = {
        row["channel"]: {k: v for k, v in row.items() if k != "channel"}
        for row in recap["funnel_by_channel"]
    }
    check("funnel_by_channel", funnel, expected["funnel_by_channel"])
    customers = recap["customers"]
    check("new_buyers", customers["new_buyers"], expected["new_buyers"])
    check("returning_buyers", customers["returning_buyers"], expected["returning_buyers"])
    check("d1", customers["repurchase"]["d1"]["repurchased"], expected["repurchased_d1"])
    check("d7", customers["repurchase"]["d7"]["repurchased"], expected["repurchased_d7"])
    check("rfm_segments", customers["rfm_segments"], expected["rfm_segments"])
    return problems
