-- window_emitters: which Kafka partitions each worker's rollup rows of a closed window hold.
-- A worker writes one row after the rollup rows of every closing: (newest window start it
-- has emitted, its worker name, the partition numbers it owned). A worker that takes over
-- partitions reads the newest window emitted for each of them (ARRAY JOIN partitions) and
-- emits the windows after it — and only those — for the moved partitions
-- (streams/window_emitters.py, streams/recovery.py): nothing counted twice, nothing lost.
-- Emitting a window again under the same worker name replaces its row (newest version).
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
