-- active_users_1m: distinct users with a page_view per minute, channel and traffic source,
-- as mergeable uniqCombined states filled straight from clicks_raw by a materialized view.
-- Unlike traffic_1m.active_users (exact, per partition, one row) these states merge across
-- workers, dimensions and minutes: uniqCombinedMerge(users) over any range and grouping is
-- the distinct count of the union (HyperLogLog-based, error well under 1 %). Duplicated raw
-- rows do not matter to a distinct count; late events are included (they are in raw).
-- Channel and traffic source are normalised here with the closed sets of streams.metrics.labels
-- (tests/unit/counting/test_rollups_clickhouse.py keeps the lists equal).
-- The view sees rows inserted after it exists; to backfill older ones, run its SELECT as
-- INSERT INTO {database}.active_users_1m SELECT ... once, by hand.
CREATE TABLE IF NOT EXISTS {database}.active_users_1m
(
    window_start DateTime('UTC'),
    -- String, not LowCardinality: 18.16 does not convert the view's String results
    channel String,
    traffic_source String,
    users AggregateFunction(uniqCombined, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, traffic_source);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.active_users_1m_mv
TO {database}.active_users_1m
AS SELECT
    toStartOfMinute(event_time) AS window_start,
    if(channel IN ('app', 'web', 'mini_program', 'h5'), channel, 'other') AS channel,
    if(
        traffic_source IN ('direct', 'search', 'ads', 'social', 'email', 'affiliate'),
        traffic_source,
        'other'
    ) AS traffic_source,
    uniqCombinedState(user_id) AS users
FROM {database}.clicks_raw
WHERE event_type = 'page_view'
GROUP BY window_start, channel, traffic_source;
