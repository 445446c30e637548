-- tickets_raw: every event of the `tickets` topic (ticket_opened, ticket_resolved).
-- Dedupe and key rationale: see 0001_clicks_raw.sql.
CREATE TABLE IF NOT EXISTS {database}.tickets_raw
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
    ticket_id String,
    order_id String,  -- '' when the ticket is not about an order
    kind LowCardinality(String),
    reason LowCardinality(String)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_time, event_id);
