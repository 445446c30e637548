"""salewatch: a real-time monitor for e-commerce sale days.

Kafka topics (clicks, carts, orders, tickets) -> a batch reader inside a Faust service ->
ClickHouse rollups and Prometheus metrics. Faust runs the service (lifecycle, window timer,
producer); the source topics are read in whole fetches with aiokafka, not by Faust agents
(bench/RESULTS.md). The counting logic lives in plain functions so that the worker, the
backtest and the tests share one implementation. Packages by role: docs/architecture.md.
"""

__version__ = "0.1.0"
