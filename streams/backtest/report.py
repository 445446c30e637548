"""The backtest report: a JSON-able dict, a readable table of firings and a summary.

Times in the report are epoch milliseconds of event time (``*_ms``-free keys
``starts_at``/``ends_at``/``active_at`` too, as the issue asks); the table shows them as
UTC. ``ends_at`` is None for an alert still firing when the data ends.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streams.backtest.evaluate import Firing
from streams.metrics.defs import FUNNEL_STEPS
from streams.metrics.totals import Totals


def iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _sum_by(totals: Totals, name: str, position: int) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, value in totals.values.get(name, {}).items():
        out[labels[position]] += value
    return dict(sorted(out.items()))


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else round(value, 2)


def final_counters(totals: Totals) -> dict[str, Any]:
    """The business counters at the end of the replay, summed over their labels."""
    amounts = _sum_by(totals, "salewatch_order_amount_total", 0)
    funnel = _sum_by(totals, "salewatch_funnel_sessions_total", 0)
    tickets = _sum_by(totals, "salewatch_ticket_events_total", 0)
    return {
        "page_views": _number(totals.total("salewatch_page_views_total")),
        "sessions_started": _number(totals.total("salewatch_sessions_started_total")),
        "funnel_sessions": {step: _number(funnel.get(step, 0.0)) for step in FUNNEL_STEPS},
        "orders": {k: _number(v) for k, v in _sum_by(totals, "salewatch_orders_total", 0).items()},
        "gmv": _number(amounts.get("order_created", 0.0)),
        "paid_amount": _number(amounts.get("payment_succeeded", 0.0)),
        "cart_events": {
            k: _number(v) for k, v in _sum_by(totals, "salewatch_cart_events_total", 0).items()
        },
        "tickets_opened": _number(tickets.get("ticket_opened", 0.0)),
        "late_events": _number(totals.total("salewatch_events_late_total")),
        "duplicate_events": _number(totals.total("salewatch_events_duplicate_total")),
    }


def firing_entries(firings: Iterable[Firing]) -> list[dict[str, Any]]:
    out = []
    for firing in firings:
        ep = firing.episode
        labels = {k: v for k, v in ep.labels if k != "alertname"}
        end = ep.resolved_at_ms
        out.append(
            {
                "alertname": firing.rule.name,
                "labels": labels,
                "starts_at": ep.fired_at_ms,
                "ends_at": end,
                "active_at": ep.active_at_ms,
                "duration_s": None if end is None else (end - ep.fired_at_ms) / 1000,
            }
        )
    return out


def format_table(alerts: list[dict[str, Any]]) -> str:
    """One line per firing: name, distinguishing labels, start, end, duration (UTC)."""
    if not alerts:
        return "no alert fired"
    quiet = {"severity", "category"}
    rows = [("alert", "labels", "fired (UTC)", "resolved (UTC)", "for")]
    for a in alerts:
        labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k not in quiet)
        duration = "still firing" if a["ends_at"] is None else _duration(a["duration_s"])
        rows.append(
            (a["alertname"], labels or "-", iso(a["starts_at"]), iso(a["ends_at"]), duration)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_summary(report: dict[str, Any]) -> str:
    """A few lines for people: what was replayed, how fast, what fired."""
    period = report["period"]
    timings = report["timings"]
    counters = report["counters"]
    funnel = " → ".join(f"{k} {int(v):,}" for k, v in counters["funnel_sessions"].items())
    fired = report["alerts"]
    by_name: dict[str, int] = defaultdict(int)
    for a in fired:
        by_name[a["alertname"]] += 1
    alerts = ", ".join(f"{name} ×{n}" for name, n in sorted(by_name.items())) or "none"
    return "\n".join(
        [
            f"salewatch backtest: {report['events']:,} events, {report['invalid']:,} invalid,"
            f" {iso(period['start_ms'])} → {iso(period['end_ms'])} UTC"
            f" ({_duration(period['duration_s'])} of event time)",
            f"  replay   {timings['replay_s']:.1f}s"
            f" ({timings['replay_events_per_s']:,.0f} events/s)"
            f"   blocks {timings['blocks_s']:.1f}s   rules {timings['rules_s']:.1f}s"
            f" ({report['rules']['queries']} range queries, {report['rules']['levels']} levels)"
            f"   total {timings['total_s']:.1f}s",
            f"  series   {report['series']['scraped']:,} scraped"
            f" ({report['series']['scraped_samples']:,} samples),"
            f" {report['series']['recorded_samples']:,} recorded samples",
            f"  counters page views {counters['page_views']:,}"
            f"   orders {int(counters['orders'].get('order_created', 0)):,}"
            f"   paid {int(counters['orders'].get('payment_succeeded', 0)):,}",
            f"  funnel   {funnel}",
            f"  alerts   {len(fired)} firing(s): {alerts}",
        ]
    )
