"""The worker's reader: source topics in batches, straight from aiokafka, inside the Faust app.

Why not Faust agents: profiled (``bench/RESULTS.md``), Faust's per-message path (the fetch
loop's ``wait_first`` per message, the conductor, the stream iterator, per-event acks)
cost several times salewatch's whole chain: the worker ran below a bare Faust agent. This
reader keeps the chain (``streams.worker.ingest.BatchProcessor``) and feeds it whole fetches. It
runs as a task of the Faust app, next to the window timer, the producer and ``/metrics``.

The loop::

    getmany (≤ 4 × batch_size records; waits ≤ batch_within_s)
      → per topic, concurrently: BatchProcessor.prepare
        (decode, validate, dead letters, count; orders are forwarded to orders_by_session)
      → InsertQueue.put (bounded by insert_backlog_max_events)

A record batch aiokafka cannot decode (``getmany`` raises) stops only its partition: the
records before it are read, the partition is paused there until an operator skips the
batch (``streams.worker.unreadable``), the others go on.

and, concurrently, the inserter::

    InsertQueue.take → one insert per raw table → commit the offsets after those rows

**Failure**: if the reading loop, the inserter or a rebalance step raises, :meth:`run`
raises :class:`TaskDied` at once, whatever the rest waits on (``streams.worker.app`` then exits
the worker with one line).

**Delivery**: at least once. An offset is committed only once ClickHouse accepted the rows
of every message before it, in order (``streams.worker.insert_queue``). Counting does not wait for
ClickHouse: while it is down the reader counts up to the backlog bound, then stops reading
(Kafka keeps the rest); ``salewatch_insert_backlog_events`` shows the backlog.

**Rebalances** (a ``ConsumerRebalanceListener``; aiokafka awaits it inside the group join):
revoked — wait for the batch being prepared, then until everything queued is stored and
committed, so the next owner starts exactly after it (at most
``SALEWATCH_REVOKE_DRAIN_TIMEOUT_S``, under the rebalance timeout: during a ClickHouse
outage the partitions are released with their backlog unstored, and read again, after a
handover record says up to where they were counted, ``streams.worker.handover``);
assigned — start the assignment's adoption and return at once: rebuild the counting
state of the assigned partitions from ClickHouse (``streams.worker.recovery``), then seek
each source partition past the offsets ClickHouse holds, fenced to the partition's
incarnation (``streams.worker.offset_fence``: only when the record at the newest stored
offset is the one ClickHouse stored); reading waits for it (``assignment_ready``). Not
inside the listener: aiokafka sends no heartbeat until the listener returns, so a rebuild
longer than the session timeout (6 s; 17-54 s at 5,000 events/s) got the member dropped,
its rejoin caught the other member rebuilding, and so on (a rebalance storm, gap 13 of
``docs/reliability.md``). A revocation abandons an adoption still running. The adoption
ends by taking the handovers that reach where reading starts: each fetch is cut there,
the handed-over part prepared with ``Route.recount`` (stored, counted into windows and
sessions only), the rest as usual.
``orders_by_session`` is co-partitioned: one consumer subscribes to it and the source
topics, all with the same partition count, and the range assignor gives partition p of
every topic to the same member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from streams.events.contract import Topic
from streams.metrics.totals import Totals
from streams.settings import Settings
from streams.worker.handover import HANDOVER_WRITE_S, Handover, HandoverLog, describe
from streams.worker.ingest import Message, PreparedBatch
from streams.worker.insert_queue import InsertQueue, Queued
from streams.worker.offset_fence import (
    OffsetFence,
    StoredPosition,
    event_ids,
    seek_past_stored,
)
from streams.worker.unreadable import CONTROL_TOPIC, SendDeadLetter, Unreadables, locate

log = logging.getLogger(__name__)

# printed once the first assignment's state is rebuilt and reading starts
READY_LINE = "salewatch worker: ready"
# on SIGTERM, how long to wait for counted events to be stored before stopping
SHUTDOWN_DRAIN_S = 10.0
# how long a revocation or a stop waits for a window closing being stored (its marks tell
# the next owner where to start; without them it emits that window again, replacing it)
CLOSING_WAIT_S = 5.0
# how long Kafka waits for members to rejoin a rebalance (revocations must finish sooner:
# Settings.revoke_drain_timeout_s)
REBALANCE_TIMEOUT_MS = 6000
# how long stopping the Kafka consumer may take (it leaves the group)
CONSUMER_STOP_S = 10.0
# prepares one topic's messages; None when there is nothing to store (orders_by_session)
Prepare = Callable[[Topic, Sequence[Message]], Awaitable[PreparedBatch | None]]
# stores raw rows of a topic; returns once ClickHouse accepted them
Store = Callable[[Topic, list[tuple[Any, ...]]], Awaitable[None]]
# rebuilds the state of the assigned partition numbers; returns the newest stored offsets
OnAssigned = Callable[[Sequence[int]], Awaitable[dict[tuple[Topic, int], StoredPosition]]]


class TaskDied(Exception):
    """A task of the reader died; ``task`` names it ("the inserter", "the reader"),
    ``__cause__`` is why."""

    def __init__(self, task: str) -> None:
        super().__init__(f"{task} died")
        self.task = task


@dataclass(frozen=True, slots=True)
class Route:
    """What the reader does with one Kafka topic's messages."""

    topic: Topic  # the counting topic its events are (orders_by_session → orders)
    prepare: Prepare
    # None: nothing to store (the rows were stored upstream); a route that stores its raw
    # rows resumes after the offsets ClickHouse holds (streams.worker.recovery)
    store: Store | None
    # prepares messages a previous owner counted already (streams.worker.handover): stored,
    # counted into windows and sessions only; None: prepared like the others
    recount: Prepare | None = None


