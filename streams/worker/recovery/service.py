"""The worker's side of recovery: at every assignment, rebuild the assigned partitions' state
in a thread (retried while ClickHouse is unreachable), then adopt it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from clickhouse_driver.errors import ServerException
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from streams.clickhouse.client import is_connection_error, is_driver_error
from streams.clickhouse.errors import FATAL_CODES
from streams.counting.clock import WindowClock
from streams.counting.pipeline import NO_WINDOW, Pipeline
from streams.counting.rollups import RollupRow
from streams.events.contract import Topic
from streams.metrics.totals import Totals
from streams.worker.offset_fence import StoredPosition
from streams.worker.recovery.rebuild import ClockKind, Query, Rebuilt, rebuild
from streams.worker.window_emitters import Mark

log = logging.getLogger(__name__)

# ClickHouse refusing a rebuild query as wrong is a bug of ours (or a schema not migrated,
# a user without rights: FATAL_CODES), not an outage: retrying cannot help, and counting on
# from an empty state would hide it; the worker stops with it (as the inserter does)
WRONG_QUERY_CODES = FATAL_CODES | {
    42,  # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    43,  # ILLEGAL_TYPE_OF_ARGUMENT
    46,  # UNKNOWN_FUNCTION
    53,  # TYPE_MISMATCH
    62,  # SYNTAX_ERROR
    386,  # NO_COMMON_TYPE
}


def survivable(exc: BaseException) -> bool:
    """True for ClickHouse trouble a rebuild retries and, in the end, survives: the server
    unreachable or failing, not refusing the query itself (:data:`WRONG_QUERY_CODES`)."""
    if isinstance(exc, ServerException) and exc.code in WRONG_QUERY_CODES:
        return False
    return is_driver_error(exc) or is_connection_error(exc)


# stores rollup rows, then the marks of the windows they close (streams.worker.app)
StoreClosed = Callable[[list[RollupRow], list[Mark]], Awaitable[None]]


class Recovery:
    """Rebuilds the live pipeline's state for an assignment, off the event loop.

    :meth:`on_assigned` returns the Kafka offsets to resume the source topics at, for the
    caller (``streams.worker.reader``) to seek to before it reads. Until it returns the caller
    must not feed the pipeline events of the assigned partitions. ClickHouse errors are
    retried with backoff for ``retry_for_s``; after that the worker goes on from an empty
    state (logged as an error, counted in ``salewatch_rebuild_failures_total{reason}``)
    rather than not counting at all. Any other exception is a bug and propagates, a query
    ClickHouse refuses as wrong too (:func:`survivable`): the reader stops the worker
    (``streams.worker.reader.TaskDied``). ``held``: the partitions the live pipeline counts
    (the window timer marks its closings with them).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        window_clock: WindowClock,
        new_pipeline: Callable[[], Pipeline],
        make_query: Callable[[], tuple[Query, Callable[[], None]]],
        *,
        database: str,
        partition_count: int,
        clock_kind: ClockKind,
        store_closed: StoreClosed,
        retry_for_s: float = 60.0,
        wall: Callable[[], float] = time.time,
        totals: Totals | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.window_clock = window_clock
        self.new_pipeline = new_pipeline
        self.make_query = make_query
        self.database = database
        self.partition_count = partition_count
        self.clock_kind: ClockKind = clock_kind
        self.store_closed = store_closed
        self.retry_for_s = retry_for_s
        self.wall = wall
        self.totals = totals
        self.held: tuple[int, ...] = ()

    def _rebuild_blocking(
        self,
        partitions: Sequence[int],
        clock_now_ms: int,
        live_emitted: Mapping[int, int],
        abandoned: threading.Event,
    ) -> Rebuilt:
        def attempt() -> Rebuilt:
            query, close = self.make_query()
            try:
                return rebuild(
                    query,
                    database=self.database,
                    partitions=partitions,
                    partition_count=self.partition_count,
                    new_pipeline=self.new_pipeline,
                    clock_kind=self.clock_kind,
                    clock_now_ms=clock_now_ms,
                    live_emitted=live_emitted,
                    wall_now_s=self.wall(),
                    abandoned=abandoned.is_set,
                )
            finally:
                close()

        retrying = Retrying(
            retry=retry_if_exception(survivable),
            wait=wait_exponential(multiplier=0.25, min=0.25, max=5),
            stop=stop_after_delay(self.retry_for_s),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "rebuilding counting state from ClickHouse failed (%s); retrying",
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        return retrying(attempt)

    async def on_assigned(
        self, partitions: Sequence[int]
    ) -> dict[tuple[Topic, int], StoredPosition]:
        """Rebuild the state of ``partitions``, adopt it; return, per source topic and
        partition, the newest stored offset and its fingerprint (the reader resumes after it
        once ``streams.worker.offset_fence`` confirmed the log is the one stored).

        Cancelling it (a new rebalance revoked the assignment) adopts nothing and stops the
        rebuild's thread at its next query (:class:`RebuildAbandoned`)."""
        partitions = sorted(set(partitions))
        if not partitions:
            self.pipeline.adopt(self.new_pipeline())
            self.held = ()
            return {}
        started = time.perf_counter()
        clock_now = self.window_clock.now_ms()
        emitted = self.pipeline.emitted_through
        live = {p: emitted for p in self.held} if emitted != NO_WINDOW else {}
        # nothing reads the live state while the rebuild runs (reading and the window timer
        # wait for the adoption) and the rebuild replaces it all: dropping it now keeps the
        # peak memory of a rebuild at one state, not the old and the rebuilt side by side
        # (emitted_through and the totals stay with the pipeline: Pipeline.adopt)
        self.pipeline.adopt(self.new_pipeline())
        abandoned = threading.Event()
        try:
            rebuilt = await asyncio.to_thread(
                self._rebuild_blocking, partitions, clock_now, live, abandoned
            )
        except asyncio.CancelledError:
            abandoned.set()
            log.info("rebuild of partitions %s abandoned: the assignment was revoked", partitions)
            raise
        except Exception as exc:
            if not survivable(exc):
                raise  # a bug: the worker must stop, not count from a wrong state
            reason = "clickhouse_unreachable" if is_connection_error(exc) else "clickhouse_error"
            if self.totals is not None:
                self.totals.inc("salewatch_rebuild_failures_total", (reason,))
            log.error(
                "cannot rebuild the counting state of partitions %s from ClickHouse (%s); "
                "counting goes on from an empty state: open windows and sessions of these "
                "partitions start over",
                partitions,
                exc,
            )
            # what was open may hold partitions given away (dropped above): their next
            # owner counts them
            self.held = tuple(partitions)
            return {}
        moved = sorted(set(partitions) - set(self.held))
        if moved:
            log.info(
                "partitions %s moved here: each is emitted from the window after its newest "
                "mark (%s); windows of it before are left to the rows its previous owner wrote",
                moved,
                ", ".join(f"p{p} {_hh_mm(rebuilt.plan.windows_from[p])}" for p in moved),
            )
        self.held = tuple(partitions)
        self.pipeline.adopt(
            rebuilt.pipeline, rebuilt.counted_before, rebuilt.counted_before_until_ms
        )
        if self.clock_kind == "event" and rebuilt.newest_event_ms is not None:
            self.window_clock.observe(rebuilt.newest_event_ms)
        log.info(
            "counting state of partitions %s rebuilt from ClickHouse in %.2fs: windows from %s, %s",
            partitions,
            time.perf_counter() - started,
            ", ".join(f"p{p} {_hh_mm(ms)}" for p, ms in sorted(rebuilt.plan.windows_from.items())),
            rebuilt.stats.describe(),
        )
        return {
            key: StoredPosition(offset - 1, rebuilt.fingerprints[key])
            for key, offset in rebuilt.next_offsets.items()
        }


def _hh_mm(ms: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ms / 1000))
