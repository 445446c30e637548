"""Every salewatch metric, declared once: name, type, help text, labels, allowed values.

Nothing else in the code base invents a metric name. Label values come from closed sets
(``streams.labels``); anything outside a set is counted as ``other`` before it reaches a
metric, so the number of series is bounded by the product of the set sizes. No user,
session, order or event id is ever a label.

Counters are cumulative (PromQL ``rate``/``increase`` work across restarts and workers);
gauges are used only for per-window or point-in-time values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams import labels as lv
from streams.decode import REJECT_REASONS
from streams.events import EVENT_TYPES, TOPICS

MetricKind = Literal["counter", "gauge", "histogram"]

TOPIC_VALUES = frozenset(TOPICS) | {lv.OTHER}
ALL_EVENT_TYPES = frozenset().union(*EVENT_TYPES.values()) | {lv.OTHER}
CLICKHOUSE_TABLE_VALUES = frozenset(
    {"clicks_raw", "carts_raw", "orders_raw", "tickets_raw", "rollups", lv.OTHER}
)

LAG_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000)


@dataclass(frozen=True)
class MetricDef:
    """One metric. ``labels`` maps each label name to its closed set of values."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[tuple[str, frozenset[str]], ...] = ()
    buckets: tuple[float, ...] = ()

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
    # --- orders and money ---------------------------------------------------------------
    MetricDef(
        "salewatch_order_events_total",
        "counter",
        "Order events by type, channel, payment method and region.",
        (
            ("event_type", EVENT_TYPES["orders"] | {lv.OTHER}),
            ("channel", lv.CHANNELS),
            ("payment_method", lv.PAYMENT_METHODS),
        ),
    ),
)

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}
