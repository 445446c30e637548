"""The soak test: a live stream at a steady rate through two real workers, a random fault
every few minutes, and at the end the raw tables and the rollups checked against the truth.

    python -m tests.faults.soak --minutes 30 --rate 5000 --fault-every 180   # make soak
    pytest tests/faults/test_soak.py                                        # CI: ~3.5 min

Everything runs on throwaway services on free ports (clickhouse-server and tansu, as the
other fault tests): the faults restart them, and the shared stack is never touched.

The stream: clicks, carts and orders (5:3:2), ``ts`` = the wall clock when produced, one
event per Kafka message, unique ``event_id``s, from an RNG seeded with the printed seed.
The producer (librdkafka) keeps only the truth: events per topic and the cart/order counts
per (minute, channel, event_type), the figures ``cart_events_1m`` / ``orders_1m`` must hold.

Faults, one every ``--fault-every`` seconds, the kinds dealt from a shuffled deck (every kind
once before any kind twice):

- ``sigkill``: a worker SIGKILLed, started again 1-10 s later;
- ``clickhouse_restart``: ClickHouse stopped (SIGTERM or SIGKILL), started 3-15 s later;
- ``broker_restart``: tansu stopped and started. tansu 0.6.0 keeps topics in memory (its
  durable engines here are ``postgres://`` and ``s3://``, each a server of its own; sqlite
  is not compiled in: ``FeatureNotEnabled libsql``), so a restart loses every record, group
  and committed offset. What the soak does, like an operator of a memory broker would: it
  pauses the producer, waits until every event produced is stored and every forwarded order
  counted, reads the dead letters so far, restarts the broker, recreates the topics and
  resumes. "Exact" then means: nothing the broker held *unread* is lost because there was
  nothing; the workers must survive the restart, rejoin, fence their offsets to the new
  incarnation (``streams.worker.offset_fence``) and count on. A restart with data in flight loses
  that data by construction (docs/reliability.md, gap 3), which no worker can repair;
- ``rebalance``: a worker stopped with SIGTERM and started 2-10 s later, or a third worker
  joining the group for 15-30 s and leaving with SIGTERM;
- ``poison``: 30 bad messages mixed into the stream (malformed JSON, wrong types, tombstones,
  empty values, not an object, 2 MB and 100 KB events), each keyed with a marker so the
  dead letter (which keeps the source key) can be matched to it.

The window clock is the event clock with the live lateness (120 s): events carry the wall
time, so it closes windows like the wall clock does, and at the end 40 later events close
every window at once instead of waiting 3 minutes (``tests.faults.support.close_and_settle``).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.cli.worker import create_topics
from streams.clickhouse.client import quiet_driver_logging
from streams.events.contract import DEAD_LETTER_TOPIC
from streams.settings import Settings, load_settings
from tests.faults.conftest import ThrowawayClickHouse, ThrowawayTansu, free_port, migrate, rss_kib
from tests.faults.support import (
    CHANNELS,
    MIN_MS,
    Producer,
    carts_and_orders,
    forwarded_orders_counted,
    settle_rollups,
)
from tests.integration.support import WorkerProcess, clickhouse, isolated_settings, wait_until
from tests.unit.events_factory import make_event

FAULTS = ("sigkill", "clickhouse_restart", "broker_restart", "rebalance", "poison")
STREAM_TOPICS = ("clicks", "carts", "orders")
RAW = {"clicks": "clicks_raw", "carts": "carts_raw", "orders": "orders_raw"}
LATENESS_S = 120
POISON_PER_BATCH = 30
RECOVERED_LAG_S = 10.0  # a fault is over once the stored stream is this close to now again
SETTLE_WAIT_S = 120.0  # a fault waits at most this long for the previous one to be over
REBUILT = re.compile(r"rebuilt from ClickHouse in ([\d.]+)s")
TAIL_S = 20.0  # the stream goes on at least this long after the last fault


@dataclass
class Config:
    minutes: float
    rate: int
    fault_every_s: float
    workdir: Path
    seed: int
    first_fault_s: float | None = None  # default: fault_every_s
    max_faults: int | None = None  # default: as many as the schedule fits
    progress_every_s: float = 10.0
    echo: Callable[[str], None] = print


@dataclass
class Fault:
    kind: str
    at_s: float  # since the stream started
    took_s: float = 0.0  # the action itself (e.g. down + restarted + ready)
    detail: str = ""
    recovered_s: float | None = None  # from the fault's start until the lag was back
    lag_peak_s: float = 0.0
    delayed_s: float = 0.0  # after its slot, waiting for the previous fault to be over

    def line(self) -> str:
        rec = "not recovered" if self.recovered_s is None else f"recovered {self.recovered_s:.0f}s"
        return (
            f"{self.at_s:6.0f}s {self.kind:<18} {self.detail} (took {self.took_s:.1f}s, "
            f"{rec}, lag peak {self.lag_peak_s:.1f}s, delayed {self.delayed_s:.0f}s)"
        )


@dataclass
class Sample:
    at_s: float
    produced: int
    stored_rows: int  # physical rows of the raw tables (duplicates not merged yet count)
    lag_s: float | None  # now - the oldest of the newest stored event per partition
    rss_mib: dict[str, int]


@dataclass
class Result:
    seed: int
    config: str
    produced: Counter[str]  # valid events per topic (closers included)
    delivery_failures: int
    raw: dict[str, tuple[int, int, int]]  # per topic: FINAL, distinct, physical
    rollup_truth: tuple[Counter[Any], Counter[Any]]
    rollups: tuple[Counter[Any], Counter[Any]]
    rollup_diff: str
    poison: dict[bytes, str]  # marker key -> expected reason
    dead_letters: dict[bytes, list[str]]  # marker key -> reasons seen (at least once)
    unexpected_dead_letters: list[dict[str, Any]]
    faults: list[Fault]
    samples: list[Sample]
    late: float
    workers_alive: bool
    wall_s: float
    stream_s: float
    tracebacks: int
    rebuild_s: list[float]  # every rebuild of counting state at an assignment, all workers
    evictions: int  # "member_id was not recognized": a worker dropped from the group
    problems: list[str]  # harness waits that timed out, fault actions that failed
    summary: str = ""

    @property
    def raw_exact(self) -> bool:
        return all(self.raw[t][:2] == (self.produced[t], self.produced[t]) for t in STREAM_TOPICS)

    @property
    def rollups_exact(self) -> bool:
        return self.rollups == self.rollup_truth

    @property
    def poison_exact(self) -> bool:
        return set(self.dead_letters) == set(self.poison) and all(
            set(self.dead_letters[k]) == {reason} for k, reason in self.poison.items()
        )

    @property
    def exact(self) -> bool:
        return (
            self.raw_exact
            and self.rollups_exact
            and self.poison_exact
            and not self.unexpected_dead_letters
            and self.delivery_failures == 0
        )


def poison_messages(rng: random.Random, seed: int, first: int, now_ms: int) -> list[tuple]:
    """``POISON_PER_BATCH`` (topic, key, value, expected reason), keys ``poison-<seed>-<n>``."""
    out = []
    for n in range(first, first + POISON_PER_BATCH):
        key = f"poison-{seed}-{n}".encode()
        topic = rng.choice(STREAM_TOPICS)
        good = make_event(topic, event_id=f"poison-{seed}-{n}", ts=now_ms)
        kind = rng.choice(
            ["malformed", "wrong_type", "tombstone", "empty", "null", "huge", "big", "array"]
        )
        value: bytes | None
        if kind == "malformed":
            raw = orjson.dumps(good)
            value, reason = raw[: len(raw) // 2], "malformed_json"
        elif kind == "wrong_type":
            value, reason = orjson.dumps({**good, "ts": "yesterday"}), "wrong_type"
        elif kind == "tombstone":
            value, reason = None, "null_value"
        elif kind == "empty":
            value, reason = b"", "empty_value"
        elif kind == "null":
            value, reason = b"null", "not_an_object"
        elif kind == "huge":
            value, reason = orjson.dumps({**good, "pad": "x" * 2_000_000}), "too_large"
        elif kind == "big":
            value, reason = orjson.dumps({**good, "pad": "y" * 100_000}), "too_large"
        else:
            value, reason = b"[]", "empty_batch"
        out.append((topic, key, value, reason))
    return out


class LiveProducer:
    """Produces live events at ``rate``/s in its own thread; keeps the truth.

    ``pause()`` returns once everything produced so far is acknowledged; ``resume()`` goes
    on (the rate counts running time only). ``inject`` queues messages (poison) that the
    thread sends between two ticks."""

    def __init__(self, settings: Settings, rate: int, seed: int) -> None:
        self.settings = settings
        self.rate = rate
        self.rng = random.Random(seed)
        self.tag = f"k{seed}"
        self.produced: Counter[str] = Counter()
        self.carts: Counter[tuple[int, str, str]] = Counter()
        self.orders: Counter[tuple[int, str, str]] = Counter()
        self.failures: list[str] = []
        self.last_ts = 0
        self.seq = 0
        self.running_s = 0.0
        self._go = threading.Event()
        self._go.set()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._extra: queue.Queue[tuple[str, bytes, bytes | None]] = queue.Queue()
        self._templates = {t: make_event(t) for t in STREAM_TOPICS}
        self._client = self._new_client()
        self.thread = threading.Thread(target=self._run, daemon=True, name="soak-producer")

    def _new_client(self) -> confluent_kafka.Producer:
        return confluent_kafka.Producer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "linger.ms": 20,
                "partitioner": "murmur2_random",
                "message.max.bytes": 20 * 1024 * 1024,
                "queue.buffering.max.messages": 1_000_000,
                "message.timeout.ms": 600_000,
                "log_level": 2,  # the broker restart's disconnects are expected, not news
            }
        )

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()} {msg.key()!r}: {err}")

    def _event(self, now_ms: int) -> tuple[str, bytes, bytes]:
        self.seq += 1
        i = self.seq
        rng = self.rng
        slot = i % 10
        topic = "clicks" if slot < 5 else "carts" if slot < 8 else "orders"
        channel = CHANNELS[rng.randrange(len(CHANNELS))]
        session = f"{self.tag}s{rng.randrange(20_000)}"
        event = dict(self._templates[topic])
        event.update(
            event_id=f"{self.tag}-{i}",
            ts=now_ms,
            channel=channel,
            session_id=session,
            user_id=f"u{rng.randrange(50_000)}",
        )
        window = now_ms // MIN_MS * 60
        if topic == "carts":
            event["event_type"] = "add_to_cart" if rng.random() < 0.7 else "remove_from_cart"
            self.carts[(window, channel, event["event_type"])] += 1
            key = session
        elif topic == "orders":
            event["order_id"] = f"{self.tag}o{i}"
            self.orders[(window, channel, event["event_type"])] += 1
            key = event["order_id"]
        else:
            key = session
        self.produced[topic] += 1
        return topic, key.encode(), orjson.dumps(event)

    def _run(self) -> None:
        client = self._client
        tick = 0.05
        sent = 0
        while not self._stop.is_set():
            if not self._go.is_set():
                client.flush(120)
                self._idle.set()
                self._go.wait()
                client = self._client  # a new client after a broker restart
                continue
            started = time.monotonic()
            while not self._extra.empty():
                topic, key, value = self._extra.get()
                client.produce(
                    self.settings.kafka_topic(topic),
                    value=value,
                    key=key,
                    on_delivery=self._delivered,
                )
            due = int(self.running_s * self.rate) - sent
            now_ms = int(time.time() * 1000)
            for _ in range(max(0, due)):
                topic, key, value = self._event(now_ms)
                while True:
                    try:
                        client.produce(
                            self.settings.kafka_topic(topic),
                            value=value,
                            key=key,
                            on_delivery=self._delivered,
                        )
                        break
                    except BufferError:
                        client.poll(0.01)
                sent += 1
            if due > 0:
                self.last_ts = now_ms
            client.poll(0)
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
            self.running_s += time.monotonic() - started
        client.flush(120)

    def start(self) -> None:
        self.thread.start()

    def pause(self) -> None:
        self._idle.clear()
        self._go.clear()
        assert self._idle.wait(180), "producer did not pause"

    def resume(self, new_client: bool = False) -> None:
        if new_client:
            self._client = self._new_client()
        self._go.set()

    def inject(self, items: list[tuple[str, bytes, bytes | None]]) -> None:
        for item in items:
            self._extra.put(item)

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        self.thread.join(180)
        assert not self.thread.is_alive(), "producer did not stop"


def read_dead_letters(settings: Settings) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every (key, envelope) on the dead-letter topic now (read to its end)."""
    name = settings.kafka_topic(DEAD_LETTER_TOPIC)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=50 * 1024 * 1024,
        max_partition_fetch_bytes=50 * 1024 * 1024,
    )
    out: list[tuple[bytes | None, dict[str, Any]]] = []
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            polled = consumer.poll(timeout_ms=300, max_records=10_000)
            for records in polled.values():
                out.extend((r.key, orjson.loads(r.value)) for r in records)
            if polled:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return out


