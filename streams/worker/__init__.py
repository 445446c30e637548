"""The worker: a Faust service around a batch reader, the ingest chain, recovery, window marks."""
