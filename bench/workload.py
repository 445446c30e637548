"""A seeded, fast generator of mixed EVENTS.md traffic, as ready Kafka messages.

The simulator (``streams.simulation``) is realistic but makes ~18k events/s; the benchmark
needs 10M events and a load generator at 50,000 events/s on the same 2-core machine, so this
module writes the same event shapes from byte templates (~3 µs an event).

Model: ``concurrent_sessions`` shoppers are active at once; each event picks one of them at
random and advances its session: page views and clicks, cart adds and removes, an order
after a cart add, its payment (85 % succeed), now and then a ticket about a paid order.
A session ends after 1–15 events (mean ~8) and its slot goes to a new session of the
next user of the population: users are visited in a fixed cycle through all of
``users``, so 10M events touch ~1M distinct users. Clicks and carts are keyed by session,
orders by order, tickets by ticket (EVENTS.md), partitioned by Kafka's default murmur2
partitioner so that a worker's re-keyed ``orders_by_session`` meet their sessions.

Shares of a long run: ~85 % clicks, ~9 % carts, ~5 % orders, <1 % tickets; with
``invalid_share`` that fraction of messages is invalid (malformed JSON, missing field)
and ends on ``dead_letters``. ``max_array > 1`` sends each session's clicks as JSON arrays
of up to that many events (the SDK form of EVENTS.md).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from streams.events.contract import Topic
from streams.kafka.partitioner import kafka_partition_for

CHANNELS = ("app", "app", "app", "web", "mini_program", "mini_program", "h5")
REGIONS = ("CN-BJ", "CN-SH", "CN-GD", "CN-GD", "CN-ZJ", "CN-JS", "CN-SC", "CN-HB", "CN-SD")
SOURCES = ("direct", "direct", "search", "ads", "social", "affiliate")
LIST_PAGES = ("home", "search", "list", "cart", "checkout")
CATEGORIES = ("apparel/shoes", "apparel/tops", "electronics/phones", "beauty", "home/kitchen")
METHODS = ("alipay", "alipay", "wechat_pay", "wechat_pay", "card", "union_pay")
FAILURES = ("insufficient_funds", "card_declined", "timeout", "risk_control")
KINDS = ("return", "refund", "exchange", "complaint", "inquiry")
REASONS = ("quality", "damaged", "wrong_item", "size", "late_delivery")
CATALOG_ITEMS = 5000


class Message(NamedTuple):
    """One Kafka message: ``events`` is how many events its value carries."""

    topic: Topic
    partition: int
    key: bytes
    value: bytes
    events: int


@dataclass(frozen=True)
class WorkloadConfig:
    users: int = 1_000_000
    concurrent_sessions: int = 20_000
    partitions: int = 4
    max_array: int = 1
    tickets: bool = True
    invalid_share: float = 0.0
    seed: int = 8
    # appended to every event id: the load generator cycles a pre-generated pool and
    # rewrites this fixed-width tag per cycle so that ids stay unique
    event_id_suffix: bytes = b""


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partition of ``key`` (murmur2, as aiokafka and the Java client)."""
    return kafka_partition_for(key.decode(), partitions)


_VIEW = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"page_view","ts":%d,'
    b'"user_id":"%s","session_id":"%s","channel":"%s","region":"%s","page_type":"%s",'
    b'"item_id":"%s","category":"%s","traffic_source":"%s","load_ms":%d}'
)
_CLICK = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"click","ts":%d,'
    b'"user_id":"%s","session_id":"%s","channel":"%s","region":"%s","page_type":"%s",'
    b'"item_id":"%s","category":"%s","traffic_source":"%s"}'
)
_CART = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"%s","ts":%d,'
    b'"user_id":"%s","session_id":"%s","channel":"%s","region":"%s",'
    b'"item_id":"%s","category":"%s","quantity":%d,"price":%.2f}'
)
_ORDER_CREATED = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"order_created","ts":%d,'
    b'"user_id":"%s","session_id":"%s","channel":"%s","region":"%s","order_id":"%s",'
    b'"amount":%.2f,"currency":"CNY","payment_method":"%s",'
    b'"items":[{"item_id":"%s","category":"%s","quantity":%d,"price":%.2f}]%s}'
)
_PAYMENT = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"%s","ts":%d,'
    b'"user_id":"%s","session_id":"%s","channel":"%s","region":"%s","order_id":"%s",'
    b'"amount":%.2f,"currency":"CNY","payment_method":"%s"%s}'
)
_TICKET = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"ticket_opened","ts":%d,'
    b'"user_id":"%s","session_id":"%s","channel":"%s","region":"%s","ticket_id":"%s",'
    b'"order_id":"%s","kind":"%s","reason":"%s"}'
)
_INVALID = (
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"page_view","ts":%d',  # cut off
    b'{"schema_version":1,"event_id":"%s-%d%s","event_type":"page_view","ts":%d}',  # no user
)


