-- window_emitters: the newest window emitted for each Kafka partition.
-- After the rollup rows of every closing a worker writes one row per partition it holds:
-- (newest window start emitted, the partition's emitter name `p3`, [3]). A worker given a
-- partition reads its newest mark, by whichever worker (ARRAY JOIN partitions: rows of
-- older versions, named by process, list several partitions), and emits the windows after
-- it (streams/worker/window_emitters.py, streams/worker/recovery/). Rollup rows are named by partition
-- too, so a window emitted again replaces its rows: a lost mark costs a re-emission only.
CREATE TABLE IF NOT EXISTS {database}.window_emitters
(
    window_start DateTime('UTC'),
    worker LowCardinality(String),
    partitions Array(UInt16),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, worker);
