-- page_load_1m: page views and page load time (LCP) per 1-minute window, page type and
-- channel. page_views: all page_view events; measured_views: those with load_ms;
-- load_ms_sum: their total load_ms; load_ms_buckets: a fixed histogram of their load_ms,
-- 12 non-cumulative counts for load_ms <= 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000,
-- 7500, 10000, 20000 and > 20000 (the buckets of salewatch_page_load_seconds). Quantiles:
-- sumForEach(load_ms_buckets), arrayCumSum, first bucket reaching q × total
-- (docs/metrics.md has the query).
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.page_load_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    page_type LowCardinality(String),
    channel LowCardinality(String),
    page_views UInt64,
    measured_views UInt64,
    load_ms_sum UInt64,
    load_ms_buckets Array(UInt64),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, page_type, channel, worker);
