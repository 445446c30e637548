-- funnel_1m: sessions reaching each funnel step (visit, detail, cart, checkout, paid) per
-- 1-minute window, by the session's channel. A session counts once per step, in the window
-- of the event that made it reach the step (a later step implies the earlier ones, counted
-- at the same moment). Conversion over a range = sum(paid) / sum(visit).
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.funnel_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    channel LowCardinality(String),
    step LowCardinality(String),
    sessions UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, step, worker);
