-- clicks_raw: every event of the `clicks` topic (page_view, click), as received.
--
-- ReplacingMergeTree(ingested_at) + ORDER BY ending in event_id: the same event delivered
-- twice (same event_id, hence same event_type and event_time) collapses to one row at merge
-- time; read with FINAL (or GROUP BY event_id) where exact counts matter. The key leads with
-- event_type (a handful of values) then event_time, so "events of type X between A and B"
-- reads one contiguous range per type. No TTL: ClickHouse 18.16 has none; old partitions are
-- dropped by month (PARTITION BY toYYYYMM) instead.
CREATE TABLE IF NOT EXISTS {database}.clicks_raw
(
    event_id String,
    event_type LowCardinality(String),
    event_time DateTime('UTC'),
    ts_ms Int64,  -- exact event time in epoch ms (DateTime64 is missing in 18.16)
    user_id String,
    session_id String,
    channel LowCardinality(String),
    region LowCardinality(String),
    schema_version UInt8,
    kafka_partition UInt16,
    kafka_offset UInt64,
    ingested_at DateTime('UTC'),
    page_type LowCardinality(String),
    item_id String,  -- '' when absent
    category LowCardinality(String),  -- '' when absent
    traffic_source LowCardinality(String),  -- '' when absent
    load_ms Nullable(UInt32)  -- page_view only; NULL, not 0, when not measured
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_time, event_id);
