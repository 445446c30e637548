"""salewatch benchmarks (issue 8): throughput, freshness, memory and scale-out on the real stack.

Run by ``salewatch bench`` (``streams.cli.bench``) or ``python -m bench.run``; kept apart
from the tests: nothing here decides whether the test suite passes. One module per
measurement, each a plain function the orchestrator (``bench.run``) calls:

* ``workload``   — a fast, seeded generator of mixed EVENTS.md events (sessions, 1M users);
* ``kafka_io``   — topic set-up and fast pre-production (aiokafka batch API);
* ``stats``      — percentile and steady-rate arithmetic (unit-tested);
* ``ceiling``    — raw aiokafka ``getmany`` + JSON decode, in process;
* ``faust_floor``— a bare Faust agent that only decodes each event (subprocess);
* ``workers``    — ``salewatch worker`` subprocesses, /metrics scraping, RSS;
* ``throughput`` — events/s of the three consumers and of 1 vs 2 workers;
* ``loadgen``    — the paced load generator with freshness markers (subprocess);
* ``freshness``  — production → /metrics and → ClickHouse latencies under load;
* ``memory``     — worker RSS after 1M, 5M, 10M events;
* ``report``     — the table, ``bench/results.json`` and the chart.
* ``record_profile``, ``profile`` — py-spy profiles of a worker and their summaries.
* ``variants``, ``probed_worker`` — worker settings compared; a worker logging its largest
  containers (memory step).
"""
