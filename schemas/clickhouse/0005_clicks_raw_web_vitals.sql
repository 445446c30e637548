-- clicks_raw: the Core Web Vitals a page_view may carry (EVENTS.md v1 optional fields,
-- filled by `salewatch collect` from the browser's web-vitals beacons), stored as received.
--
-- Nullable like load_ms: an absent vital is NULL, not 0. CLS is 0 for every page that does
-- not shift, so 0 cannot mean "not measured"; with NULL, quantile()/avg() skip the page
-- views without a measurement on their own (no flag column to filter on, no zeros dragging
-- a p75 down). CLS is Float64 so that the thresholds compare exactly (Float32 stores 0.1 as
-- 0.100000001, which `cls > 0.1` would count as poor-ish).
--
-- One statement, no IF NOT EXISTS (18.16 has none): ClickHouse checks every ADD COLUMN of
-- an ALTER before changing the table, so the statement adds all four columns or none, and
-- a failed run can be re-run.
ALTER TABLE {database}.clicks_raw
    ADD COLUMN lcp_ms Nullable(UInt32) AFTER load_ms,
    ADD COLUMN inp_ms Nullable(UInt32) AFTER lcp_ms,
    ADD COLUMN cls Nullable(Float64) AFTER inp_ms,
    ADD COLUMN ttfb_ms Nullable(UInt32) AFTER cls;
