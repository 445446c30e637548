"""Rows of ``streams.recap.queries`` → the recap's numbers (``recap.json``).

``Execute`` is any ``sql -> rows`` callable: clickhouse-driver on the real server, chdb in
tests. Values are converted here (``int()``, ``Decimal(str)``), so both clients' row types
(tuples of Python values, JSON lists with quoted 64-bit integers) give the same recap.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from streams.metrics.defs import FUNNEL_STEPS
from streams.recap import queries as q

Execute = Callable[[str], Sequence[Sequence[Any]]]
Progress = Callable[[str], None]
RFM_SEGMENTS = ("champions", "loyal", "big_spenders", "promising", "one_off")


@dataclass(frozen=True)
class Window:
    from_s: int
    to_s: int


def _money(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def paid_series(execute: Execute, window: Window) -> list[tuple[int, float]]:
    """(minute start epoch ms, paid GMV) of every minute of the window with a payment."""
    rows = execute(q.paid_per_minute(window.from_s, window.to_s))
    return [(int(m) * 1000, float(_money(g))) for m, g in rows]


def headline(execute: Execute, window: Window, series: list[tuple[int, float]]) -> dict[str, Any]:
    """The numbers of the recap's first line (recap.json's top level)."""
    f, t = window.from_s, window.to_s
    gmv, orders, paid_sessions, buyers = execute(q.headline(f, t))[0]
    gmv_paid = _money(gmv)
    orders_paid, paid_sessions = int(orders), int(paid_sessions)
    visits = int(execute(q.visit_sessions(f, t))[0][0])
    tickets = int(execute(q.tickets_opened(f, t))[0][0])
    # the highest minute; the earliest of equal ones
    peak = min(series, key=lambda p: (-p[1], p[0])) if series else None
    return {
        "gmv_paid": float(gmv_paid),
        "orders_paid": orders_paid,
        "visit_sessions": visits,
        "paid_sessions": paid_sessions,
        "buyers": int(buyers),
        "conversion": _ratio(paid_sessions, visits),
        "aov": float(gmv_paid / orders_paid) if orders_paid else None,
        "peak_minute": peak[0] if peak else None,
        "peak_minute_gmv": peak[1] if peak else None,
        "tickets_opened": tickets,
        "tickets_per_1000_paid": _ratio(1000 * tickets, orders_paid),
    }


def funnel(execute: Execute, window: Window) -> list[dict[str, Any]]:
    rows = execute(q.funnel_by_channel(window.from_s, window.to_s))
    return [
        {"channel": str(r[0]), **{s: int(v) for s, v in zip(FUNNEL_STEPS, r[1:], strict=True)}}
        for r in rows
    ]


def payments(execute: Execute, window: Window) -> list[dict[str, Any]]:
    out = []
    for method, ok, failed in execute(q.payment_success_by_method(window.from_s, window.to_s)):
        out.append(
            {
                "payment_method": str(method),
                "succeeded": int(ok),
                "failed": int(failed),
                "success_rate": _ratio(int(ok), int(ok) + int(failed)),
            }
        )
    return out


def page_speed(execute: Execute, window: Window) -> list[dict[str, Any]]:
    rows = execute(q.page_speed_by_page_type(window.from_s, window.to_s))
    return [{"page_type": str(p), "measured_views": int(n), "p75_ms": float(v)} for p, n, v in rows]


def rfm_segment(recency_score: int, orders: int, monetary_score: int) -> str:
    """A buyer's segment from recency and monetary tertile scores (1 low .. 3 high; recent =
    high) and the number of paid orders. Rules, not clustering, so that a segment means
    the same thing from one sale to the next."""
    if orders >= 2 and recency_score >= 2 and monetary_score == 3:
        return "champions"
    if orders >= 2:
        return "loyal"
    if monetary_score == 3:
        return "big_spenders"
    if recency_score >= 2:
        return "promising"
    return "one_off"


def tertile_scores(values: Sequence[float]) -> list[int]:
    """1, 2 or 3 by rank (ties share the lower rank's score): the value's tertile."""
    ordered = sorted(values)
    n = len(ordered)
    first: dict[float, int] = {}
    for i, v in enumerate(ordered):
        first.setdefault(v, i)
    return [1 + min(2, 3 * first[v] // n) for v in values]


def customers(execute: Execute, window: Window, buyers: int) -> dict[str, Any]:
    """New vs returning buyers, D1/D7 repurchase of the new ones, RFM segments."""
    f, t = window.from_s, window.to_s
    returning = int(execute(q.returning_buyers(f, t))[0][0])
    rows = execute(q.repurchase(f, t))
    new_buyers, d1, d7, last_first = (int(v) for v in rows[0]) if rows else (0, 0, 0, 0)
    until = execute(q.data_until(f, t))
    data_until_ms = int(until[0][0]) if until and until[0][0] is not None else None
    repurchase: dict[str, Any] = {"data_until_ms": data_until_ms}
    for days, count in zip(q.REPURCHASE_DAYS, (d1, d7), strict=True):
        horizon_ms = last_first + days * q.DAY_S * 1000
        repurchase[f"d{days}"] = {
            "repurchased": count,
            "rate": _ratio(count, new_buyers),
            # every new buyer's N days are inside the data only if it reaches that far
            "complete": data_until_ms is not None and data_until_ms >= horizon_ms,
        }
    rfm_rows = execute(q.buyers_rfm(f, t))
    recency = [-(t * 1000 - int(r[1])) for r in rfm_rows]  # more recent = larger
    monetary = [float(_money(r[3])) for r in rfm_rows]
    segments: Counter[str] = Counter()
    for r_score, row, m_score in zip(
        tertile_scores(recency), rfm_rows, tertile_scores(monetary), strict=True
    ):
        segments[rfm_segment(r_score, int(row[2]), m_score)] += 1
    return {
        "buyers": buyers,
        "new_buyers": buyers - returning,
        "returning_buyers": returning,
        "lookback_days": q.LOOKBACK_DAYS,
        "repurchase": repurchase,
        "rfm_segments": {s: segments.get(s, 0) for s in RFM_SEGMENTS},
    }


def cumulative(series: list[tuple[int, float]]) -> list[tuple[int, float]]:
    out, total = [], 0.0
    for ms, gmv in series:
        total += gmv
        out.append((ms, total))
    return out


def aligned(
    series: list[tuple[int, float]], start_ms: int, onto_ms: int
) -> list[tuple[int, float]]:
    """``series`` moved so that ``start_ms`` falls on ``onto_ms`` (minutes since start)."""
    return [(ms - start_ms + onto_ms, v) for ms, v in series]


def recap(
    execute: Execute,
    window: Window,
    *,
    compare_from_s: int | None = None,
    target: float | None = None,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Everything ``recap.json`` holds, but the alerts (from Prometheus, added by the CLI)."""
    progress("paid GMV per minute")
    series = paid_series(execute, window)
    progress("headline numbers")
    out: dict[str, Any] = {
        "from_ms": window.from_s * 1000,
        "to_ms": window.to_s * 1000,
        **headline(execute, window, series),
    }
    out["gmv_target"] = target
    out["gmv_vs_target"] = _ratio(out["gmv_paid"], target) if target else None
    out["gmv_per_minute"] = [[ms, v] for ms, v in series]
    if compare_from_s is not None:
        progress("compared sale")
        length = window.to_s - window.from_s
        previous = paid_series(execute, Window(compare_from_s, compare_from_s + length))
        out["compare_from_ms"] = compare_from_s * 1000
        out["compare_gmv_paid"] = math.fsum(v for _, v in previous)
        out["compare_gmv_per_minute"] = [
            [ms, v] for ms, v in aligned(previous, compare_from_s * 1000, window.from_s * 1000)
        ]
    progress("funnel by channel")
    out["funnel_by_channel"] = funnel(execute, window)
    progress("payment success by method")
    out["payment_success_by_method"] = payments(execute, window)
    progress("page speed by page type")
    out["page_speed_p75_by_page_type"] = page_speed(execute, window)
    progress("customers: new, returning, repurchase, RFM")
    out["customers"] = customers(execute, window, out["buyers"])
    return out
