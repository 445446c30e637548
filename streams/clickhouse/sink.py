"""Batched, retried inserts into ClickHouse.

Contract: ``await sink.insert(table, columns, rows)`` returns once ClickHouse has accepted
every row of the batch that it can ever accept, and the others are on ``dead_letters``:

* a **transient** failure (``streams.clickhouse.errors``: ClickHouse down, slow, busy) is
  retried with exponential backoff, forever, counting each failure in
  ``salewatch_clickhouse_write_errors_total{table}`` and logging one line per failure;
* a failure caused by **rows** (a value ClickHouse cannot take) bisects the batch: halves
  are inserted (and retried) on their own until the rows that fail alone are found; those
  go to ``dead_letters`` (the envelope of ``streams.kafka.dead_letters``, reason
  ``clickhouse_rejected``, the row as JSON for original), are counted in
  ``salewatch_clickhouse_rows_rejected_total{table,reason}`` and logged in one line; the
  rest is stored. Cost: about 2·k·log2(n) extra inserts for k bad rows in n;
* a **fatal** failure (unknown table, no such column, wrong credentials: nothing can be
  stored) raises :class:`ClickHouseFatalError`; the worker exits (``streams.worker.app``).

Because the worker acknowledges Kafka offsets only after ``insert`` returns, a batch
that ClickHouse never accepted is read again after a restart; the raw tables collapse the
resulting duplicates by ``event_id`` (ReplacingMergeTree), rollups by window key.

The driver is synchronous, so each insert runs in a worker thread; one sink (one client,
one connection) per caller that inserts sequentially — clients are not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from streams.clickhouse.client import describe_error, make_client, server_message
from streams.clickhouse.errors import classify, reject_reason
from streams.counting.rollups import ROLLUP_TABLES
from streams.kafka.dead_letters import envelope_value
from streams.metrics import labels
from streams.metrics.defs import CLICKHOUSE_TABLE_VALUES, TOPIC_VALUES
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker import window_emitters

log = logging.getLogger(__name__)

RETRY_WAIT = wait_exponential(multiplier=0.25, min=0.25, max=15)


def table_label(table: str) -> str:
    """The ``table`` label of a table: raw tables by name, the window tables and their
    marks as ``rollups``, anything else ``other``."""
    if table in ROLLUP_TABLES or table == window_emitters.TABLE:
        return "rollups"
    return labels.closed(table, CLICKHOUSE_TABLE_VALUES)


class ClickHouseFatalError(Exception):
    """ClickHouse cannot store anything into a table (schema or credentials); ``str()`` is
    one line naming the table and the setting or command to check."""


# dead-letters refused rows: (key, value) pairs for the dead_letters topic
SendDeadLetters = Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]]
REJECTED_REASON = "clickhouse_rejected"  # the dead letter's reason


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A row ClickHouse refused on its own, and why."""

    row: tuple[Any, ...]
    error: BaseException


class _RowsRefused(Exception):
    """An insert failed because of its rows (internal: ends the retries)."""


