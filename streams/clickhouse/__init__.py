"""ClickHouse access: the client, the batched sink, the raw rows, the numbered migrations."""