class Soak:
    """One soak run: services, workers, producer, faults, the final check."""

    def __init__(self, cfg: Config, base: Settings) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        for old_log in cfg.workdir.glob("worker-*.log"):
            old_log.unlink()  # the summary counts rebuilds and evictions in these logs
        self.ch = ThrowawayClickHouse(cfg.workdir / "clickhouse")
        self.broker = ThrowawayTansu(cfg.workdir / "tansu")
        self.settings = isolated_settings(
            base,
            kafka_bootstrap=f"127.0.0.1:{self.broker.port}",
            clickhouse_port=self.ch.tcp_port,
            clickhouse_http_port=self.ch.http_port,
            metrics_port=free_port(),
            window_clock="event",
            allowed_lateness_s=LATENESS_S,
        )
        self.workers = {
            name: WorkerProcess(
                self.settings.model_copy(update={"metrics_port": free_port()}),
                cfg.workdir / f"worker-{name}.log",
            )
            for name in ("a", "b", "c")
        }
        self.producer = LiveProducer(self.settings, cfg.rate, cfg.seed)
        self.faults: list[Fault] = []
        self.samples: list[Sample] = []
        self.poison: dict[bytes, str] = {}
        self.letters: list[tuple[bytes | None, dict[str, Any]]] = []
        self.t0 = 0.0
        self._sampling = threading.Event()
        self._deck: list[str] = []
        self.problems: list[str] = []  # what went wrong in the harness's waits

    # -- services -----------------------------------------------------------------------

    def echo(self, line: str) -> None:
        self.cfg.echo(line)

    def create_topics(self) -> None:
        """The worker's topics, as ``salewatch worker`` creates them at start (again after a
        broker restart: tansu keeps topics in memory)."""
        problem = create_topics(self.settings)
        if problem:
            raise RuntimeError(f"creating the topics failed: {problem}")

    def setup(self) -> None:
        self.ch.start()
        self.broker.start()
        migrate(self.settings)
        self.create_topics()
        self.workers["a"].start()
        self.workers["b"].start()

    def teardown(self) -> None:
        self._sampling.clear()
        for worker in self.workers.values():
            worker.stop(signal.SIGKILL)
        self.broker.stop()
        self.ch.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # -- measuring ----------------------------------------------------------------------

    def _sample(self, client: Any) -> Sample:
        stored = 0
        newest: list[int] = []
        lag: float | None
        try:
            for table in RAW.values():
                stored += int(client.execute(f"SELECT count() FROM {table}")[0][0])
                rows = client.execute(
                    f"SELECT kafka_partition, max(ts_ms) FROM {table} "
                    "WHERE event_time > now() - 600 GROUP BY kafka_partition"
                )
                newest.extend(int(m) for _, m in rows)
            partitions = self.settings.topic_partitions * len(RAW)
            lag = (time.time() * 1000 - min(newest)) / 1000 if len(newest) == partitions else None
        except Exception:  # ClickHouse down (a fault): no figure this time
            stored, lag = (self.samples[-1].stored_rows if self.samples else 0), None
            with contextlib.suppress(Exception):
                client.disconnect()
        rss = {
            name: rss_kib(w.proc.pid) // 1024
            for name, w in self.workers.items()
            if w.proc is not None and w.proc.poll() is None
        }
        return Sample(
            round(self.elapsed(), 1), sum(self.producer.produced.values()), stored, lag, rss
        )

    def _sampler(self) -> None:
        quiet_driver_logging()  # ClickHouse is down during its restarts: one traceback a try
        client = clickhouse(self.settings)
        printed = 0.0
        while self._sampling.is_set():
            sample = self._sample(client)
            self.samples.append(sample)
            if sample.at_s - printed >= self.cfg.progress_every_s:
                printed = sample.at_s
                lag = "?" if sample.lag_s is None else f"{sample.lag_s:.1f}s"
                rate = sample.produced / max(self.producer.running_s, 1e-9)
                rss = " ".join(f"{k}={v}" for k, v in sample.rss_mib.items())
                self.echo(
                    f"[{sample.at_s:6.0f}s] produced {sample.produced:,} ({rate:,.0f}/s) "
                    f"stored rows {sample.stored_rows:,} lag {lag} faults {len(self.faults)} "
                    f"| worker RSS MiB {rss}"
                )
            time.sleep(2.0)
        client.disconnect()

    # -- faults -------------------------------------------------------------------------

    def next_fault(self) -> str:
        if not self._deck:
            self._deck = list(FAULTS)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def settled(self) -> bool:
        """The previous fault is over: the last two samples taken after its action show the
        stored stream within ``RECOVERED_LAG_S`` of now on every partition. Faults do not
        overlap: a fault while the group is still settling is another test (and on tansu
        it can wedge the group: docs/reliability.md, "Soak test")."""
        if not self.faults:
            return True
        last = self.faults[-1]
        after = [s for s in self.samples if s.at_s >= last.at_s + last.took_s]
        return len(after) >= 2 and all(
            s.lag_s is not None and s.lag_s < RECOVERED_LAG_S for s in after[-2:]
        )

    def fault(self, kind: str) -> Fault:
        fault = Fault(kind, self.elapsed())
        self.echo(f"[{fault.at_s:6.0f}s] fault: {kind} ...")
        began = time.monotonic()
        try:
            getattr(self, f"_fault_{kind}")(fault)
        except Exception as exc:  # the soak goes on and reports it
            fault.detail += f" FAILED: {exc!s:.300}"
            self.problems.append(f"{fault.at_s:.0f}s: {kind} failed: {exc!s:.300}")
        fault.took_s = time.monotonic() - began
        self.echo(f"[{self.elapsed():6.0f}s] fault done: {fault.detail} ({fault.took_s:.1f}s)")
        return fault

    def start_worker(self, name: str) -> str:
        """Start a worker; "" once it is ready, or a note when it is up but not ready
        within the helper's 60 s (e.g. rebuilding): the soak goes on and reports it."""
        worker = self.workers[name]
        try:
            worker.start()
        except AssertionError:
            if worker.proc is None or worker.proc.poll() is not None:
                raise
            self.problems.append(f"{self.elapsed():.0f}s: worker {name} not ready within 60 s")
            return " (not ready within 60 s)"
        return ""

    def _stop_and_restart(
        self, fault: Fault, sig: signal.Signals, down_s: tuple[float, float], did: str
    ) -> None:
        """Stop worker a or b with ``sig``, start it again after a random ``down_s``."""
        name = self.rng.choice(["a", "b"])
        down = self.rng.uniform(*down_s)
        self.workers[name].stop(sig)
        time.sleep(down)
        ready = self.start_worker(name)
        fault.detail = f"worker {name} {did}, started again after {down:.1f}s{ready}"

    def _fault_sigkill(self, fault: Fault) -> None:
        self._stop_and_restart(fault, signal.SIGKILL, (1, 10), "SIGKILLed")

    def _fault_clickhouse_restart(self, fault: Fault) -> None:
        sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
        down = self.rng.uniform(3, 15)
        self.ch.stop(sig)
        time.sleep(down)
        self.ch.start()
        fault.detail = f"ClickHouse {sig.name}, started again after {down:.1f}s"

    def _stored_final(self) -> dict[str, int]:
        client = clickhouse(self.settings)
        try:
            return {
                t: int(client.execute(f"SELECT count() FROM {table} FINAL")[0][0])
                for t, table in RAW.items()
            }
        finally:
            client.disconnect()

    def drain(self, timeout_s: float) -> float:
        """Pause the producer; wait until every event is stored and every forwarded order
        counted. Seconds it took."""
        began = time.monotonic()
        self.producer.pause()
        want = {t: self.producer.produced[t] for t in STREAM_TOPICS}
        wait_until(self._stored_final, lambda got: got == want, timeout_s, f"stored = {want}")
        forwarded_orders_counted(self.settings, timeout_s)
        return time.monotonic() - began

    def _fault_broker_restart(self, fault: Fault) -> None:
        try:
            drained = self.drain(300)
        except AssertionError:
            self.producer.resume()  # not drained: no restart (it would lose the rest)
            raise
        self.letters.extend(read_dead_letters(self.settings))
        self.broker.stop()
        self.broker.start()
        self.create_topics()
        self.producer.resume(new_client=True)
        fault.detail = f"tansu restarted (drained first in {drained:.1f}s)"

    def _fault_rebalance(self, fault: Fault) -> None:
        if self.rng.random() < 0.5:
            self._stop_and_restart(fault, signal.SIGTERM, (2, 10), "SIGTERM")
        else:
            stay = self.rng.uniform(15, 30)
            ready = self.start_worker("c")
            time.sleep(stay)
            self.workers["c"].stop(signal.SIGTERM)
            fault.detail = f"worker c joined for {stay:.1f}s{ready}, then SIGTERM"

    def _fault_poison(self, fault: Fault) -> None:
        items = poison_messages(self.rng, self.cfg.seed, len(self.poison), int(time.time() * 1000))
        self.producer.inject([(t, k, v) for t, k, v, _ in items])
        for _, key, _, reason in items:
            self.poison[key] = reason
        fault.detail = f"{len(items)} poison messages: {dict(Counter(r for *_, r in items))}"

    # -- the run ------------------------------------------------------------------------

    def run(self) -> Result:
        began = time.monotonic()
        cfg = self.cfg
        self.echo(
            f"soak: seed {cfg.seed}, {cfg.minutes} min at {cfg.rate:,} events/s, a fault every "
            f"{cfg.fault_every_s:.0f}s; work dir {cfg.workdir}"
        )
        try:
            self.setup()
            self.echo(f"services and 2 workers up in {time.monotonic() - began:.1f}s")
            self.t0 = time.monotonic()
            self._sampling.set()
            sampler = threading.Thread(target=self._sampler, daemon=True, name="soak-sampler")
            sampler.start()
            self.producer.start()
            duration = cfg.minutes * 60
            next_at = cfg.first_fault_s if cfg.first_fault_s is not None else cfg.fault_every_s
            end_at = duration
            while True:
                now = self.elapsed()
                pending = cfg.max_faults is not None and len(self.faults) < cfg.max_faults
                # the stream goes on until the last fault is over (bounded): its recovery
                # is measured under load, not on a stream that has stopped
                if (
                    now >= end_at
                    and not pending
                    and (self.settled() or now >= end_at + SETTLE_WAIT_S)
                ):
                    break
                due = self.elapsed() >= next_at and len(self.faults) != cfg.max_faults
                if cfg.max_faults is None and self.elapsed() >= duration:
                    due = False  # the last fault overran the duration: no new one
                if due and (self.settled() or self.elapsed() - next_at > SETTLE_WAIT_S):
                    fault = self.fault(self.next_fault())
                    fault.delayed_s = fault.at_s - next_at
                    self.faults.append(fault)
                    next_at += cfg.fault_every_s
                    # under load after the last fault, then stop; with a number of faults
                    # to apply (CI), the stream goes on until they are applied
                    end_at = max(end_at, self.elapsed() + TAIL_S)
                    if cfg.max_faults is None and next_at >= duration:
                        next_at = float("inf")
                elif cfg.max_faults is not None and len(self.faults) < cfg.max_faults:
                    end_at = max(end_at, self.elapsed() + TAIL_S)
                time.sleep(0.2)
            self.producer.stop()
            stream_s = self.elapsed()
            self.echo(f"[{stream_s:6.0f}s] stream done; settling")
            return self.settle(began, stream_s)
        finally:
            self.teardown()

    def waiting(self, wait: Callable[[], object]) -> None:
        """Run a bounded wait; a timeout is noted and the run goes on to measure what is
        there (the result is then not exact, and the summary says what timed out)."""
        try:
            wait()
        except AssertionError as exc:
            self.problems.append(f"{self.elapsed():.0f}s: {exc!s:.300}")
            self.echo(f"[{self.elapsed():6.0f}s] {exc!s:.300}")

    def settle(self, began: float, stream_s: float) -> Result:
        produced = Counter({t: self.producer.produced[t] for t in STREAM_TOPICS})
        end_ms = (self.producer.last_ts // MIN_MS + 1) * MIN_MS
        want = {t: produced[t] for t in STREAM_TOPICS}
        self.waiting(
            lambda: wait_until(self._stored_final, lambda got: got == want, 600, f"stored {want}")
        )
        self.waiting(lambda: forwarded_orders_counted(self.settings, 300))
        closers = carts_and_orders(40, end_ms + (LATENESS_S + 120) * 1000, 10_000, tag="z")
        Producer(self.settings, [(t, k, v) for t, k, v, _ in closers], per_second=1e9)._run()
        for topic, *_ in closers:
            produced[topic] += 1
        want = {t: produced[t] for t in STREAM_TOPICS}
        self.waiting(
            lambda: wait_until(self._stored_final, lambda got: got == want, 120, "the closers")
        )
        truth = (self.producer.carts, self.producer.orders)
        got_c, got_o, diff = settle_rollups(self.settings, end_ms // 1000, *truth, timeout_s=120)
        self._sampling.clear()
        # the dead letters of the broker's last incarnation
        self.letters.extend(read_dead_letters(self.settings))
        client = clickhouse(self.settings)
        try:
            raw = {
                t: (
                    int(client.execute(f"SELECT count() FROM {table} FINAL")[0][0]),
                    int(client.execute(f"SELECT uniqExact(event_id) FROM {table}")[0][0]),
                    int(client.execute(f"SELECT count() FROM {table}")[0][0]),
                )
                for t, table in RAW.items()
            }
        finally:
            client.disconnect()
        late = 0.0
        alive = True
        tracebacks = 0
        from tests.integration.support import metric_value

        for name in ("a", "b"):
            worker = self.workers[name]
            alive = alive and worker.proc is not None and worker.proc.poll() is None
            if alive:
                late += metric_value(worker.metrics_text(), "salewatch_events_late_total")
        rebuild_s: list[float] = []
        evictions = 0
        for worker in self.workers.values():
            if worker.log_path.exists():
                text = worker.log_text()
                tracebacks += text.count("Traceback")
                rebuild_s += [float(x) for x in REBUILT.findall(text)]
                evictions += text.count("member_id was not recognized")
        seen: dict[bytes, list[str]] = {}
        unexpected = []
        for key, letter in self.letters:
            if key is not None and key in self.poison:
                seen.setdefault(key, []).append(str(letter["reason"]))
            else:
                unexpected.append({k: v for k, v in letter.items() if k != "original"})
        self.recovery()
        result = Result(
            seed=self.cfg.seed,
            config=f"{self.cfg.minutes} min at {self.cfg.rate}/s, fault every "
            f"{self.cfg.fault_every_s:.0f}s",
            produced=produced,
            delivery_failures=len(self.producer.failures),
            raw=raw,
            rollup_truth=truth,
            rollups=(got_c, got_o),
            rollup_diff=diff,
            poison=self.poison,
            dead_letters=seen,
            unexpected_dead_letters=unexpected,
            faults=self.faults,
            samples=self.samples,
            late=late,
            workers_alive=alive,
            wall_s=time.monotonic() - began,
            stream_s=stream_s,
            tracebacks=tracebacks,
            rebuild_s=rebuild_s,
            evictions=evictions,
            problems=self.problems,
        )
        result.summary = summary(result, self.producer.running_s)
        self.echo(result.summary)
        return result

    def recovery(self) -> None:
        """Each fault's lag peak and the time until the lag was back under
        ``RECOVERED_LAG_S`` (after the fault's action)."""
        for i, fault in enumerate(self.faults):
            until = self.faults[i + 1].at_s if i + 1 < len(self.faults) else float("inf")
            window = [s for s in self.samples if fault.at_s <= s.at_s < until]
            lags = [s.lag_s for s in window if s.lag_s is not None]
            fault.lag_peak_s = max(lags, default=0.0)
            done_at = fault.at_s + fault.took_s
            for s in window:
                if s.at_s >= done_at and s.lag_s is not None and s.lag_s < RECOVERED_LAG_S:
                    fault.recovered_s = s.at_s - fault.at_s
                    break


def summary(r: Result, running_s: float) -> str:
    total = sum(r.produced.values())
    lags = [s.lag_s for s in r.samples if s.lag_s is not None]
    rss: dict[str, list[int]] = {}
    for s in r.samples:
        for k, v in s.rss_mib.items():
            rss.setdefault(k, []).append(v)
    peaks = [s.produced for s in r.samples]
    lines = [
        "",
        f"== soak summary (seed {r.seed}; {r.config})",
        f"wall {r.wall_s:.0f}s, stream {r.stream_s:.0f}s; produced {total:,} valid events "
        f"{dict(r.produced)} at {total / max(running_s, 1e-9):,.0f}/s while producing "
        f"({peaks[-1] if peaks else 0:,} before the closers); delivery failures "
        f"{r.delivery_failures}",
        f"raw (FINAL, distinct, physical): {r.raw} -> {'EXACT' if r.raw_exact else 'NOT EXACT'}",
        f"rollups: {'EXACT' if r.rollups_exact else 'NOT EXACT'}\n{r.rollup_diff}",
        f"poison: {len(r.poison)} sent {dict(Counter(r.poison.values()))}; dead-lettered "
        f"{len(r.dead_letters)} with the expected reason: {r.poison_exact}; unexpected dead "
        f"letters {len(r.unexpected_dead_letters)} {r.unexpected_dead_letters[:3]}",
        f"lag (now - oldest newest-stored event per partition): median "
        f"{sorted(lags)[len(lags) // 2] if lags else 0:.1f}s, max {max(lags, default=0):.1f}s; "
        f"counted late {r.late:.0f}; workers alive {r.workers_alive}; tracebacks {r.tracebacks}",
        f"rebuilds at assignments: {len(r.rebuild_s)}, max {max(r.rebuild_s, default=0):.1f}s, "
        f"over 6 s (the group's rebalance timeout): {sum(1 for x in r.rebuild_s if x > 6)}; "
        f"workers dropped from the group: {r.evictions}",
        "worker RSS MiB (min-max): "
        + ", ".join(f"{k} {min(v)}-{max(v)}" for k, v in sorted(rss.items())),
        f"faults ({len(r.faults)}: {dict(Counter(f.kind for f in r.faults))}):",
        *(f"  {f.line()}" for f in r.faults),
        f"problems: {r.problems or 'none'}",
        f"RESULT: {'EXACT' if r.exact else 'NOT EXACT'}",
    ]
    return "\n".join(lines)


def run(cfg: Config, base: Settings | None = None) -> Result:
    return Soak(cfg, base or load_settings()).run()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=5000, help="valid events per second")
    parser.add_argument("--fault-every", type=float, default=180, help="seconds")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and service data")
    args = parser.parse_args(argv)
    from streams.stack.install import CLICKHOUSE, TANSU, ensure_installed
    from streams.stack.layout import StateLayout

    # a plain `kill` stops the run like Ctrl-C: the services and workers are stopped
    signal.signal(signal.SIGTERM, _interrupted)
    base = load_settings()
    ensure_installed((TANSU, CLICKHOUSE), StateLayout.from_settings(base), print)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    workdir = args.workdir or Path(f"/tmp/salewatch-soak-{seed}")
    cfg = Config(
        args.minutes,
        args.rate,
        args.fault_every,
        workdir,
        seed,
        echo=lambda s: print(s, flush=True),
    )
    result = run(cfg, base)
    return 0 if result.exact and result.workers_alive else 1


if __name__ == "__main__":
    sys.exit(main())
