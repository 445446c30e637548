"""Rebuild a worker's counting state from ClickHouse when Kafka assigns it partitions.

Modules: ``plan`` (which stored events, pure), ``sql`` (the reads), ``rows`` (rows back into
events and sessions, pure), ``rebuild`` (read and count, blocking), ``service`` (the
worker's side: at every assignment, in a thread, retried).

Why: a worker keeps its open windows, sessions and recent order categories in memory, and
Faust's changelog recovery is unreliable on the local broker (``ListOffsets`` is wrong on
tansu, ``../shared/STACK.md``). ClickHouse holds every valid event the worker accepted (the
raw tables: a batch is acknowledged only after its rows are in) and every window it closed
(the rollup tables), so it is the durable truth the state is rebuilt from.

When: at every assignment (restart, rebalance), before the assigned partitions are read.
The state of *all* assigned partitions is rebuilt on a fresh pipeline and replaces the
in-memory one (:meth:`streams.counting.pipeline.Pipeline.adopt`); Prometheus totals are
never touched: the previous process counted those events already, and a counter reset on
restart is what PromQL ``increase``/``rate`` handle.

What, for the assigned partitions ``P`` (the same numbers on every topic: the reader's range
assignor co-partitions topics with equal partition counts):

1. **plan** (:func:`.plan.plan_rebuild`, pure): per partition p, the first window not emitted
   yet, ``from[p]``: after p's newest mark in ``window_emitters``, by whichever worker
   (:func:`streams.worker.window_emitters.plan_windows`), never more than
   :data:`.plan.MAX_CATCH_UP_MS` before the clock; ``replay_from`` is the oldest of them.
   Rollup rows are per partition (``p3``), so a window of p emitted again replaces its
   rows: a mark that did not make it (a crash between rows and mark, a store in flight
   during a rebalance) costs one window emitted twice under one key, never a double count.
2. **open windows**: every stored event of ``P`` with ``ts >= replay_from`` is counted again
   through :meth:`Pipeline.warm_up`, in event-time order, into window tallies (of p only
   from ``from[p]`` on: before, p's windows are emitted) and sessions. The replay is read
   in slices of event time (:func:`.rebuild.replay_slices`: 10 s, halved while a slice
   holds more than 60,000 rows) and counted as it is read, one event dict at a time, so
   a rebuild's memory is the rebuilt state plus one slice, whatever the catch-up's length
   (up to ``MAX_CATCH_UP_MS``: 18 M events at 5,000 events/s; ``bench.rebuild_memory``).
   Orders are replayed up to the offsets stored when the rebuild starts: one stored later
   by another worker (the orders partition's owner) while this one still reads is counted
   when ``orders_by_session`` delivers it, not skipped as counted. Windows that closed
   while the worker was down, or that a moved partition's previous owner did not emit, are
   among them; the next timer tick emits them, complete.
3. **sessions** that a future event can continue (last seen after ``replay_from - timeout``):
   one aggregate query over the session activity (``streams.counting.funnel``: clicks,
   carts, ``order_created``/``payment_succeeded``/``payment_failed``) of
   ``[replay_from - session lookback, replay_from)``, split at 30-minute gaps in SQL.
4. **order categories** of orders created in the last ``ORDER_MEMORY_MS`` + size + lateness.
5. **Kafka positions**: the next offset per source topic and partition is the newest stored
   offset + 1 (a partition's stored offsets are a prefix: the reader's insert queue stores
   batches in the order they were read); the reader seeks there before it reads, so
   nothing ClickHouse holds is read again — once ``streams.worker.offset_fence`` found, at the
   newest stored offset, a record holding an ``event_id`` stored there (else the log is
   another incarnation and the partition is read from the group's committed offset).
   ``orders_by_session`` has no stored offsets: the ids of the orders the rebuild
   replayed, and of recently stored orders of the windows before, are skipped once if
   Kafka delivers them again (:meth:`Pipeline.adopt`); never an order stored after the
   replay read (by another worker, while this one rebuilds): nothing counted it yet.

Ownership: clicks, carts and tickets rows carry their own partition (``kafka_partition``).
Orders rows carry the ``orders`` partition (keyed by ``order_id``), but an order is counted
by the owner of its session, ``murmur2(session_id) % partitions``
(``streams.kafka.partitioner``): the default partitioner of kafka-python and aiokafka,
which routes ``orders_by_session``. Producers are assumed to use it for clicks and carts too
(EVENTS.md keys), so a session's events all belong to one partition number.

Cost, measured on the 2-core dev box against ClickHouse 18.16 (synthetic 5k events/s
tables; the worker logs each rebuild's steps and times):

* open windows: reading the ~900k events of a 3-minute size + lateness takes ~1.8 s,
  turning rows into events ~0.8 s, counting them 7-12 µs/event (the counting core's own
  speed: 6-11 s): ~10-14 s for a worker that owns every partition at 5k events/s, less
  per worker when partitions are spread; the ground-truth integration test's restart (~1,200
  events) takes 0.15-0.2 s; memory: one slice of the replay plus the rebuilt state (peak
  +128 / +183 / +320 / +761 MiB for 5 / 10 / 20 / 60 minutes at 5,000 events/s, where
  holding the replay cost +948 / +1,866 MiB for 5 / 10 minutes, ~11 GB for 60 extrapolated:
  ``bench/RESULTS.md``);
* sessions: the aggregate over a 33-minute lookback (10M rows, 250k sessions) takes ~2 s
  on the server and returns only the sessions a future event can continue; sorting each
  session's packed events costs ~25 % over plain min/max aggregates, and buys exact
  30-minute session splits;
* offsets, order categories, redelivered ids: key-range reads, < 0.1 s each.

Meanwhile the assigned partitions stay paused (lag grows, then drains); ``/metrics`` and
the window timer keep running.

Known gaps:

* the batches a worker had counted and not stored when it crashed (the insert linger, up
  to ``SALEWATCH_INSERT_LINGER_S``) are read again and counted again (a small double count
  in ``increase``), and if their window closed meanwhile their events are late; their
  orders are forwarded again, the second copy skipped (``streams.worker.reforwards``);
  counts made after Prometheus' last scrape of the dead process are lost to Prometheus
  (not to ClickHouse);
* a producer's duplicate of an order whose first copy was stored before a restart is
  skipped as a redelivery instead of counted in ``salewatch_events_duplicate_total``;
* sessions continuously active for longer than the session lookback are rebuilt from their
  recent events only (an earlier funnel step may count again); late events stored raw, not
  counted live, take part in the rebuilt session state;
* the 5- and 15-minute distinct-user gauges start over with the windows closed after the
  restart (``active_users_1m`` in ClickHouse is unaffected);
* amounts with more than two decimals are stored truncated to cents, counted live rounded;
* a window emitted again is rebuilt from the stored events: events of it that the
  previous owner counted but had not stored when it died are read again and counted late
  (only when raw inserts lag window closings by more than the allowed lateness, e.g.
  during a ClickHouse outage), and late events it stored raw are counted in the new rows;
* after a takeover, the dead worker's backlog (events it never read) is counted late when
  the survivor's clock passed their windows + lateness before it could read them: with the
  wall clock, a takeover longer than ``allowed_lateness_s``; with the event clock, the
  survivor's own partitions move its clock while the moved ones wait
  (``salewatch_events_late_total`` counts them; the raw tables hold them);
* ``traffic_1m.active_users`` is distinct per partition, so summing it over partitions
  counts a user seen in two partitions' sessions twice (use ``active_users_1m``).
"""
