"""Kafka helpers: the producer, broker readiness, the partitioner, dead letters."""
