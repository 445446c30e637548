"""Paced load generator with freshness markers (run as a subprocess of the harness).

Before the clock starts it generates a pool of messages (``bench.workload``) whose
``ts`` is a placeholder and whose event ids end in a ``~00`` tag. Every ``TICK_S`` it then
takes the events due since the start (``--rate`` events/s) from the pool, writes the
wall clock into ``ts`` (``ts`` = now) and the pool cycle into the tag (ids stay unique),
fills per-partition batches and sends them, so the produced rate holds whatever the batch
sizes and costs ~2 µs an event instead of ~9. It runs on the same machine as the
workers; its CPU time is reported so the results say how much of the machine it took.

Markers (``--markers-per-s``, round-robin over the partitions of ``clicks``) measure
freshness. Marker ``i`` of partition ``p`` is a ``page_view`` with ``ts`` = the moment it
is handed to the producer, ``traffic_source=email`` and ``page_type=pay_result`` (the
workload never sends that pair) and the channel ``MARKER_CHANNELS[p]``. Kafka keeps a
partition in order and a worker handles a partition in order, so marker ``i`` of ``p`` has
reached /metrics once ``salewatch_page_views_total{channel=MARKER_CHANNELS[p],
traffic_source="email", page_type="pay_result"}`` (summed over workers) is ``≥ i``, and it
is in ClickHouse once its ``event_id`` is in ``clicks_raw``. Markers travel the busy topic
on purpose: a marker on a quiet topic would not wait behind the load.

Output: one JSON line per marker ``[partition, i, event_id, sent_at]`` in ``--markers``,
and a summary line (events, seconds, CPU seconds) in ``--summary``.

    python -m bench.loadgen --prefix P --rate 5000 --duration 60 --markers FILE --summary FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path

from bench.kafka_io import BatchSender, make_producer
from bench.workload import Message, Workload, WorkloadConfig

TICK_S = 0.02
POOL_EVENTS = 200_000
TS_PLACEHOLDER = b"1999999999999"  # 13 digits, like every epoch-ms time until 2286
ID_TAG = b"~00"
MARKER_CHANNELS = ("app", "web", "mini_program", "h5")
MARKER_SOURCE = "email"
MARKER_PAGE = "pay_result"


def marker_value(partition: int, i: int, ts: int, tag: str) -> tuple[str, bytes]:
    """The event id and JSON of marker ``i`` (1-based) of ``partition``."""
    event_id = f"mk-{tag}-{partition}-{i}"
    value = (
        f'{{"schema_version":1,"event_id":"{event_id}","event_type":"page_view","ts":{ts},'
        f'"user_id":"mk-{tag}","session_id":"mk-{tag}-{partition}","channel":'
        f'"{MARKER_CHANNELS[partition]}","region":"CN-BJ","page_type":"{MARKER_PAGE}",'
        f'"traffic_source":"{MARKER_SOURCE}","load_ms":100}}'
    )
    return event_id, value.encode()


async def generate(args: argparse.Namespace) -> dict[str, float]:
    if args.partitions > len(MARKER_CHANNELS):
        raise SystemExit(f"markers need at most {len(MARKER_CHANNELS)} partitions")
    producer = make_producer(args.bootstrap)
    await producer.start()
    prefix: str = args.prefix
    sender = BatchSender(producer, lambda topic: prefix + topic)
    workload = Workload(
        WorkloadConfig(
            users=args.users,
            partitions=args.partitions,
            tickets=True,
            max_array=args.max_array,
            seed=args.seed,
            event_id_suffix=ID_TAG,
        )
    )
    placeholder = int(TS_PLACEHOLDER)
    pool: list[Message] = []
    pooled = 0
    while pooled < min(POOL_EVENTS, int(args.rate * args.duration) + 1):
        for message in workload.next_messages(placeholder):
            pool.append(message)
            pooled += message.events
    pool.extend(workload.flush())
    marker_every = 1.0 / args.markers_per_s if args.markers_per_s > 0 else float("inf")
    markers_out = args.markers.open("w")
    counts = [0] * args.partitions
    marker_n = 0
    events = 0
    position = cycle = 0
    cpu_start = _cpu_s()
    started = time.monotonic()
    next_marker = started
    end = started + args.duration
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            while next_marker <= now:
                p = marker_n % args.partitions
                counts[p] += 1
                marker_n += 1
                sent_at = time.time()
                event_id, value = marker_value(p, counts[p], int(sent_at * 1000), args.tag)
                key = f"mk-{args.tag}-{p}".encode()
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
                batch.close()
                await producer.send_batch(batch, prefix + "clicks", partition=p)
                markers_out.write(json.dumps([p, counts[p], event_id, sent_at]) + "\n")
                next_marker += marker_every
            due = int(args.rate * (now - started)) - events
            ts = b"%d" % int(time.time() * 1000)
            tag = b"~%02d" % (cycle % 100)
            while due > 0:
                message = pool[position]
                value = message.value.replace(TS_PLACEHOLDER, ts)
                if cycle:
                    value = value.replace(ID_TAG, tag)
                await sender.add(message._replace(value=value))
                events += message.events
                due -= message.events
                position += 1
                if position == len(pool):
                    position = 0
                    cycle += 1
                    tag = b"~%02d" % (cycle % 100)
            await sender.flush()
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        await sender.drain()
    finally:
        markers_out.close()
        await producer.stop()
    return {
        "events": events,
        "markers": marker_n,
        "seconds": time.monotonic() - started,
        "cpu_s": _cpu_s() - cpu_start,  # while producing, not while building the pool
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--markers-per-s", type=float, default=20.0)
    parser.add_argument("--max-array", type=int, default=1)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--tag", default="run")
    parser.add_argument("--markers", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    args = parser.parse_args()
    summary = asyncio.run(generate(args))
    args.summary.write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