class ClickHouseSink:
    """Inserts row batches into tables of ``settings.clickhouse_database``; see the module
    docstring. ``source_topic``: the topic named in dead letters of refused rows (default:
    the table); ``send_dead_letters``: where refused rows go (None: only logged/counted)."""

    def __init__(
        self,
        settings: Settings,
        totals: Totals,
        name: str = "salewatch",
        *,
        send_dead_letters: SendDeadLetters | None = None,
        source_topic: str | None = None,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.totals = totals
        self.client = client if client is not None else make_client(settings, client_name=name)
        self.database = settings.clickhouse_database
        self.send_dead_letters = send_dead_letters
        self.source_topic = source_topic
        self.clock = clock

    def _insert_once(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        query = f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES"
        try:
            self.client.execute(query, rows)
        except BaseException:
            # a half-sent block leaves the connection unusable; reconnect next time
            self.client.disconnect()
            raise

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        """Insert ``rows`` (tuples in ``columns`` order): see the module docstring."""
        if not rows:
            return
        label = (table_label(table),)
        started = time.perf_counter()
        refused: list[RefusedRow] = []
        await self._insert_or_bisect(table, columns, list(rows), refused)
        elapsed = time.perf_counter() - started
        stored = len(rows) - len(refused)
        self.totals.observe("salewatch_clickhouse_batch_seconds", label, elapsed)
        self.totals.observe("salewatch_clickhouse_batch_rows", label, len(rows))
        self.totals.inc("salewatch_clickhouse_rows_written_total", label, stored)
        if refused:
            await self._reject(table, columns, refused, len(rows))

    async def _insert_or_bisect(
        self, table: str, columns: Sequence[str], rows: list[Any], refused: list[RefusedRow]
    ) -> None:
        try:
            await self._insert_retrying(table, columns, rows)
        except _RowsRefused as exc:
            cause = exc.__cause__ or exc
            if len(rows) == 1:
                refused.append(RefusedRow(tuple(rows[0]), cause))
                return
            half = len(rows) // 2
            await self._insert_or_bisect(table, columns, rows[:half], refused)
            await self._insert_or_bisect(table, columns, rows[half:], refused)

    async def _insert_retrying(self, table: str, columns: Sequence[str], rows: list[Any]) -> None:
        """One batch, retried while the failure is transient; raises :class:`_RowsRefused`
        or :class:`ClickHouseFatalError` otherwise."""
        label = (table_label(table),)

        def on_failure(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.totals.inc("salewatch_clickhouse_write_errors_total", label)
            wait = state.next_action.sleep if state.next_action else 0.0
            reason = describe_error(exc, self.settings) if exc else "unknown error"
            log.warning("insert into %s failed (%s); retrying in %.1fs", table, reason, wait)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: classify(e) == "transient"),
                wait=RETRY_WAIT,
                before_sleep=on_failure,
                reraise=True,
            ):
                with attempt:
                    await asyncio.to_thread(self._insert_once, table, columns, rows)
        except Exception as exc:
            self.totals.inc("salewatch_clickhouse_write_errors_total", label)
            if classify(exc) == "rows":
                raise _RowsRefused(str(exc)) from exc
            raise ClickHouseFatalError(
                f"cannot insert into {self.database}.{table}: "
                f"{describe_error(exc, self.settings)}; check the schema (`salewatch migrate "
                "--status`) and the worker's ClickHouse user"
            ) from exc

    async def _reject(
        self, table: str, columns: Sequence[str], refused: list[RefusedRow], batch: int
    ) -> None:
        reasons = Counter(reject_reason(r.error) for r in refused)
        for reason, n in reasons.items():
            self.totals.inc(
                "salewatch_clickhouse_rows_rejected_total", (table_label(table), reason), n
            )
        first = refused[0].error
        log.error(
            "insert into %s: ClickHouse refused %d of %d rows (%s; first: %s); %s, the rest "
            "is stored",
            table,
            len(refused),
            batch,
            ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())),
            server_message(first),
            "sent to dead_letters" if self.send_dead_letters else "dropped",
        )
        if self.send_dead_letters is None:
            return
        now_ms = int(self.clock() * 1000)
        topic = self.source_topic or table
        letters: list[tuple[bytes | None, bytes]] = [
            (None, refused_letter(r, columns, topic, now_ms)) for r in refused
        ]
        await self.send_dead_letters(letters)
        self.totals.inc(
            "salewatch_dead_letters_total", (labels.closed(topic, TOPIC_VALUES),), len(letters)
        )

    def close(self) -> None:
        self.client.disconnect()


def refused_letter(
    refused: RefusedRow, columns: Sequence[str], source_topic: str, now_ms: int
) -> bytes:
    """The dead letter of a row ClickHouse refused: the ``streams.kafka.dead_letters`` envelope,
    reason ``clickhouse_rejected``, detail ``<reason label>: <error>``, the row as a JSON
    object of its columns for original; partition and offset from the row's
    ``kafka_partition``/``kafka_offset`` (-1 for rows without them: rollups)."""
    values = dict(zip(columns, refused.row, strict=False))
    original = orjson.dumps(values, default=str)
    partition = values.get("kafka_partition", -1)
    offset = values.get("kafka_offset", -1)
    return envelope_value(
        REJECTED_REASON,
        f"{reject_reason(refused.error)}: {server_message(refused.error)}",
        source_topic,
        partition if isinstance(partition, int) else -1,
        offset if isinstance(offset, int) else -1,
        now_ms,
        original,
    )
