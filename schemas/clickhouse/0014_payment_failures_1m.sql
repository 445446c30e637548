-- payment_failures_1m: payment_failed events per 1-minute window by payment method, region
-- and failure reason (closed set, else 'other').
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.payment_failures_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    payment_method LowCardinality(String),
    region LowCardinality(String),
    failure_reason LowCardinality(String),
    failures UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, payment_method, region, failure_reason, worker);
