-- tickets_1m: support tickets opened / resolved per 1-minute window, kind and reason.
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.tickets_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    event_type LowCardinality(String),
    kind LowCardinality(String),
    reason LowCardinality(String),
    tickets UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, event_type, kind, reason, worker);
