"""salewatch: a real-time monitor for e-commerce sale days.

Kafka topics (clicks, carts, orders, tickets) -> Faust agents -> ClickHouse rollups and
Prometheus metrics. The counting logic lives in plain functions so that the worker, the
backtest and the tests share one implementation.
"""

__version__ = "0.1.0"
