-- cart_events_1m: add_to_cart / remove_from_cart events per 1-minute window and channel.
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.cart_events_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    channel LowCardinality(String),
    event_type LowCardinality(String),
    events UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, event_type, worker);
