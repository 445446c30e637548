-- orders_1m: order events per 1-minute window by type (order_created, payment_succeeded,
-- payment_failed, order_cancelled incl. the 15-minute auto-cancel, order_refunded), channel,
-- payment method and region (the configured regions, else 'other').
-- orders: events; amount: sum of their amounts (order total after discounts);
-- coupon_orders: those carrying a coupon_code (redemptions = coupon_orders of order_created).
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.orders_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    channel LowCardinality(String),
    event_type LowCardinality(String),
    payment_method LowCardinality(String),
    region LowCardinality(String),
    orders UInt64,
    amount Decimal(18, 2),
    coupon_orders UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, event_type, channel, payment_method, region, worker);
