-- category_sales_1m: GMV and paid amount per 1-minute window, channel and top-level
-- category (of the order's first item; payments take the category of their order).
-- orders/gmv: order_created events and their amounts; paid_orders/paid_amount:
-- payment_succeeded events and their amounts. AOV = sum(gmv) / sum(orders).
-- Shape, dedupe and reading rules: see 0010_traffic_1m.sql.
CREATE TABLE IF NOT EXISTS {database}.category_sales_1m
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    channel LowCardinality(String),
    category LowCardinality(String),
    orders UInt64,
    gmv Decimal(18, 2),
    paid_orders UInt64,
    paid_amount Decimal(18, 2),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, category, worker);