@dataclass(slots=True)
class ReadBatch:
    """One fetch, counted: its prepared topic batches and the offsets to commit after them."""

    prepared: list[PreparedBatch]
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)


class SourceReader:
    """Reads, counts, stores and commits; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        totals: Totals,
        routes: dict[str, Route],
        on_assigned: OnAssigned,
        send_dead_letter: SendDeadLetter | None = None,
        fence: OffsetFence | None = None,
        handover: HandoverLog | None = None,
    ) -> None:
        self.settings = settings
        self.totals = totals
        self.routes = routes
        self.on_assigned = on_assigned
        self.queue: InsertQueue[ReadBatch] = InsertQueue(
            settings.insert_backlog_max_events,
            on_size=lambda n: totals.set("salewatch_insert_backlog_events", (), n),
            linger_s=settings.insert_linger_s,
        )
        self.stores = {r.topic: r.store for r in routes.values() if r.store is not None}
        self.preparing = asyncio.Lock()  # held while a fetch is being counted and queued
        self.consumer: AIOKafkaConsumer | None = None
        # set while the current assignment's state is rebuilt and reading may go on
        self.assignment_ready = asyncio.Event()
        # held by the window timer while it stores a closing (streams.worker.app.CloseWindows)
        self.closing = asyncio.Lock()
        self.generation = 0  # assignments completed
        self.listener_error: BaseException | None = None  # what a rebalance step raised
        self.adopting: asyncio.Task[None] | None = None  # the assignment being adopted
        self.listener_broken = asyncio.Event()
        self.sought: dict[TopicPartition, int] = {}  # this assignment's seeks
        # (generation, next offset to read per partition) of what was counted
        self.read_to: tuple[int, dict[TopicPartition, int]] = (0, {})
        self.last_read: dict[TopicPartition, Message] = {}  # the newest record counted
        self.stored_to: dict[TopicPartition, int] = {}  # next offset after the rows stored
        self.handover = handover
        # this assignment's handovers not read past yet (streams.worker.handover)
        self.handed_over: dict[TopicPartition, Handover] = {}
        self.fence = fence or OffsetFence(
            lambda: AIOKafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id=f"{settings.app_id}-fence",
                enable_auto_commit=False,
                auto_offset_reset="none",
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
        )
        self.unreadables = Unreadables(
            totals,
            lambda name: routes[name].topic if name in routes else "other",
            settings.kafka_topic(CONTROL_TOPIC),
            lambda: AIOKafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id=f"{settings.app_id}-control",
                enable_auto_commit=False,
            ),
            send_dead_letter,
        )

    def make_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.settings.app_id,
            client_id=f"{self.settings.app_id}-reader",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # the local broker (tansu) makes joins wait ~half the session timeout
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # partition p of every topic to the same member: co-partitioning (the default,
            # round robin, spreads them)
            partition_assignment_strategy=(RangePartitionAssignor,),
        )

    async def run(self) -> None:
        """Read until cancelled (the Faust app stops its tasks on shutdown).

        Raises as soon as the reading loop or the inserter dies, whatever the other is
        waiting on (a full insert queue, an assignment, a fetch): the worker must exit
        rather than hang (``streams.worker.app`` turns it into one line and a non-zero exit).
        """
        consumer = self.consumer = self.make_consumer()
        consumer.subscribe(list(self.routes), listener=_Listener(self))
        await consumer.start()
        inserter = asyncio.create_task(self.insert_forever(), name="salewatch-inserter")
        reading = asyncio.create_task(self.read_forever(consumer), name="salewatch-reading")
        broken = asyncio.create_task(self.listener_broken.wait())
        died = False
        try:
            await asyncio.wait({inserter, reading, broken}, return_when=asyncio.FIRST_COMPLETED)
            died = True
            for name, task in (("the inserter", inserter), ("the reader", reading)):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise TaskDied(name) from task.exception()  # the inserter first: the
                    # reader may have died of the queue the inserter failed
            if self.listener_error is not None:
                raise TaskDied("the rebalance listener") from self.listener_error
        finally:
            broken.cancel()
            await self.abandon_adoption()
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
            if died:  # no drain: exit now; what is not stored is read again (at least once)
                inserter.cancel()
            else:
                await self.drain_before_stop(inserter)
            await self.unreadables.close()
            try:
                await asyncio.wait_for(consumer.stop(), CONSUMER_STOP_S)
            except TimeoutError:
                log.warning("the Kafka consumer did not stop within %.0fs", CONSUMER_STOP_S)

    async def read_forever(self, consumer: AIOKafkaConsumer) -> None:
        """The reading loop: fetch, count, queue (see the module docstring)."""
        within_ms = int(self.settings.batch_within_s * 1000)
        max_records = 4 * self.settings.batch_size
        while True:
            await self.assignment_ready.wait()
            generation = self.generation
            if self.unreadables.stopped and self.unreadables.generation != generation:
                self.unreadables.forget()  # a new assignment ended the pauses
            await self.unreadables.check_skips(consumer)
            try:
                polled = await consumer.getmany(timeout_ms=within_ms, max_records=max_records)
            except Exception as exc:
                polled = await self.read_up_to_unreadable(consumer, exc, within_ms)
            if not polled:
                continue
            if generation != self.generation or not self.assignment_ready.is_set():
                self.hand_back(consumer, polled)
                continue
            async with self.preparing:
                await self.count_and_queue(polled)

    def listener_failed(self, exc: BaseException) -> None:
        """A rebalance step raised ``exc``: ``run()`` raises it (the worker exits)."""
        self.listener_error = exc
        self.listener_broken.set()

    async def drain_before_stop(self, inserter: asyncio.Task[None]) -> None:
        """On shutdown, store and commit what was counted (at most ``SHUTDOWN_DRAIN_S``).

        What is not stored by then is read again by the next owner (at least once). No
        window closes from here on: the partitions' next owner emits the open ones.
        """
        self.assignment_ready.clear()
        await self.closing_stored()
        if not inserter.done() and not self.queue.failed:
            try:
                await asyncio.wait_for(self.queue.drained(), SHUTDOWN_DRAIN_S)
            except TimeoutError:
                log.warning(
                    "stopping with %d events not stored in ClickHouse; they will be read again",
                    self.queue.events,
                )
                await self.hand_over(None)
            else:
                log.info("stopped reading; everything counted is stored and committed")
        inserter.cancel()

    def hand_back(
        self, consumer: AIOKafkaConsumer, polled: dict[TopicPartition, list[Any]]
    ) -> None:
        """Give back, uncounted, records fetched while a rebalance ran: they are read again.

        aiokafka assigns the new partitions before their adoption (:meth:`adopt`) rebuilds
        their state, so a fetch can return records of the new assignment, from the
        committed offset, before the rebuild and its seeks are done. Counting them then
        would put them into the state the rebuild replaces (lost) or count stored events
        again; instead each still-assigned partition is sought back to the first record
        handed back, or to where the rebuild sought it, whichever is further.
        """
        owned = consumer.assignment()
        for tp, records in polled.items():
            if records and tp in owned:
                consumer.seek(tp, max(records[0].offset, self.sought.get(tp, 0)))
        log.info("re-reading %d partition(s) fetched during a rebalance", len(polled))

    async def count_and_queue(self, polled: dict[TopicPartition, list[Any]]) -> None:
        # aiokafka's records go to the chain as they are (no copy per record)
        by_topic: dict[str, list[Message]] = defaultdict(list)
        counted_by_topic: dict[str, list[Message]] = defaultdict(list)
        for tp, records in polled.items():
            cut = self.counted_before_us(tp, records)
            if cut:
                counted_by_topic[tp.topic].extend(records[:cut])
            by_topic[tp.topic].extend(records[cut:] if cut else records)
        results: list[PreparedBatch | None] = []
        if counted_by_topic:  # first: a partition's events are counted in offset order
            results += await asyncio.gather(
                *(self._recount(name, ms) for name, ms in counted_by_topic.items())
            )
        results += await asyncio.gather(
            *(
                self.routes[name].prepare(self.routes[name].topic, ms)
                for name, ms in by_topic.items()
                if ms
            )
        )
        prepared = [p for p in results if p is not None]
        offsets = {tp: records[-1].offset + 1 for tp, records in polled.items() if records}
        if self.read_to[0] != self.generation:
            self.read_to = (self.generation, {})
        self.read_to[1].update(offsets)
        for tp, records in polled.items():
            if records:
                self.last_read[tp] = records[-1]
        await self.queue.put(ReadBatch(prepared, offsets), sum(len(p.rows) for p in prepared))

    def counted_before_us(self, tp: TopicPartition, records: Sequence[Message]) -> int:
        """How many of ``records`` (one fetch of ``tp``, in offset order) a previous owner
        counted already (its handover); forgets the handover once read past it."""
        handed = self.handed_over.get(tp)
        if handed is None or not records:
            return 0
        if records[-1].offset >= handed.counted_through:
            del self.handed_over[tp]
        if self.routes[tp.topic].recount is None:
            return 0
        return bisect_right([r.offset for r in records], handed.counted_through)

    async def _recount(self, name: str, messages: list[Message]) -> PreparedBatch | None:
        route = self.routes[name]
        assert route.recount is not None
        return await route.recount(route.topic, messages)

    async def read_position(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """The next offset of ``tp`` to count: after what was counted in this assignment,
        else where the assignment started reading it (the rebuild's seek, the committed
        offset, or the partition's start)."""
        generation, read_to = self.read_to
        if generation == self.generation and tp in read_to:
            return read_to[tp]
        if tp in self.sought:
            return self.sought[tp]
        committed = await consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int((await consumer.beginning_offsets([tp]))[tp])

    async def read_up_to_unreadable(
        self, consumer: AIOKafkaConsumer, exc: Exception, within_ms: int
    ) -> dict[TopicPartition, list[Any]]:
        """After ``getmany`` raised ``exc``: stop the partition at its unreadable batch, and
        return the records before that batch, to count. Re-raises what is not about a batch.

        aiokafka loses the records a failing ``getmany`` had already taken from other
        partitions while advancing their positions: every partition is sought back to what
        was counted, so nothing is skipped.
        """
        found = locate(exc)
        if found is None or found.tp not in consumer.assignment():
            raise exc
        for tp in consumer.assignment() - consumer.paused():
            consumer.seek(tp, await self.read_position(consumer, tp))
        start = await self.read_position(consumer, found.tp)
        polled: dict[TopicPartition, list[Any]] = {}
        if start < found.offset:
            try:
                polled = await consumer.getmany(
                    found.tp, timeout_ms=within_ms, max_records=found.offset - start
                )
            except Exception:  # offsets missing before the batch: stop at the first one
                found = replace(found, offset=start)
            if polled and polled[found.tp][-1].offset + 1 < found.offset:
                return polled  # a partial fetch: the rest of the prefix comes next time
        self.unreadables.stop(consumer, found, self.generation)
        return polled

    async def insert_forever(self) -> None:
        """Store and commit queued batches, oldest first. If it raises, the queue fails
        (:meth:`InsertQueue.fail`): whoever waits on it raises too, nobody hangs."""
        max_events = 4 * self.settings.batch_size
        try:
            while True:
                taken = await self.queue.take(max_events)
                await self.store_and_commit(taken)
                await self.queue.done(taken)
        except BaseException as exc:
            await self.queue.fail(exc)
            raise

    async def store_and_commit(self, taken: list[Queued[ReadBatch]]) -> None:
        rows: dict[Topic, list[tuple[Any, ...]]] = defaultdict(list)
        offsets: dict[TopicPartition, int] = {}
        for queued in taken:
            for batch in queued.item.prepared:
                rows[batch.topic].extend(batch.rows)
            offsets.update(queued.item.next_offsets)  # later batches: higher offsets
        await asyncio.gather(
            *(
                self.stores[topic](topic, topic_rows)
                for topic, topic_rows in rows.items()
                if topic_rows
            )
        )
        self.stored_to.update(offsets)
        await self.commit(offsets)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self.consumer
        if consumer is None or not offsets:
            return
        owned = consumer.assignment()
        mine = {tp: off for tp, off in offsets.items() if tp in owned}
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except (CommitFailedError, KafkaError) as exc:
            # a rebalance took the partitions meanwhile: the next owner reads them again;
            # the raw tables collapse the repeated rows by event_id
            log.warning("committing offsets of %d partition(s) failed: %s", len(mine), exc)

    async def closing_stored(self, timeout_s: float = CLOSING_WAIT_S) -> None:
        """Wait (at most ``timeout_s``) for a window closing being stored."""
        try:
            await asyncio.wait_for(self.closing.acquire(), max(timeout_s, 0.0))
        except TimeoutError:
            log.warning(
                "a window closing is still being stored after %.1fs; the next owner of "
                "these partitions emits that window again (its rows are replaced)",
                timeout_s,
            )
        else:
            self.closing.release()

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions go: wait for the fetch being counted, then for everything
        queued to be stored and committed — at most ``revoke_drain_timeout_s``.

        Kafka waits for this member only up to the rebalance timeout; a member that takes
        longer (a ClickHouse outage) is evicted and its partitions are counted by another
        member meanwhile. So at the bound the partitions are released anyway (one warning)
        with a handover (:meth:`hand_over`): what was counted but not stored is read again
        by the next owner, stored once (the raw tables collapse it by ``event_id``) and not
        counted into its totals again. The inserter keeps storing it; offsets of partitions
        no longer owned are not committed. The bound covers the wait for a window closing
        being stored and the handover's write too.
        """
        await self.abandon_adoption()
        self.assignment_ready.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        # the handover's write fits in the bound too
        budget = self.settings.revoke_drain_timeout_s
        if self.handover is not None:
            budget = max(budget - HANDOVER_WRITE_S, 0.0)
        await self.closing_stored(min(CLOSING_WAIT_S, budget))
        if not revoked:
            return
        bound = max(budget - (loop.time() - started), 0.0)

        async def drained() -> None:
            async with self.preparing:
                await self.queue.drained()

        try:
            await asyncio.wait_for(drained(), bound)
        except TimeoutError:
            log.warning(
                "released %d partition(s) with %d counted events not stored in ClickHouse "
                "after %.1fs (SALEWATCH_REVOKE_DRAIN_TIMEOUT_S); their next owner reads "
                "them again, not counting them again if the handover is recorded",
                len(revoked),
                self.queue.events,
                loop.time() - started,
            )
            await self.hand_over(revoked)
            return
        log.info("released %d partition(s) after storing what was counted", len(revoked))

    def unstored_handovers(
        self, scope: set[TopicPartition] | None
    ) -> dict[TopicPartition, Handover]:
        """Per partition of ``scope`` (None: all) counted in this assignment beyond what is
        stored: up to where its events are in this worker's totals (or a previous owner's,
        whichever is further), fingerprinted by an event id of the message there."""
        generation, read_to = self.read_to
        if generation != self.generation:
            return {}
        found: dict[TopicPartition, Handover] = {}
        for tp, next_offset in read_to.items():
            if (scope is not None and tp not in scope) or self.stored_to.get(tp, -1) >= next_offset:
                continue
            ids = event_ids(self.last_read[tp].value) if tp in self.last_read else frozenset()
            own = Handover(next_offset - 1, min(ids) if ids else "")
            inherited = self.handed_over.get(tp)
            found[tp] = (
                inherited
                if inherited is not None and inherited.counted_through > own.counted_through
                else own
            )
        return found

    async def hand_over(self, scope: set[TopicPartition] | None) -> None:
        """Record where this worker counted the partitions of ``scope`` (None: all) it
        releases with events unstored (``streams.worker.handover``); never raises: a
        handover that is not written costs a double count in Prometheus, nothing else."""
        if self.handover is None:
            return
        handovers = self.unstored_handovers(scope)
        if not handovers:
            return
        try:
            await self.handover.write(handovers)
        except Exception as exc:
            self.totals.inc("salewatch_handovers_total", ("write_failed",))
            log.warning(
                "could not record the handover of %d partition(s) (%r): their next owner "
                "counts the unstored events again in Prometheus",
                len(handovers),
                exc,
            )
            return
        self.totals.inc("salewatch_handovers_total", ("written",))
        log.info(
            "handed over %d partition(s) counted but not stored: %s",
            len(handovers),
            describe(handovers),
        )

    async def take_handovers(
        self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, Handover]:
        """The handovers of ``assigned`` partitions that this assignment will read into:
        counted through an offset at or after where reading starts, and fingerprinted by a
        record the fence finds in this log."""
        if self.handover is None:
            return {}
        try:
            found = await self.handover.read()
        except Exception as exc:
            self.totals.inc("salewatch_handovers_total", ("read_failed",))
            log.warning("could not read the handovers (%r): none applied", exc)
            return {}
        reaching: dict[TopicPartition, Handover] = {}
        for tp, handed in found.items():
            if tp not in assigned or tp.topic not in self.routes:
                continue
            start = self.sought.get(tp)
            if start is None:
                committed = await consumer.committed(tp)
                start = int(committed) if committed is not None else 0
            if handed.counted_through >= start:
                reaching[tp] = handed
        verdicts = await self.fence.verify(
            {tp: StoredPosition(h.counted_through, h.event_id) for tp, h in reaching.items()}
        )
        applied = {tp: h for tp, h in reaching.items() if verdicts.get(tp) == "same"}
        if applied:
            self.totals.inc("salewatch_handovers_total", ("applied",), len(applied))
            log.info(
                "applying handovers: %s counted by their previous owner",
                describe(applied),
            )
        if len(applied) < len(reaching):
            self.totals.inc("salewatch_handovers_total", ("refused",), len(reaching) - len(applied))
            log.warning(
                "ignoring the handovers of %d partition(s): the fingerprinted record is not"
                " in this log (another incarnation?)",
                len(reaching) - len(applied),
            )
        return applied

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Start adopting ``assigned`` (:meth:`adopt`) in a task and return: the rebalance
        listener must not outlast the session timeout (see the module docstring). If the
        adoption raises, :meth:`run` raises it."""
        await self.abandon_adoption()
        self.adopting = asyncio.create_task(self.adopt(assigned), name="salewatch-adoption")
        self.adopting.add_done_callback(self._adoption_done)

    def _adoption_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.listener_failed(task.exception())  # type: ignore[arg-type]

    async def abandon_adoption(self) -> None:
        """Cancel an adoption still running (its partitions are being revoked, or the
        worker stops): nothing of it is adopted, its rebuild stops at its next query."""
        task, self.adopting = self.adopting, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def adopt(self, assigned: set[TopicPartition]) -> None:
        """Rebuild the assigned partitions' state, seek past what ClickHouse holds, then let
        reading and the window timer go on (``assignment_ready``)."""
        consumer = self.consumer
        assert consumer is not None
        partitions = sorted({tp.partition for tp in assigned})
        stored_positions = await self.on_assigned(partitions)
        wanted: dict[TopicPartition, StoredPosition] = {}
        for tp in assigned:
            route = self.routes.get(tp.topic)
            if route is not None and route.store is not None:
                stored = stored_positions.get((route.topic, tp.partition))
                if stored is not None:
                    wanted[tp] = stored
        self.sought = await self.seek_past_stored(consumer, wanted) if wanted else {}
        self.handed_over = await self.take_handovers(consumer, assigned)
        self.generation += 1
        self.assignment_ready.set()
        if self.generation == 1:
            print(f"{READY_LINE} ({len(assigned)} partitions)", flush=True)

    async def seek_past_stored(
        self, consumer: AIOKafkaConsumer, wanted: dict[TopicPartition, StoredPosition]
    ) -> dict[TopicPartition, int]:
        """Seek each partition past the offsets ClickHouse holds, fenced to its incarnation
        (:func:`streams.worker.offset_fence.seek_past_stored`); returns the seeks made."""
        counting_topic = {name: route.topic for name, route in self.routes.items()}
        return await seek_past_stored(consumer, wanted, self.fence, self.totals, counting_topic)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs the reader's rebalance steps. aiokafka logs and swallows what a listener
    raises, which would leave the reader waiting for an assignment forever: the error is
    handed to the reader instead (:meth:`SourceReader.listener_failed`), whose ``run()``
    raises it."""

    def __init__(self, reader: SourceReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.reader.partitions_revoked(revoked)
        except Exception as exc:
            self.reader.listener_failed(exc)
            raise

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.reader.partitions_assigned(assigned)
        except Exception as exc:
            self.reader.listener_failed(exc)
            raise
