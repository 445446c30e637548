"""Batched, retried inserts into ClickHouse.

Contract: ``await sink.insert(table, columns, rows)`` returns only once ClickHouse has
accepted the whole batch. Until then it retries with exponential backoff (tenacity), counting
each failure in ``salewatch_clickhouse_write_errors_total{table}`` and logging one line per
failure. Because the worker acknowledges Kafka offsets only after ``insert`` returns, a batch
that ClickHouse never accepted is read again after a restart; the raw tables collapse the
resulting duplicates by ``event_id`` (ReplacingMergeTree), rollups by window key.

The driver is synchronous, so each insert runs in a worker thread; one sink (one client,
one connection) per caller that inserts sequentially — clients are not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from streams import labels, window_emitters
from streams.clickhouse_client import describe_error, is_driver_error, make_client
from streams.counting.rollups import ROLLUP_TABLES
from streams.metric_defs import CLICKHOUSE_TABLE_VALUES
from streams.settings import Settings
from streams.totals import Totals

log = logging.getLogger(__name__)

RETRY_WAIT = wait_exponential(multiplier=0.25, min=0.25, max=15)


def table_label(table: str) -> str:
    """The ``table`` label of a table: raw tables by name, the window tables and their
    marks as ``rollups``, anything else ``other``."""
    if table in ROLLUP_TABLES or table == window_emitters.TABLE:
        return "rollups"
    return labels.closed(table, CLICKHOUSE_TABLE_VALUES)


def _retryable(exc: BaseException) -> bool:
    return is_driver_error(exc) or isinstance(exc, OSError | EOFError)


class ClickHouseSink:
    """Inserts row batches into tables of ``settings.clickhouse_database``."""

    def __init__(self, settings: Settings, totals: Totals, name: str = "salewatch") -> None:
        self.settings = settings
        self.totals = totals
        self.client = make_client(settings, client_name=name)
        self.database = settings.clickhouse_database

    def _insert_once(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        query = f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES"
        try:
            self.client.execute(query, rows)
        except BaseException:
            # a half-sent block leaves the connection unusable; reconnect next time
            self.client.disconnect()
            raise

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        """Insert ``rows`` (tuples in ``columns`` order); retry until ClickHouse accepts."""
        if not rows:
            return
        label = (table_label(table),)

        def on_failure(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.totals.inc("salewatch_clickhouse_write_errors_total", label)
            wait = state.next_action.sleep if state.next_action else 0.0
            reason = describe_error(exc, self.settings) if exc else "unknown error"
            log.warning("insert into %s failed (%s); retrying in %.1fs", table, reason, wait)

        started = time.perf_counter()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=RETRY_WAIT,
            before_sleep=on_failure,
            reraise=True,
        ):
            with attempt:
                await asyncio.to_thread(self._insert_once, table, columns, rows)
        elapsed = time.perf_counter() - started
        self.totals.observe("salewatch_clickhouse_batch_seconds", label, elapsed)
        self.totals.observe("salewatch_clickhouse_batch_rows", label, len(rows))
        self.totals.inc("salewatch_clickhouse_rows_written_total", label, len(rows))

    def close(self) -> None:
        self.client.disconnect()
