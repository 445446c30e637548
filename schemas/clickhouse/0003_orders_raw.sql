-- orders_raw: every event of the `orders` topic (order_created, payment_succeeded,
-- payment_failed, order_cancelled, order_refunded). One row per event, not per order: the
-- order's state is the latest event for its order_id.
-- Dedupe and key rationale: see 0001_clicks_raw.sql.
CREATE TABLE IF NOT EXISTS {database}.orders_raw
(
    event_id String,
    event_type LowCardinality(String),
    event_time DateTime('UTC'),
    ts_ms Int64,
    user_id String,
    session_id String,
    channel LowCardinality(String),
    region LowCardinality(String),
    schema_version UInt8,
    kafka_partition UInt16,
    kafka_offset UInt64,
    ingested_at DateTime('UTC'),
    order_id String,
    amount Decimal(18, 2),  -- order total after discounts, in `currency`
    currency LowCardinality(String),
    payment_method LowCardinality(String),
    coupon_code String,  -- '' = no coupon
    failure_reason LowCardinality(String),  -- '' unless payment_failed
    items Nested(
        item_id String,
        category String,
        quantity UInt32,
        price Decimal(18, 2)
    )
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_time, event_id);
