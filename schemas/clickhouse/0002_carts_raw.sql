-- carts_raw: every event of the `carts` topic (add_to_cart, remove_from_cart).
-- Dedupe and key rationale: see 0001_clicks_raw.sql.
CREATE TABLE IF NOT EXISTS {database}.carts_raw
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
    item_id String,
    category LowCardinality(String),
    quantity UInt32,
    price Decimal(18, 2)  -- unit price
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_time, event_id);
