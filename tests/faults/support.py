"""Event streams with a known ground truth, producing and reading back, for fault tests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import confluent_kafka
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from streams.events.contract import ORDERS_BY_SESSION_TOPIC
from streams.settings import Settings
from tests.integration.support import ch_scalar, wait_until
from tests.unit.events_factory import make_event

MIN_MS = 60_000
CHANNELS = ("app", "web", "mini_program", "h5")


def carts_and_orders(
    n: int, start_ms: int, span_ms: int, tag: str = ""
) -> list[tuple[str, bytes, bytes, dict[str, Any]]]:
    """``n`` valid events, half carts half orders, ts spread evenly over ``span_ms`` in order.

    Returns (topic, key, value, event) in event-time order."""
    out = []
    for i in range(n):
        ts = start_ms + i * span_ms // n
        channel = CHANNELS[i % len(CHANNELS)]
        if i % 2:
            event = make_event(
                "orders",
                event_id=f"{tag}o{i}",
                order_id=f"{tag}o{i}",
                session_id=f"{tag}s{i % 97}",
                user_id=f"u{i % 301}",
                ts=ts,
                channel=channel,
                amount=10.0 + i % 7,
            )
            out.append(("orders", event["order_id"].encode(), orjson.dumps(event), event))
        else:
            event = make_event(
                "carts",
                event_id=f"{tag}c{i}",
                session_id=f"{tag}s{i % 97}",
                user_id=f"u{i % 301}",
                ts=ts,
                channel=channel,
                event_type="add_to_cart" if i % 3 else "remove_from_cart",
            )
            out.append(("carts", event["session_id"].encode(), orjson.dumps(event), event))
    return out


class Producer:
    """Produces a list of (topic, key, value) at a pace; ``hold`` pauses it (worker down).

    kafka-python by default; ``fast``: librdkafka (confluent-kafka), for rates one Python
    thread of kafka-python cannot reach on this machine (~2,000-2,800 messages/s; librdkafka
    measured ~300,000), with the Java client's murmur2 partitioner like kafka-python's.
    """

    def __init__(
        self,
        settings: Settings,
        items: list[tuple[str, bytes, bytes]],
        per_second: float,
        chunk: int = 100,
        fast: bool = False,
    ) -> None:
        self.settings = settings
        self.items = items
        self.per_second = per_second
        self.chunk = chunk
        self.fast = fast
        self.sent = 0
        self.seconds = 0.0  # from the first send to the last delivery, once finished
        self.running = threading.Event()
        self.running.set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _client(
        self,
    ) -> tuple[Callable[[str, bytes, bytes], None], Callable[[], None], Callable[[], None]]:
        """``(send, flush, close)`` of the chosen client."""
        if self.fast:
            producer = confluent_kafka.Producer(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap,
                    "linger.ms": 5,
                    "partitioner": "murmur2_random",
                    "message.max.bytes": 20 * 1024 * 1024,
                }
            )

            def send_fast(topic: str, key: bytes, value: bytes) -> None:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key)
                        return
                    except BufferError:  # the local queue is full: let it drain
                        producer.poll(0.01)

            def flush_fast() -> None:
                assert producer.flush(30) == 0, "messages not delivered"

            return send_fast, flush_fast, flush_fast
        client = KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            linger_ms=5,
            max_request_size=20 * 1024 * 1024,
        )

        def send(topic: str, key: bytes, value: bytes) -> None:
            client.send(topic, key=key, value=value)

        return send, lambda: client.flush(30), client.close

    def _run(self) -> None:
        send, flush, close = self._client()
        started = time.monotonic()
        paused = 0.0  # the pace resumes where it stopped: no burst to catch up after a hold
        for i in range(0, len(self.items), self.chunk):
            if not self.running.is_set():
                held = time.monotonic()
                self.running.wait()
                paused += time.monotonic() - held
            for topic, key, value in self.items[i : i + self.chunk]:
                send(self.settings.kafka_topic(topic), key, value)
            flush()
            self.sent = min(i + self.chunk, len(self.items))
            due = started + paused + self.sent / self.per_second
            time.sleep(max(0.0, due - time.monotonic()))
        flush()
        self.seconds = time.monotonic() - started
        close()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "producer did not finish"


def produce_all(settings: Settings, items: list[tuple[str, bytes, bytes]]) -> None:
    producer = Producer(settings, items, per_second=1e9, chunk=1000)
    producer._run()


def raw_counts(settings: Settings) -> dict[str, tuple[int, int, int]]:
    """Per raw table: (rows FINAL, distinct event ids, physical rows)."""
    out = {}
    for table in ("carts_raw", "orders_raw"):
        out[table] = (
            ch_scalar(settings, f"SELECT count() FROM {table} FINAL"),
            ch_scalar(settings, f"SELECT uniqExact(event_id) FROM {table}"),
            ch_scalar(settings, f"SELECT count() FROM {table}"),
        )
    return out


def log_ends(settings: Settings, topic: str, idle_s: float = 2.0) -> dict[int, int]:
    """``{partition: offset after its last record}`` of ``topic``, by reading it to the end
    (tansu's ``ListOffsets`` is wrong when a batch holds several records: STACK.md)."""
    name = settings.kafka_topic(topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = {tp.partition: 0 for tp in partitions}
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            polled = consumer.poll(timeout_ms=200, max_records=10_000)
            for tp, records in polled.items():
                ends[tp.partition] = records[-1].offset + 1
            if polled:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return ends


def forwarded_orders_counted(settings: Settings, timeout_s: float = 60) -> None:
    """Wait until the group committed ``orders_by_session`` to its end: every order the
    orders-topic owners forwarded (all of them, once the orders are stored raw: the
    forward comes first) is counted by its session's owner. Not a time guess: a hop that
    takes longer under load is waited for, and one that never completes fails here."""
    ends = log_ends(settings, ORDERS_BY_SESSION_TOPIC)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    name = settings.kafka_topic(ORDERS_BY_SESSION_TOPIC)
    try:

        def behind() -> dict[int, int]:
            """``{partition: records not committed yet}``."""
            partitions = [TopicPartition(name, p) for p in ends]
            committed = admin.list_group_offsets({settings.app_id: partitions})[settings.app_id]
            left = {}
            for partition, end in ends.items():
                meta = committed.get(TopicPartition(name, partition))
                done = meta.offset if meta is not None else 0
                if end > done:
                    left[partition] = end - done
            return left

        wait_until(behind, lambda left: not left, timeout_s, "orders_by_session consumed")
    finally:
        admin.close()


def stored_total(settings: Settings) -> int:
    return sum(v[0] for v in raw_counts(settings).values())


def truth_cart_rollup(
    events: list[dict[str, Any]], before_ms: int
) -> Counter[tuple[int, str, str]]:
    out: Counter[tuple[int, str, str]] = Counter()
    for e in events:
        if "quantity" in e and "order_id" not in e and e["ts"] < before_ms:
            out[(e["ts"] // MIN_MS * 60, e["channel"], e["event_type"])] += 1
    return out


def truth_order_rollup(
    events: list[dict[str, Any]], before_ms: int
) -> Counter[tuple[int, str, str]]:
    out: Counter[tuple[int, str, str]] = Counter()
    for e in events:
        if "amount" in e and e["ts"] < before_ms:
            out[(e["ts"] // MIN_MS * 60, e["channel"], e["event_type"])] += 1
    return out


def stored_rollup(
    settings: Settings, table: str, value: str, before_s: int
) -> Counter[tuple[int, str, str]]:
    from tests.integration.support import clickhouse

    client = clickhouse(settings)
    try:
        rows = client.execute(
            f"SELECT toUnixTimestamp(window_start), channel, event_type, sum({value}) "
            f"FROM {table} FINAL WHERE toUnixTimestamp(window_start) < {before_s} "
            "GROUP BY window_start, channel, event_type"
        )
    finally:
        client.disconnect()
    return Counter({(int(w), c, t): int(n) for w, c, t, n in rows if n})


def settle_rollups(
    settings: Settings, end_s: int, want_c: Counter, want_o: Counter, timeout_s: float = 45
) -> tuple[Counter, Counter, str]:
    """Stored cart/order rollups once they equal the truth (or at the timeout) and a text
    describing the windows that differ."""
    deadline = time.monotonic() + timeout_s
    while True:
        got_c = stored_rollup(settings, "cart_events_1m", "events", end_s)
        got_o = stored_rollup(settings, "orders_1m", "orders", end_s)
        if (got_c, got_o) == (want_c, want_o) or time.monotonic() > deadline:
            break
        time.sleep(1)
    lines = []
    for name, want, got in (("carts", want_c, got_c), ("orders", want_o, got_o)):
        diff = {
            k: (want.get(k, 0), got.get(k, 0))
            for k in set(want) | set(got)
            if want.get(k, 0) != got.get(k, 0)
        }
        lines.append(
            f"{name}: truth {sum(want.values())}, stored {sum(got.values())}, "
            f"{len(diff)} windows differ (truth, stored): {sorted(diff.items())[:8]}"
        )
    return got_c, got_o, "\n".join(lines)


def close_and_settle(
    settings: Settings,
    closers: list[tuple[str, bytes, bytes, dict[str, Any]]],
    events: list[dict[str, Any]],
    end_ms: int,
    n_orders: int,
    n_carts: int,
) -> tuple[dict[str, tuple[int, int, int]], tuple[Counter, Counter], tuple[Counter, Counter], str]:
    """After a stream ending at ``end_ms`` is stored: produce ``closers`` (later events that
    move the event clock past every window of the stream), wait until every event is
    stored, then until the cart/order rollups equal the truth of ``events`` (or time out).

    Returns the raw counts, the stored and the true rollups, and the differing windows.
    """
    forwarded_orders_counted(settings)
    Producer(settings, [(t, k, v) for t, k, v, _ in closers], per_second=1e9)._run()
    counts = wait_until(
        lambda: raw_counts(settings),
        lambda c: c["orders_raw"][0] >= n_orders and c["carts_raw"][0] >= n_carts,
        60,
        "every event stored",
    )
    want = (truth_cart_rollup(events, end_ms), truth_order_rollup(events, end_ms))
    got_c, got_o, diff = settle_rollups(settings, end_ms // 1000, *want)
    return counts, (got_c, got_o), want, diff
