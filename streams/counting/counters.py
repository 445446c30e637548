"""Add a tally to the Prometheus ``Totals``, and set the distinct-user gauges.

Everything countable is a cumulative counter (PromQL ``rate``/``increase`` work across
restarts and workers); the only gauges are the distinct-user counts of the last closed
windows, because distinct users cannot be added up. This runs once per batch per
window, not per event: a tally holds one entry per label set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.counting.tally import (
    CENTS,
    EVENTS,
    LOAD_MS_SUM,
    PAGE_LOAD_BUCKETS,
    VITALS,
    WITH_COUPON,
    Tally,
)
from streams.metrics.defs import METRICS
from streams.metrics.totals import HistogramValue, LabelValues, Totals

PAGE_LOAD = "salewatch_page_load_seconds"

# tally attribute -> the counter it feeds, with the same label order
_PLAIN_COUNTERS = (
    ("page_views", "salewatch_page_views_total"),
    ("visits", "salewatch_sessions_started_total"),
    ("funnel", "salewatch_funnel_sessions_total"),
    ("carts", "salewatch_cart_events_total"),
    ("failures", "salewatch_payment_failures_total"),
    ("payment_orders", "salewatch_payment_orders_total"),
    ("tickets", "salewatch_ticket_events_total"),
)

ACTIVE_USER_GAUGES = {
    1: "salewatch_active_users_1m",
    5: "salewatch_active_users_5m",
    15: "salewatch_active_users_15m",
}


def add_to_totals(tally: Tally, totals: Totals) -> None:
    """Add every count and sum of ``tally`` to the counters and histograms of ``totals``."""
    inc = totals.inc
    for attribute, name in _PLAIN_COUNTERS:
        counts: Mapping[LabelValues, int] = getattr(tally, attribute)
        for labels, n in counts.items():
            inc(name, labels, n)
    for labels, values in tally.orders.items():
        inc("salewatch_orders_total", labels, values[EVENTS])
        if values[WITH_COUPON] and labels[0] == "order_created":
            inc("salewatch_coupon_redemptions_total", (labels[1],), values[WITH_COUPON])
    for labels, values in tally.amounts.items():
        inc("salewatch_order_amount_total", labels, values[CENTS] / 100)
    if tally.page_loads:
        series = _histogram_series(totals, PAGE_LOAD)
        for labels, slots in tally.page_loads.items():
            _add_buckets(series, labels, slots[:PAGE_LOAD_BUCKETS], slots[LOAD_MS_SUM] / 1000)
    for (field, page_type, channel), observed in tally.vitals.items():
        vital = VITALS[field]
        _add_buckets(
            _histogram_series(totals, vital.metric),
            (page_type, channel),
            observed[:-1],
            observed[-1] / vital.per_unit,
        )


def set_active_users(totals: Totals, minutes: int, by_channel: Mapping[str, float]) -> None:
    """Set the ``minutes``-long distinct-user gauge of each channel (and ``all``)."""
    name = ACTIVE_USER_GAUGES[minutes]
    for channel, users in by_channel.items():
        totals.set(name, (channel,), users)


def _add_buckets(
    series: dict[LabelValues, HistogramValue],
    labels: LabelValues,
    counts: Sequence[float],
    total: float,
) -> None:
    """Add per-bucket ``counts`` (whole numbers) and their ``total`` to one series."""
    hist = series.get(labels)
    if hist is None:
        hist = series[labels] = HistogramValue([0] * len(counts))
    buckets = hist.bucket_counts
    for i, n in enumerate(counts):
        buckets[i] += int(n)
    hist.count += int(sum(counts))
    hist.sum += total


def _histogram_series(totals: Totals, name: str) -> dict[LabelValues, HistogramValue]:
    # per-bucket counts come from the tally already bucketed, so they are added directly
    # instead of one Totals.observe per event; same bounds, same le-inclusive buckets
    if METRICS[name].kind != "histogram":
        raise KeyError(f"{name} is not a histogram")
    return totals.histograms.setdefault(name, {})
