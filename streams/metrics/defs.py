"""Every salewatch metric, declared once: name, type, help text, labels, allowed values.

Nothing else in the code base invents a metric name. Label values come from closed sets
(``streams.metrics.labels``); anything outside a set is counted as ``other`` before it reaches a
metric, so the number of series is bounded by the product of the set sizes. No user,
session, order or event id is ever a label.

Counters are cumulative (PromQL ``rate``/``increase`` work across restarts and workers);
gauges are used only for per-window or point-in-time values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams.clickhouse.errors import REJECT_REASONS as CLICKHOUSE_REJECT_REASONS
from streams.collector.beacon import BEACON_REJECT_REASONS
from streams.events.contract import EVENT_TYPES, TOPICS
from streams.events.decode import REJECT_REASONS
from streams.metrics import labels as lv
from streams.settings import DEFAULT_REGIONS
from streams.worker.offset_fence import REFUSAL_REASONS
from streams.worker.unreadable import UNREADABLE_REASONS

MetricKind = Literal["counter", "gauge", "histogram"]

TOPIC_VALUES = frozenset(TOPICS) | {lv.OTHER}
ALL_EVENT_TYPES = frozenset().union(*EVENT_TYPES.values()) | {lv.OTHER}
CLICKHOUSE_TABLE_VALUES = frozenset(
    {"clicks_raw", "carts_raw", "orders_raw", "tickets_raw", "rollups", lv.OTHER}
)

# kinds of bounded in-memory state (streams.counting: sessions, order categories, dedupe)
STATE_VALUES = frozenset({"sessions", "order_categories", "dedupe_ids", lv.OTHER})

HANDOVER_OUTCOMES = frozenset(
    {"written", "write_failed", "applied", "refused", "read_failed", lv.OTHER}
)

REBUILD_FAILURE_REASONS = frozenset({"clickhouse_unreachable", "clickhouse_error", lv.OTHER})

# EVENTS.md funnel, in order; a later step implies the earlier ones
FUNNEL_STEPS = ("visit", "detail", "cart", "checkout", "paid")
# the configured region list (SALEWATCH_REGIONS); documented with its default
REGION_VALUES = lv.closed_set(DEFAULT_REGIONS)
ORDER_EVENT_TYPES = EVENT_TYPES["orders"] | {lv.OTHER}
# salewatch_payment_orders_total: an order attempting payment with a method, and failing
PAYMENT_ORDER_OUTCOMES = frozenset({"attempted", "failed"})
# distinct-user gauges also have the union of all channels
ALL_CHANNELS = "all"
ACTIVE_USER_CHANNELS = lv.CHANNELS | {ALL_CHANNELS}

# web-vitals friendly: LCP "good" ≤ 2.5 s, "poor" > 4 s
PAGE_LOAD_BUCKETS_S = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0)
# Core Web Vitals thresholds are bucket bounds, so "share of good/poor" is exact:
# INP "good" ≤ 200 ms, "poor" > 500 ms
INP_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
# CLS (unitless score) "good" ≤ 0.1, "poor" > 0.25
CLS_BUCKETS = (0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0)
# TTFB "good" ≤ 0.8 s, "poor" > 1.8 s
TTFB_BUCKETS_S = (0.1, 0.2, 0.4, 0.8, 1.2, 1.8, 3.0, 5.0, 10.0)
LAG_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000)


@dataclass(frozen=True)
class MetricDef:
    """One metric. ``labels`` maps each label name to its closed set of values.

    ``starts_at_zero``: every label combination is exported at 0 from the process start
    (``Totals`` creates them), so that ``rate()``/``increase()`` see the FIRST increment of
    a series; a series born at 5 would hide those 5 (Prometheus has no earlier sample).
    Only for small label sets that alert rules read at low rates.
    """

    name: str
    kind: MetricKind
    help: str
    labels: tuple[tuple[str, frozenset[str]], ...] = ()
    buckets: tuple[float, ...] = ()
    starts_at_zero: bool = False

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.labels)

    @property
    def max_series(self) -> int:
        """Upper bound on the number of label combinations."""
        total = 1
        for _, values in self.labels:
            total *= len(values)
        return total


_DEFS: tuple[MetricDef, ...] = (
    # --- pipeline health -------------------------------------------------------------
    MetricDef(
        "salewatch_events_received_total",
        "counter",
        "Events read from Kafka (an array message counts each element), valid or not.",
        (("topic", TOPIC_VALUES),),
    ),
    MetricDef(
        "salewatch_events_valid_total",
        "counter",
        "Events that passed validation, by topic and event type.",
        (("topic", TOPIC_VALUES), ("event_type", ALL_EVENT_TYPES)),
    ),
    MetricDef(
        "salewatch_events_invalid_total",
        "counter",
        "Events refused by validation and sent to dead_letters, by reason.",
        (("topic", TOPIC_VALUES), ("reason", REJECT_REASONS)),
    ),
    MetricDef(
        "salewatch_dead_letters_total",
        "counter",
        "Messages written to the dead_letters topic.",
        (("topic", TOPIC_VALUES),),
    ),
    MetricDef(
        "salewatch_state_entries",
        "gauge",
        "Entries of the worker's bounded in-memory state, per kind: live sessions, order "
        "categories remembered for later payments, recent event ids (dedupe). Set once per "
        "window-timer tick.",
        (("state", STATE_VALUES),),
    ),
    MetricDef(
        "salewatch_state_capacity",
        "gauge",
        "The cap of each kind of in-memory state (SALEWATCH_MAX_LIVE_SESSIONS, "
        "SALEWATCH_MAX_ORDER_CATEGORIES, SALEWATCH_DEDUPE_CAPACITY).",
        (("state", STATE_VALUES),),
    ),
    MetricDef(
        "salewatch_state_evictions_total",
        "counter",
        "Entries dropped by a cap before their time: sessions (a later event of one starts a "
        "new session, whose funnel steps count again) and order categories (a later payment "
        "counts under category other). The dedupe memory forgets its oldest id by design "
        "and is not counted here.",
        (("state", STATE_VALUES),),
    ),
    MetricDef(
        "salewatch_rebuild_failures_total",
        "counter",
        "Assignments whose counting state could not be rebuilt from ClickHouse within the "
        "retry time (60 s): the worker counts those partitions from an empty state (open "
        "windows and sessions start over). Programming errors are not counted here: they "
        "stop the worker.",
        (("reason", REBUILD_FAILURE_REASONS),),
    ),
    MetricDef(
        "salewatch_events_handed_over_total",
        "counter",
        "Events read again after a handover (streams.worker.handover): a previous owner "
        "of their partition counted them into its totals and released the partition "
        "before ClickHouse stored them. They are stored and counted into windows and "
        "sessions, not into the totals again.",
        (("topic", TOPIC_VALUES),),
    ),
    MetricDef(
        "salewatch_handovers_total",
        "counter",
        "Handovers by outcome: written (a worker released partitions with counted events "
        "not stored and recorded up to where it counted), write_failed (that record did "
        "not reach Kafka: the next owner counts those events twice in Prometheus), applied "
        "/ refused (partitions whose handover the next owner used / whose fingerprint was "
        "not in this log), read_failed (the handover topic could not be read at an "
        "assignment: handovers ignored).",
        (("outcome", HANDOVER_OUTCOMES),),
    ),
    MetricDef(
        "salewatch_offset_fence_refusals_total",
        "counter",
        "Seeks past the offsets stored in ClickHouse that the offset fence refused at an "
        "assignment: the record at the newest stored offset is not in this log (another "
        "incarnation of the partition: a broker that lost its data, a recreated topic, "
        "another cluster); the partition is read from the group's committed offset instead.",
        (("topic", TOPIC_VALUES), ("reason", REFUSAL_REASONS)),
    ),
    MetricDef(
        "salewatch_unreadable_batches_total",
        "counter",
        "Record batches the reader could not decode (missing or unknown codec, corrupt batch, "
        "record over the fetch size): each stopped reading of one partition until an operator "
        "skips it (`salewatch skip`).",
        (("topic", TOPIC_VALUES), ("reason", UNREADABLE_REASONS)),
    ),
    MetricDef(
        "salewatch_partitions_unreadable",
        "gauge",
        "Partitions this worker stopped reading at an unreadable record batch, waiting for "
        "`salewatch skip` (their events are not counted meanwhile).",
        (("topic", TOPIC_VALUES), ("reason", UNREADABLE_REASONS)),
    ),
    MetricDef(
        "salewatch_last_event_timestamp_seconds",
        "gauge",
        "Event time of the newest valid event seen, per topic (epoch seconds).",
        (("topic", TOPIC_VALUES),),
    ),
    MetricDef(
        "salewatch_event_lag_seconds",
        "histogram",
        "End-to-end lag: processing time minus event time, per topic.",
        (("topic", TOPIC_VALUES),),
        LAG_BUCKETS_S,
    ),
    MetricDef(
        "salewatch_clickhouse_rows_written_total",
        "counter",
        "Rows accepted by ClickHouse, per table.",
        (("table", CLICKHOUSE_TABLE_VALUES),),
    ),
    MetricDef(
        "salewatch_clickhouse_write_errors_total",
        "counter",
        "Failed ClickHouse insert attempts (each retry counts), per table.",
        (("table", CLICKHOUSE_TABLE_VALUES),),
    ),
    MetricDef(
        "salewatch_clickhouse_rows_rejected_total",
        "counter",
        "Rows ClickHouse can never accept (a value out of a column's range, unparsable), "
        "found by bisecting the failed batch and sent to dead_letters (reason "
        "clickhouse_rejected); the rest of the batch is stored. Per table and reason.",
        (("table", CLICKHOUSE_TABLE_VALUES), ("reason", CLICKHOUSE_REJECT_REASONS)),
    ),
    MetricDef(
        "salewatch_clickhouse_batch_seconds",
        "histogram",
        "Time to insert one batch into ClickHouse, per table.",
        (("table", CLICKHOUSE_TABLE_VALUES),),
        BATCH_SECONDS_BUCKETS,
    ),
    MetricDef(
        "salewatch_clickhouse_batch_rows",
        "histogram",
        "Rows per ClickHouse insert batch, per table.",
        (("table", CLICKHOUSE_TABLE_VALUES),),
        BATCH_SIZE_BUCKETS,
    ),
    MetricDef(
        "salewatch_insert_backlog_events",
        "gauge",
        "Valid events counted but not yet accepted by ClickHouse (their offsets are not "
        "committed); grows while ClickHouse is down, bounded by "
        "SALEWATCH_INSERT_BACKLOG_MAX_EVENTS (then reading Kafka pauses).",
    ),
    MetricDef(
        "salewatch_events_late_total",
        "counter",
        "Valid events whose 1-minute event-time window had already closed (end + allowed "
        "lateness <= clock): stored raw, counted nowhere else.",
        (("topic", TOPIC_VALUES),),
    ),
    MetricDef(
        "salewatch_events_duplicate_total",
        "counter",
        "Valid events skipped because their event_id was among the recently seen ones.",
        (("topic", TOPIC_VALUES),),
    ),
    MetricDef(
        "salewatch_window_closed_timestamp_seconds",
        "gauge",
        "End of the newest closed 1-minute window (epoch seconds); stalls if windows stop closing.",
    ),
    # --- traffic and funnel -------------------------------------------------------------
    MetricDef(
        "salewatch_page_views_total",
        "counter",
        "page_view events.",
        (
            ("channel", lv.CHANNELS),
            ("traffic_source", lv.TRAFFIC_SOURCES),
            ("page_type", lv.PAGE_TYPES),
        ),
    ),
    MetricDef(
        "salewatch_page_load_seconds",
        "histogram",
        "Page load time (LCP) of page_view events that carry load_ms.",
        (("page_type", lv.PAGE_TYPES), ("channel", lv.CHANNELS)),
        PAGE_LOAD_BUCKETS_S,
    ),
    MetricDef(
        "salewatch_web_vitals_inp_seconds",
        "histogram",
        "Interaction to Next Paint (Core Web Vital, measured in the browser) of page_view "
        "events that carry inp_ms.",
        (("page_type", lv.PAGE_TYPES), ("channel", lv.CHANNELS)),
        INP_BUCKETS_S,
    ),
    MetricDef(
        "salewatch_web_vitals_cls",
        "histogram",
        "Cumulative Layout Shift score (Core Web Vital, unitless) of page_view events that "
        "carry cls.",
        (("page_type", lv.PAGE_TYPES), ("channel", lv.CHANNELS)),
        CLS_BUCKETS,
    ),
    MetricDef(
        "salewatch_web_vitals_ttfb_seconds",
        "histogram",
        "Time to First Byte (measured in the browser) of page_view events that carry ttfb_ms.",
        (("page_type", lv.PAGE_TYPES), ("channel", lv.CHANNELS)),
        TTFB_BUCKETS_S,
    ),
    MetricDef(
        "salewatch_sessions_started_total",
        "counter",
        "Visits: sessions that reached the funnel step visit, by the session's channel and "
        "the traffic source of the event that started it.",
        (("channel", lv.CHANNELS), ("traffic_source", lv.TRAFFIC_SOURCES)),
    ),
    MetricDef(
        "salewatch_funnel_sessions_total",
        "counter",
        "Sessions reaching each funnel step (once per session; a later step implies the "
        "earlier ones), by the session's channel.",
        (("step", frozenset(FUNNEL_STEPS)), ("channel", lv.CHANNELS)),
    ),
    MetricDef(
        "salewatch_active_users_1m",
        "gauge",
        "Distinct users with a page_view in the last closed 1-minute window (this worker); "
        "channel=all is the union of all channels.",
        (("channel", ACTIVE_USER_CHANNELS),),
    ),
    MetricDef(
        "salewatch_active_users_5m",
        "gauge",
        "Distinct users with a page_view in the last 5 closed 1-minute windows (this worker, "
        "HyperLogLog estimate).",
        (("channel", ACTIVE_USER_CHANNELS),),
    ),
    MetricDef(
        "salewatch_active_users_15m",
        "gauge",
        "Distinct users with a page_view in the last 15 closed 1-minute windows (this worker, "
        "HyperLogLog estimate).",
        (("channel", ACTIVE_USER_CHANNELS),),
    ),
    MetricDef(
        "salewatch_cart_events_total",
        "counter",
        "add_to_cart and remove_from_cart events.",
        (("event_type", EVENT_TYPES["carts"] | {lv.OTHER}), ("channel", lv.CHANNELS)),
    ),
    # --- orders and money ---------------------------------------------------------------
    MetricDef(
        "salewatch_orders_total",
        "counter",
        "Order events (created, paid, failed, cancelled incl. auto-cancel, refunded).",
        (
            ("event_type", ORDER_EVENT_TYPES),
            ("channel", lv.CHANNELS),
            ("payment_method", lv.PAYMENT_METHODS),
            ("region", REGION_VALUES),
        ),
    ),
    MetricDef(
        "salewatch_order_amount_total",
        "counter",
        "Sum of order amounts by event type: order_created = GMV, payment_succeeded = paid "
        "amount; category is the top-level category of the first item.",
        (
            ("event_type", ORDER_EVENT_TYPES),
            ("channel", lv.CHANNELS),
            ("category", lv.DEFAULT_CATEGORIES),
        ),
    ),
    MetricDef(
        "salewatch_payment_failures_total",
        "counter",
        "payment_failed events by payment method, region and failure reason.",
        (
            ("payment_method", lv.PAYMENT_METHODS),
            ("region", REGION_VALUES),
            ("failure_reason", lv.FAILURE_REASONS),
        ),
    ),
    MetricDef(
        "salewatch_payment_orders_total",
        "counter",
        "Orders by payment method, once each however often the shopper retries: outcome "
        "attempted at the order's first payment_succeeded/payment_failed with the method, "
        "failed at its first payment_failed with it.",
        (("payment_method", lv.PAYMENT_METHODS), ("outcome", PAYMENT_ORDER_OUTCOMES)),
        # SalePaymentFailureSpike divides failed by attempted orders over 2 minutes: a
        # method's first failures after a quiet start must count (12 series)
        starts_at_zero=True,
    ),
    MetricDef(
        "salewatch_coupon_redemptions_total",
        "counter",
        "order_created events that carry a coupon_code.",
        (("channel", lv.CHANNELS),),
    ),
    # --- after-sales --------------------------------------------------------------------
    MetricDef(
        "salewatch_ticket_events_total",
        "counter",
        "Support tickets opened and resolved, by kind and reason.",
        (
            ("event_type", EVENT_TYPES["tickets"] | {lv.OTHER}),
            ("kind", lv.TICKET_KINDS),
            ("reason", lv.TICKET_REASONS),
        ),
    ),
)

# `salewatch collect`: what happens to beacons before they are events (the worker measures
# the events themselves); served on the collector's own /metrics
_COLLECTOR_DEFS: tuple[MetricDef, ...] = (
    MetricDef(
        "salewatch_collector_beacons_accepted_total",
        "counter",
        "Beacons accepted (valid, within size and rate limits) and merged into a page load.",
    ),
    MetricDef(
        "salewatch_collector_beacons_rejected_total",
        "counter",
        "Beacons refused with a 4xx/5xx and no event, by reason (rate_limited: 429, "
        "too_large: 413, overloaded: 503, the others: 400).",
        (("reason", BEACON_REJECT_REASONS),),
    ),
    MetricDef(
        "salewatch_collector_beacons_late_total",
        "counter",
        "Beacons for a page load whose event was already produced (dropped, 204).",
    ),
    MetricDef(
        "salewatch_collector_page_views_produced_total",
        "counter",
        "page_view events handed to the Kafka producer (one per page load).",
    ),
    MetricDef(
        "salewatch_collector_produce_errors_total",
        "counter",
        "page_view events the Kafka producer failed to deliver (lost).",
    ),
    MetricDef(
        "salewatch_collector_pending_page_loads",
        "gauge",
        "Page loads waiting for their beacons to settle before their event is produced.",
    ),
)

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}
"""The worker's metrics: its ``/metrics`` (``streams.metrics.exporter``), the backtest's series."""
COLLECTOR_METRICS: dict[str, MetricDef] = {d.name: d for d in _COLLECTOR_DEFS}
"""The beacon collector's metrics, on its own ``/metrics`` (``streams.collector.metrics``)."""
ALL_METRICS: dict[str, MetricDef] = {**METRICS, **COLLECTOR_METRICS}
"""Every name a rule, dashboard or document may use."""