class _Session:
    __slots__ = (
        "buffer",
        "carted",
        "channel",
        "left",
        "order",
        "paid",
        "partition",
        "region",
        "seq",
        "sid",
        "source",
        "user",
    )

    def __init__(self, sid: bytes, user: bytes, rng: random.Random, partitions: int) -> None:
        self.sid = sid
        self.user = user
        self.channel = rng.choice(CHANNELS).encode()
        self.region = rng.choice(REGIONS).encode()
        self.source = rng.choice(SOURCES).encode()
        self.left = rng.randint(1, 15)
        self.seq = 0
        self.carted: tuple[bytes, bytes, int, float] | None = None
        self.order: tuple[bytes, float, bytes, int] | None = None  # id, amount, method, part
        self.paid: bytes | None = None
        self.partition = partition_of(sid, partitions)
        self.buffer: list[bytes] = []


class Workload:
    """Endless seeded traffic; :meth:`next_messages` returns the messages of one event.

    The caller gives each event its time (``ts`` epoch ms): pre-production spreads events
    over event time, the load generator stamps them with the wall clock.
    """

    def __init__(self, config: WorkloadConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.prefix = b"b%x" % config.seed
        rng = self.rng
        self.items = [
            (
                b"i%05d" % i,
                rng.choice(CATEGORIES).encode(),
                round(rng.uniform(5, 500), 2),
            )
            for i in range(CATALOG_ITEMS)
        ]
        self.sessions_started = 0
        self.orders = 0
        self.events = 0
        # a stride coprime with users visits every user once per cycle
        self._user_stride = _coprime_stride(config.users)
        self._slots = [self._new_session() for _ in range(config.concurrent_sessions)]

    def _new_session(self) -> _Session:
        n = self.sessions_started
        self.sessions_started += 1
        user = b"u%07d" % ((n * self._user_stride) % self.config.users)
        return _Session(b"%s-s%d" % (self.prefix, n), user, self.rng, self.config.partitions)

    def next_messages(self, ts: int) -> list[Message]:
        """The message(s) of the next event at time ``ts``: usually one, none while an
        array is being filled, two when a session ends and flushes its array."""
        rng = self.rng
        cfg = self.config
        index = int(rng.random() * cfg.concurrent_sessions)
        s = self._slots[index]
        s.seq += 1
        s.left -= 1
        self.events += 1
        out: list[Message] = []
        if cfg.invalid_share and rng.random() < cfg.invalid_share:
            value = rng.choice(_INVALID) % (s.sid, s.seq, cfg.event_id_suffix, ts)
            out.append(Message("clicks", s.partition, s.sid, value, 1))
        else:
            self._event(s, ts, rng, out)
        if s.left <= 0:
            if s.buffer:
                out.append(self._array(s))
            self._slots[index] = self._new_session()
        return out

    def flush(self) -> list[Message]:
        """Arrays still being filled, as messages (end of a run)."""
        return [self._array(s) for s in self._slots if s.buffer]

    def _array(self, s: _Session) -> Message:
        value = b"[" + b",".join(s.buffer) + b"]"
        n = len(s.buffer)
        s.buffer = []
        return Message("clicks", s.partition, s.sid, value, n)

    def _click(self, s: _Session, value: bytes, out: list[Message]) -> None:
        if self.config.max_array <= 1:
            out.append(Message("clicks", s.partition, s.sid, value, 1))
            return
        s.buffer.append(value)
        if len(s.buffer) >= self.config.max_array:
            out.append(self._array(s))

    def _event(self, s: _Session, ts: int, rng: random.Random, out: list[Message]) -> None:
        r = rng.random()
        if s.order is not None:
            self._payment(s, ts, rng, out)
            return
        if s.paid is not None and self.config.tickets and r < 0.03:
            self._ticket(s, ts, rng, out)
            return
        item, category, price = self.items[int(rng.random() * CATALOG_ITEMS)]
        if r < 0.60:
            page = b"detail" if r < 0.3 else rng.choice(LIST_PAGES).encode()
            load_ms = int(rng.expovariate(1 / 1800))
            value = _VIEW % (
                s.sid,
                s.seq,
                self.config.event_id_suffix,
                ts,
                s.user,
                s.sid,
                s.channel,
                s.region,
                page,
                item,
                category,
                s.source,
                min(load_ms, 600_000),
            )
            self._click(s, value, out)
        elif r < 0.87:
            value = _CLICK % (
                s.sid,
                s.seq,
                self.config.event_id_suffix,
                ts,
                s.user,
                s.sid,
                s.channel,
                s.region,
                b"detail",
                item,
                category,
                s.source,
            )
            self._click(s, value, out)
        elif r < 0.95 or s.carted is None:
            kind = b"add_to_cart" if r < 0.93 or s.carted is None else b"remove_from_cart"
            quantity = 1 + int(rng.random() * 3)
            value = _CART % (
                s.sid,
                s.seq,
                self.config.event_id_suffix,
                kind,
                ts,
                s.user,
                s.sid,
                s.channel,
                s.region,
                item,
                category,
                quantity,
                price,
            )
            s.carted = (item, category, quantity, price)
            out.append(Message("carts", s.partition, s.sid, value, 1))
        else:
            self._order_created(s, ts, rng, out, s.carted)

    def _order_created(
        self,
        s: _Session,
        ts: int,
        rng: random.Random,
        out: list[Message],
        carted: tuple[bytes, bytes, int, float],
    ) -> None:
        item, category, quantity, price = carted
        self.orders += 1
        order_id = b"%s-o%d" % (self.prefix, self.orders)
        amount = round(quantity * price * 0.9, 2)
        method = rng.choice(METHODS).encode()
        coupon = b',"coupon_code":"SALE11"' if rng.random() < 0.3 else b""
        value = _ORDER_CREATED % (
            s.sid,
            s.seq,
            self.config.event_id_suffix,
            ts,
            s.user,
            s.sid,
            s.channel,
            s.region,
            order_id,
            amount,
            method,
            item,
            category,
            quantity,
            price,
            coupon,
        )
        part = partition_of(order_id, self.config.partitions)
        s.order = (order_id, amount, method, part)
        s.carted = None
        s.left = max(s.left, 1)  # the payment follows in this session
        out.append(Message("orders", part, order_id, value, 1))

    def _payment(self, s: _Session, ts: int, rng: random.Random, out: list[Message]) -> None:
        assert s.order is not None
        order_id, amount, method, part = s.order
        if rng.random() < 0.85:
            kind, extra = b"payment_succeeded", b""
            s.paid = order_id
        else:
            kind = b"payment_failed"
            extra = b',"failure_reason":"%s"' % rng.choice(FAILURES).encode()
        value = _PAYMENT % (
            s.sid,
            s.seq,
            self.config.event_id_suffix,
            kind,
            ts,
            s.user,
            s.sid,
            s.channel,
            s.region,
            order_id,
            amount,
            method,
            extra,
        )
        s.order = None
        out.append(Message("orders", part, order_id, value, 1))

    def _ticket(self, s: _Session, ts: int, rng: random.Random, out: list[Message]) -> None:
        assert s.paid is not None
        ticket_id = b"%s-t%d" % (s.sid, s.seq)
        value = _TICKET % (
            s.sid,
            s.seq,
            self.config.event_id_suffix,
            ts,
            s.user,
            s.sid,
            s.channel,
            s.region,
            ticket_id,
            s.paid,
            rng.choice(KINDS).encode(),
            rng.choice(REASONS).encode(),
        )
        s.paid = None
        part = partition_of(ticket_id, self.config.partitions)
        out.append(Message("tickets", part, ticket_id, value, 1))


def _coprime_stride(n: int) -> int:
    from math import gcd

    stride = max(1, int(n * 0.6180339887)) | 1
    while gcd(stride, n) != 1:
        stride += 2
    return stride


def pre_produced(
    config: WorkloadConfig, events: int, start_ms: int, rate: float
) -> Iterator[Message]:
    """``events`` events spread over event time from ``start_ms`` at ``rate`` events/s."""
    workload = Workload(config)
    step = 1000.0 / rate
    for i in range(events):
        yield from workload.next_messages(start_ms + int(i * step))
    yield from workload.flush()
