-- traffic_1m: page views, visits and active users per 1-minute event-time window, written by
-- the worker when the window closes (streams.counting.rollups, ROLLUP_COLUMNS).
--
-- Rollup tables (0010-0017) share one shape: one row per window × worker × dimension set,
-- where `worker` names the Kafka partition the row counts (`p3`), not the process;
-- ReplacingMergeTree(version) keyed by (window_start, dimensions, worker), so a window of a
-- partition emitted again (after a replay or a takeover, by any worker) replaces its rows
-- instead of adding to them. Read with FINAL, then sum over worker. version is the emit
-- clock in ms. Dimension values are already normalised to their closed sets ('other').
--
-- page_views: page_view events; visits: sessions started (funnel step visit) by the
-- session's channel and the traffic source of the page view that started it;
-- active_users: distinct user_ids with a page_view in this row, exact, per partition.
-- Distinct counts do not add up across rows or partitions: for unions use active_users_1m.
CREATE TABLE IF NOT EXISTS {database}.traffic_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    channel LowCardinality(String),
    traffic_source LowCardinality(String),
    page_views UInt64,
    visits UInt64,
    active_users UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, traffic_source, worker);
