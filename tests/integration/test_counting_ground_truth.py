"""Issue 4 on the real stack: a generated 10-minute sale against a ground truth computed here.

The stream (all four topics) has page views with and without load times, clicks, carts,
orders created / paid / failed / cancelled / refunded with items and coupons, tickets,
several channels, traffic sources and regions including unknown ones (``other``), events
delivered twice, events far too late, and a few invalid messages. :func:`ground_truth`
counts it by brute force from EVENTS.md's definitions — not with ``streams.counting`` — as
the contribution of each message to each Prometheus sample and the rows of every rollup.

A real worker (event-time window clock, so the recent-past stream closes its own windows;
2-minute lateness) counts it; then every number must match: the worker's ``/metrics``, the
stack's Prometheus (it scrapes port 9109), every per-minute rollup row (``FINAL``, summed
over workers), the raw tables, a recomputation of the rollups from the raw tables in SQL,
and distinct users per minute. The second test SIGKILLs the worker mid-stream and starts it
again: ClickHouse must still match exactly (``streams.worker.recovery`` rebuilds the state); the
restarted worker must count exactly the messages after what ClickHouse held; Prometheus
totals (last sample of each process) may differ from the ground truth only by the
contributions of the messages produced around the kill (see :func:`kill_zone`).

Pacing: 10 minutes of event time are produced in ~30 s (``SPEED``). A session's events on
different topics are >= 60 s of event time (3 s of wall time) apart, so the worker's reader
sees them in event order, as a live shop's would be; STACK.md: joins take ~3 s.
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.partitioner import kafka_partition_for
from streams.settings import Settings
from tests.integration.support import (
    WorkerProcess,
    clickhouse,
    prometheus_query,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

MIN = 60_000
SPEED = 20  # event-time seconds per wall-clock second
SLICE_MS = 10_000  # event time produced at once, every SLICE_MS / SPEED of wall time
LATENESS_S = 120
LATE_BY_MS = 5 * MIN  # a late event is produced this long after its event time

# EVENTS.md closed sets (anything else counts as "other"); regions are configured below
CHANNELS = ("app", "web", "mini_program", "h5")
PAGE_TYPES = ("home", "search", "list", "detail", "cart", "checkout", "pay_result")
SOURCES = ("direct", "search", "ads", "social", "email", "affiliate")
METHODS = ("alipay", "wechat_pay", "card", "union_pay", "cod")
FAILURE_REASONS = (
    "insufficient_funds",
    "card_declined",
    "timeout",
    "risk_control",
    "bank_error",
    "user_cancelled",
)
KINDS = ("return", "refund", "exchange", "complaint", "inquiry")
REASONS = ("quality", "damaged", "wrong_item", "size", "late_delivery", "not_as_described")
CATEGORIES = ("apparel", "electronics", "beauty", "home", "food", "baby", "sports", "books")
REGIONS = ("CN-GD", "CN-BJ", "CN-SH", "CN-ZJ")
STEPS = ("visit", "detail", "cart", "checkout", "paid")
LOAD_BOUNDS_MS = (500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000, 20000)
OTHER = "other"


def closed(value: Any, allowed: Iterable[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


def top_category(category: str) -> str:
    return closed(category.split("/")[0], CATEGORIES)


# ------------------------------------------------------------------ the stream


@dataclass
class Msg:
    """One Kafka message: ``event`` is None for an invalid one (``reason`` says why)."""

    topic: str
    key: bytes
    value: bytes
    produce_at: int  # event time at which the producer sends it
    event: dict[str, Any] | None = None
    late: bool = False
    reason: str = ""
    # filled in by the producer
    partition: int = -1
    offset: int = -1
    sent_wall: float = 0.0


KEY_FIELD = {"clicks": "session_id", "carts": "session_id", "orders": "order_id"}
PARTITIONS = 4  # the topics' (settings.topic_partitions); the producer's murmur2 picks one


def event_msg(topic: str, event: dict[str, Any], produce_at: int | None = None) -> Msg:
    key = event[KEY_FIELD.get(topic, "ticket_id")].encode()
    at = event["ts"] if produce_at is None else produce_at
    return Msg(topic, key, orjson.dumps(event), at, event)


def generate(t0: int, seed: int = 7, sessions: int = 600) -> list[Msg]:
    """About 3,500 messages over [t0, t0 + 10 min), in the order they are produced."""
    import random

    rng = random.Random(seed)
    msgs: list[Msg] = []
    serial = 0

    def ev(topic: str, ts: int, base: dict[str, Any], **fields: Any) -> dict[str, Any]:
        nonlocal serial
        serial += 1
        event = {"schema_version": 1, "event_id": f"{seed}-{serial}", "ts": ts, **base}
        event.update({k: v for k, v in fields.items() if v is not None})
        msgs.append(event_msg(topic, event))
        return event

    channels = [*CHANNELS, "smart_tv"]
    regions = [*REGIONS, "XX-99"]
    categories = ["apparel/shoes", "electronics/phones", "beauty", "food/snacks", "toys/lego"]
    for s in range(sessions):
        s0 = t0 + rng.randrange(0, 330_000)
        base = {
            "user_id": f"u-{rng.randrange(260)}",
            "session_id": f"s-{seed}-{s}",
            "channel": rng.choice(channels),
            "region": rng.choice(regions),
        }
        t = s0
        for view in range(rng.randint(1, 4)):  # clicks: [s0, s0 + 20 s]
            page = "home" if view == 0 else rng.choice(["list", "detail", "detail", "wormhole"])
            load = rng.choice([None, rng.randrange(200, 25_000), rng.randrange(300, 3_000)])
            source = rng.choice([*SOURCES, "carrier_pigeon", None])
            ev(
                "clicks",
                t,
                base,
                event_type="page_view",
                page_type=page,
                traffic_source=source,
                load_ms=load,
                item_id="i-1" if page == "detail" else None,
            )
            if rng.random() < 0.4:
                ev("clicks", t + 700, base, event_type="click", page_type=page)
            t += rng.randrange(1_000, 5_000)
        if rng.random() < 0.45:
            continue
        t = s0 + 90_000 + rng.randrange(5_000)  # carts: >= 70 s after the last click
        price = rng.randrange(500, 50_000)
        ev(
            "carts",
            t,
            base,
            event_type="add_to_cart",
            item_id="i-1",
            category=rng.choice(categories),
            quantity=1,
            price=price / 100,
        )
        if rng.random() < 0.25:
            ev(
                "carts",
                t + 3_000,
                base,
                event_type="remove_from_cart",
                item_id="i-1",
                category="beauty",
                quantity=1,
                price=price / 100,
            )
            continue
        if rng.random() < 0.3:
            continue
        t = s0 + 170_000 + rng.randrange(5_000)  # orders: >= 70 s after the carts
        order = {
            "order_id": f"o-{seed}-{s}",
            "currency": "CNY",
            "payment_method": rng.choice([*METHODS, "barter"]),
        }
        cents = rng.randrange(100, 90_000)
        item = {"item_id": "i-1", "category": rng.choice(categories), "quantity": 1, "price": 1.0}
        coupon = rng.choice(["SALE10", "", None, None])
        ev(
            "orders",
            t,
            base,
            event_type="order_created",
            amount=cents / 100,
            items=[item],
            coupon_code=coupon,
            **order,
        )
        outcome = rng.random()
        if outcome < 0.25:
            reason = rng.choice([*FAILURE_REASONS, "solar_flare", None])
            ev(
                "orders",
                t + 8_000,
                base,
                event_type="payment_failed",
                amount=cents / 100,
                failure_reason=reason,
                **order,
            )
            if rng.random() < 0.5:
                ev(
                    "orders",
                    t + 15_000,
                    base,
                    event_type="order_cancelled",
                    amount=cents / 100,
                    **order,
                )
                continue
            outcome = 0.0
        if outcome < 0.8:
            ev(
                "orders",
                t + 20_000,
                base,
                event_type="payment_succeeded",
                amount=cents / 100,
                **order,
            )
            if rng.random() < 0.25:
                ev(
                    "orders",
                    t + 40_000,
                    base,
                    event_type="order_refunded",
                    amount=cents / 100,
                    **order,
                )
                ticket = {"ticket_id": f"t-{seed}-{s}", "order_id": order["order_id"]}
                kind = rng.choice([*KINDS, "teleport"])
                cause = rng.choice([*REASONS, "gremlins"])
                ev(
                    "tickets",
                    t + 45_000,
                    base,
                    event_type="ticket_opened",
                    kind=kind,
                    reason=cause,
                    **ticket,
                )
                ev(
                    "tickets",
                    t + 70_000,
                    base,
                    event_type="ticket_resolved",
                    kind=kind,
                    reason=cause,
                    **ticket,
                )
        else:
            ev(
                "orders",
                t + 30_000,
                base,
                event_type="order_cancelled",
                amount=cents / 100,
                **order,
            )
    for i in range(30):  # inquiries without an order
        base = {
            "user_id": f"u-{i}",
            "session_id": f"support-{i}",
            "channel": "web",
            "region": "CN-BJ",
        }
        ev(
            "tickets",
            t0 + rng.randrange(590_000),
            base,
            event_type="ticket_opened",
            ticket_id=f"q-{seed}-{i}",
            kind="inquiry",
            reason=rng.choice(REASONS),
        )

    msgs.sort(key=lambda m: m.produce_at)
    # duplicates: the same event sent again right after it (same key, so same partition)
    copies: list[Msg] = []
    for m in msgs:
        copies.append(m)
        if rng.random() < 0.03:
            copies.append(event_msg(m.topic, dict(m.event or {})))
    # late: produced LATE_BY_MS after their event time; own sessions, nothing else touched
    for i in range(12):
        produce_at = t0 + 6 * MIN + i * 15_000
        base = {
            "user_id": f"late-{i}",
            "session_id": f"late-{seed}-{i}",
            "channel": "app",
            "region": "CN-GD",
        }
        topic = "clicks" if i % 3 else "tickets"
        fields = (
            {"event_type": "page_view", "page_type": "home", "load_ms": 900}
            if topic == "clicks"
            else {
                "event_type": "ticket_opened",
                "ticket_id": f"lt-{i}",
                "kind": "refund",
                "reason": "damaged",
            }
        )
        event = {
            "schema_version": 1,
            "event_id": f"late-{seed}-{i}",
            "ts": produce_at - LATE_BY_MS,
            **base,
            **fields,
        }
        late = event_msg(topic, event, produce_at)
        late.late = True
        copies.append(late)
    # invalid messages early on: dead letters, never stored
    for i, topic in enumerate(["clicks", "carts", "orders", "tickets"] * 2):
        value, reason = [
            (b'{"event_id": "x", "ts": 17', "malformed_json"),
            (orjson.dumps({"schema_version": 1, "event_type": "page_view"}), "missing_field"),
        ][i // 4]
        copies.append(Msg(topic, b"bad", value, t0 + 5_000 + i * 1_000, reason=reason))
    copies.sort(key=lambda m: m.produce_at)  # stable: a copy stays right after its original
    return copies


def sentinel(t_end: int) -> Msg:
    """A ticket far enough ahead to close every window of the stream (event-time clock)."""
    event = {
        "schema_version": 1,
        "event_id": "sentinel",
        "ts": t_end + LATENESS_S * 1000,
        "user_id": "ops",
        "session_id": "ops",
        "channel": "web",
        "region": "CN-BJ",
        "event_type": "ticket_opened",
        "ticket_id": "sentinel",
        "kind": "inquiry",
        "reason": "quality",
    }
    return event_msg("tickets", event)


# ------------------------------------------------------------------ ground truth (brute force)

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels]
Amounts = defaultdict[Sample, float]  # value of each Prometheus sample


def amounts() -> Amounts:
    return defaultdict(float)


def sample(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


@dataclass
class Truth:
    """Per message, its contribution to each Prometheus sample; rollup rows of all of it.

    ``rollups[table][(window_start_s, *dims)]`` = measures (amounts in cents, the page-load
    buckets as a tuple); ``users[(window_start_s, channel, source)]`` the distinct users of
    counted page views; ``raw_users`` the same over every stored page view (late ones too).
    """

    contributions: list[Amounts]
    rollups: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]
    users: dict[tuple[int, str, str], set[str]]
    raw_users: dict[tuple[int, str, str], set[str]]
    late_ids: set[str]

    def totals(self, which: Iterable[int] | None = None) -> Amounts:
        out = amounts()
        for i in range(len(self.contributions)) if which is None else which:
            for key, value in self.contributions[i].items():
                out[key] += value
        return out


def ground_truth(msgs: list[Msg]) -> Truth:
    """EVENTS.md, counted one event at a time in event-time order (ties: production order)."""
    contributions = [amounts() for _ in msgs]
    rows: dict[str, dict[tuple[Any, ...], list[Any]]] = defaultdict(dict)
    users: dict[tuple[int, str, str], set[str]] = defaultdict(set)
    # traffic_1m rows are per partition: {(window, channel, source): {partition: users}}
    partition_users: dict[tuple[Any, ...], dict[int, set[str]]] = defaultdict(
        lambda: defaultdict(set)
    )
    raw_users: dict[tuple[int, str, str], set[str]] = defaultdict(set)
    seen: set[str] = set()
    sessions: dict[str, tuple[int, str]] = {}  # session_id -> (step reached, channel)
    order_category: dict[str, str] = {}
    paying: dict[tuple[str, str], bool] = {}  # (order_id, method) -> failed once
    late_ids: set[str] = set()

    def add(table: str, key: tuple[Any, ...], *measures: Any) -> None:
        row = rows[table].setdefault(key, [() if isinstance(m, tuple) else 0 for m in measures])
        for i, m in enumerate(measures):
            if isinstance(m, tuple):  # a histogram: add bucket by bucket
                row[i] = tuple(a + b for a, b in zip(row[i] or (0,) * len(m), m, strict=True))
            else:
                row[i] += m

    order = sorted(range(len(msgs)), key=lambda i: (msgs[i].event or {}).get("ts", 0))
    for i in sorted(range(len(msgs)), key=lambda i: (msgs[i].produce_at, i)):
        c, m = contributions[i], msgs[i]
        c[sample("salewatch_events_received_total", topic=m.topic)] += 1
        if m.event is None:
            c[sample("salewatch_events_invalid_total", topic=m.topic, reason=m.reason)] += 1
            c[sample("salewatch_dead_letters_total", topic=m.topic)] += 1
        else:
            c[
                sample(
                    "salewatch_events_valid_total", topic=m.topic, event_type=m.event["event_type"]
                )
            ] += 1
    for i in order:
        m, c, e = msgs[i], contributions[i], msgs[i].event
        if e is None:
            continue
        topic, ts = m.topic, e["ts"]
        w = ts // MIN * 60
        if topic == "clicks" and e["event_type"] == "page_view":
            dims = (closed(e["channel"], CHANNELS), closed(e.get("traffic_source"), SOURCES))
            raw_users[(w, *dims)].add(e["user_id"])
        if e["event_id"] in seen:
            c[sample("salewatch_events_duplicate_total", topic=topic)] += 1
            continue
        seen.add(e["event_id"])
        if m.late:
            c[sample("salewatch_events_late_total", topic=topic)] += 1
            late_ids.add(e["event_id"])
            continue
        channel = closed(e["channel"], CHANNELS)
        step, source = 0, OTHER
        if topic == "clicks":
            source = closed(e.get("traffic_source"), SOURCES)
            if e["event_type"] == "page_view":
                page = closed(e["page_type"], PAGE_TYPES)
                step = 2 if page == "detail" else 1
                c[
                    sample(
                        "salewatch_page_views_total",
                        channel=channel,
                        traffic_source=source,
                        page_type=page,
                    )
                ] += 1
                users[(w, channel, source)].add(e["user_id"])
                partition = kafka_partition_for(m.key.decode(), PARTITIONS)
                partition_users[(w, channel, source)][partition].add(e["user_id"])
                add("traffic_1m", (w, channel, source), 1, 0)
                load = e.get("load_ms")
                bounds = zip((-1, *LOAD_BOUNDS_MS), (*LOAD_BOUNDS_MS, math.inf), strict=True)
                buckets = tuple(int(load is not None and lo < load <= hi) for lo, hi in bounds)
                add(
                    "page_load_1m", (w, page, channel), 1, int(load is not None), load or 0, buckets
                )
                if load is not None:
                    labels = {"page_type": page, "channel": channel}
                    c[sample("salewatch_page_load_seconds_count", **labels)] += 1
                    c[sample("salewatch_page_load_seconds_sum", **labels)] += load / 1000
                    for bound in (*LOAD_BOUNDS_MS, math.inf):
                        if load <= bound:
                            le = "+Inf" if bound == math.inf else str(bound / 1000)
                            c[sample("salewatch_page_load_seconds_bucket", le=le, **labels)] += 1
        elif topic == "carts":
            kind = e["event_type"]
            step = 3 if kind == "add_to_cart" else 0
            c[sample("salewatch_cart_events_total", event_type=kind, channel=channel)] += 1
            add("cart_events_1m", (w, channel, kind), 1)
        elif topic == "orders":
            kind = e["event_type"]
            method, region = closed(e["payment_method"], METHODS), closed(e["region"], REGIONS)
            cents = round(e["amount"] * 100)
            coupon = int(bool(e.get("coupon_code")))
            c[
                sample(
                    "salewatch_orders_total",
                    event_type=kind,
                    channel=channel,
                    payment_method=method,
                    region=region,
                )
            ] += 1
            add("orders_1m", (w, channel, kind, method, region), 1, cents, coupon)
            if e.get("items"):
                category = top_category(e["items"][0]["category"])
                if kind == "order_created":
                    order_category[e["order_id"]] = category
            else:
                category = order_category.get(e["order_id"], OTHER)
            c[
                sample(
                    "salewatch_order_amount_total",
                    event_type=kind,
                    channel=channel,
                    category=category,
                )
            ] += cents / 100
            if kind == "order_created":
                add("category_sales_1m", (w, channel, category), 1, cents, 0, 0)
                if coupon:
                    c[sample("salewatch_coupon_redemptions_total", channel=channel)] += 1
            if kind == "payment_succeeded":
                add("category_sales_1m", (w, channel, category), 0, 0, 1, cents)
            if kind == "payment_failed":
                reason = closed(e.get("failure_reason"), FAILURE_REASONS)
                c[
                    sample(
                        "salewatch_payment_failures_total",
                        payment_method=method,
                        region=region,
                        failure_reason=reason,
                    )
                ] += 1
                add("payment_failures_1m", (w, method, region, reason), 1)
            if kind in ("payment_succeeded", "payment_failed"):
                failed = kind == "payment_failed"
                before = paying.get((e["order_id"], method))
                outcomes = ["attempted"] if before is None else []
                if failed and not before:
                    outcomes.append("failed")
                paying[(e["order_id"], method)] = bool(before) or failed
                for outcome in outcomes:
                    c[
                        sample(
                            "salewatch_payment_orders_total",
                            payment_method=method,
                            outcome=outcome,
                        )
                    ] += 1
            step = {"order_created": 4, "payment_succeeded": 5}.get(kind, 0)
            if kind not in ("order_created", "payment_succeeded", "payment_failed"):
                continue  # cancels and refunds are not session activity
        else:
            key = (e["event_type"], closed(e["kind"], KINDS), closed(e["reason"], REASONS))
            c[
                sample(
                    "salewatch_ticket_events_total", event_type=key[0], kind=key[1], reason=key[2]
                )
            ] += 1
            add("tickets_1m", (w, *key), 1)
            continue
        # the session: no 30-minute gap fits in this stream, so one session per session_id
        reached, session_channel = sessions.get(e["session_id"], (0, channel))
        if step > reached:
            if reached == 0:
                c[
                    sample(
                        "salewatch_sessions_started_total",
                        channel=session_channel,
                        traffic_source=source,
                    )
                ] += 1
                add("traffic_1m", (w, session_channel, source), 0, 1)
            for name in STEPS[reached:step]:
                c[
                    sample("salewatch_funnel_sessions_total", step=name, channel=session_channel)
                ] += 1
                add("funnel_1m", (w, session_channel, name), 1)
        sessions[e["session_id"]] = (max(step, reached), session_channel)

    for key, row in rows["traffic_1m"].items():
        # rows are per partition (the emitter): distinct users per partition, summed
        row.append(sum(len(ids) for ids in partition_users[key].values()))
    return Truth(
        contributions,
        {t: {k: tuple(v) for k, v in r.items()} for t, r in rows.items()},
        users,
        raw_users,
        late_ids,
    )


# ------------------------------------------------------------------ producing


class PacedProducer(threading.Thread):
    """Sends messages in event-time slices at ``SPEED``; ``go`` cleared pauses it."""

    def __init__(self, settings: Settings, msgs: list[Msg]) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.msgs = msgs
        self.go = threading.Event()
        self.go.set()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=5)
            start = self.msgs[0].produce_at if self.msgs else 0
            i = 0
            slice_end = start + SLICE_MS
            while i < len(self.msgs):
                self.go.wait()
                started = time.monotonic()
                batch: list[tuple[Msg, Any]] = []
                while i < len(self.msgs) and self.msgs[i].produce_at < slice_end:
                    m = self.msgs[i]
                    batch.append(
                        (m, producer.send(self.settings.kafka_topic(m.topic), m.value, m.key))
                    )
                    i += 1
                producer.flush(timeout=30)
                now = time.time()
                for m, future in batch:
                    meta = future.get(timeout=30)
                    m.partition, m.offset, m.sent_wall = meta.partition, meta.offset, now
                self.sent = i
                slice_end += SLICE_MS
                time.sleep(max(0.0, SLICE_MS / 1000 / SPEED - (time.monotonic() - started)))
            producer.close()
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def send_now(settings: Settings, msgs: list[Msg]) -> None:
    thread = PacedProducer(settings, msgs)
    thread.run()
    if thread.error:
        raise thread.error


# ------------------------------------------------------------------ reading the results

TABLE_QUERIES = {
    "traffic_1m": ("channel, traffic_source", "sum(page_views), sum(visits), sum(active_users)"),
    "funnel_1m": ("channel, step", "sum(sessions)"),
    "cart_events_1m": ("channel, event_type", "sum(events)"),
    "orders_1m": (
        "channel, event_type, payment_method, region",
        "sum(orders), sum(amount), sum(coupon_orders)",
    ),
    "payment_failures_1m": ("payment_method, region, failure_reason", "sum(failures)"),
    "category_sales_1m": (
        "channel, category",
        "sum(orders), sum(gmv), sum(paid_orders), sum(paid_amount)",
    ),
    "page_load_1m": (
        "page_type, channel",
        "sum(page_views), sum(measured_views), sum(load_ms_sum), sumForEach(load_ms_buckets)",
    ),
    "tickets_1m": ("event_type, kind, reason", "sum(tickets)"),
}


def plain(value: Any) -> Any:
    """ClickHouse values as the ground truth has them: cents for money, tuples for arrays."""
    if isinstance(value, Decimal):
        return int(value * 100)
    if isinstance(value, list | tuple):
        return tuple(int(v) for v in value)
    return int(value) if isinstance(value, int) else value


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    client = clickhouse(settings)
    try:
        return [tuple(r) for r in client.execute(sql)]
    finally:
        client.disconnect()


Rows = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


def rollups(settings: Settings, before_s: int) -> Rows:
    """Every rollup row (``FINAL``, summed over workers) of windows before ``before_s``."""
    out = {}
    for table, (dims, measures) in TABLE_QUERIES.items():
        sql = (
            f"SELECT toUInt32(window_start), {dims}, {measures} FROM {table} FINAL "
            f"WHERE window_start < toDateTime({before_s}) GROUP BY window_start, {dims}"
        )
        width = len(dims.split(", ")) + 1
        out[table] = {
            tuple(plain(v) for v in r[:width]): tuple(plain(v) for v in r[width:])
            for r in query(settings, sql)
        }
    return out


def in_windows(
    rows: Mapping[str, Mapping[tuple[Any, ...], tuple[Any, ...]]], before_s: int
) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    return {t: {k: v for k, v in r.items() if k[0] < before_s} for t, r in rows.items()}


# the raw tables recomputed into rollups in SQL (ClickHouse 18.16 and current), without the
# late events (by id); labels normalised with the closed sets of EVENTS.md
def norm(column: str, allowed: Iterable[str]) -> str:
    values = ", ".join(f"'{v}'" for v in allowed)
    return f"if({column} IN ({values}), toString({column}), 'other')"


WINDOW = "toUInt32(toStartOfMinute(event_time))"
TOP_CATEGORY = "splitByChar('/', `items.category`[1])[1]"
SESSION_STEP = {
    "clicks": "if(event_type = 'page_view', if(page_type = 'detail', 2, 1), 0)",
    "carts": "if(event_type = 'add_to_cart', 3, 0)",
    "orders": "multiIf(event_type = 'order_created', 4, event_type = 'payment_succeeded', 5, 0)",
}


def recompute_sql(late_ids: set[str]) -> dict[str, tuple[int, str]]:
    """``{name: (number of key columns, SQL)}``; a session is one session_id (no 30-minute
    gap fits in the stream) whose steps are reached at the first event implying them."""
    not_late = "event_id NOT IN ({})".format(", ".join(f"'{i}'" for i in sorted(late_ids)))
    ch, src = norm("channel", CHANNELS), norm("traffic_source", SOURCES)
    method, region = norm("payment_method", METHODS), norm("region", REGIONS)
    activity = " UNION ALL ".join(
        f"SELECT session_id, ts_ms, {ch} AS ch, {src if t == 'clicks' else repr(OTHER)} AS src, "
        # CAST: in 18.16 a function of a LowCardinality column may be LowCardinality, and
        # UNION ALL cannot mix that with a plain type
        f"CAST({SESSION_STEP[t]} AS UInt8) AS st FROM {t}_raw FINAL WHERE {not_late}"
        + (
            " AND event_type != 'order_cancelled' AND event_type != 'order_refunded'"
            if t == "orders"
            else ""
        )
        for t in ("clicks", "carts", "orders")
    )
    reach = ", ".join(f"minIf(ts_ms, st >= {i})" for i in range(1, 6))
    buckets = ", ".join(
        f"countIf(load_ms > {lo} AND load_ms <= {hi})"
        for lo, hi in zip((-1, *LOAD_BOUNDS_MS), (*LOAD_BOUNDS_MS, 10**9), strict=True)
    )
    cats = ", ".join(f"'{c}'" for c in CATEGORIES)
    return {
        "page_views": (
            3,
            f"""
            SELECT w, c, s, sum(n), sum(u) FROM (
                SELECT {WINDOW} AS w, {ch} AS c, {src} AS s, kafka_partition,
                    count() AS n, uniqExact(user_id) AS u
                FROM clicks_raw FINAL WHERE event_type = 'page_view' AND {not_late}
                GROUP BY w, c, s, kafka_partition
            ) GROUP BY w, c, s""",
        ),
        "visits": (
            3,
            f"""
            SELECT toUInt32(intDiv(r1, 60000) * 60) AS w, sch, vsrc, count() FROM (
                SELECT argMin(ch, ts_ms) AS sch, minIf(ts_ms, st >= 1) AS r1,
                    argMinIf(src, ts_ms, st >= 1) AS vsrc
                FROM ({activity}) GROUP BY session_id)
            WHERE r1 > 0 GROUP BY w, sch, vsrc""",
        ),
        "funnel_1m": (
            3,
            f"""
            SELECT toUInt32(intDiv(r.1, 60000) * 60) AS w, sch, r.2 AS step, count() FROM (
                SELECT argMin(ch, ts_ms) AS sch, [{reach}] AS reached
                FROM ({activity}) GROUP BY session_id)
            ARRAY JOIN arrayMap((t, s) -> (t, s), reached, {list(STEPS)}) AS r
            WHERE r.1 > 0 GROUP BY w, sch, step""",
        ),
        "cart_events_1m": (
            3,
            f"""
            SELECT {WINDOW} AS w, {ch} AS c, toString(event_type) AS t, count()
            FROM carts_raw FINAL WHERE {not_late} GROUP BY w, c, t""",
        ),
        "orders_1m": (
            5,
            f"""
            SELECT {WINDOW} AS w, {ch} AS c, toString(event_type) AS t, {method} AS m,
                {region} AS r, count(), sum(amount), countIf(coupon_code != '')
            FROM orders_raw FINAL WHERE {not_late} GROUP BY w, c, t, m, r""",
        ),
        "payment_failures_1m": (
            4,
            f"""
            SELECT {WINDOW} AS w, {method} AS m, {region} AS r,
                {norm("failure_reason", FAILURE_REASONS)} AS f, count()
            FROM orders_raw FINAL WHERE event_type = 'payment_failed' AND {not_late}
            GROUP BY w, m, r, f""",
        ),
        "category_sales_1m": (
            3,
            f"""
            SELECT w, c, if(cat IN ({cats}), cat, 'other') AS k,
                countIf(t = 'order_created'), sumIf(amount, t = 'order_created'),
                countIf(t = 'payment_succeeded'), sumIf(amount, t = 'payment_succeeded')
            FROM (
                SELECT {WINDOW} AS w, {ch} AS c, toString(event_type) AS t, amount,
                    if(empty(`items.category`), created_category, {TOP_CATEGORY}) AS cat
                FROM orders_raw FINAL
                ANY LEFT JOIN (
                    SELECT order_id, {TOP_CATEGORY} AS created_category FROM orders_raw FINAL
                    WHERE event_type = 'order_created' AND notEmpty(`items.category`)
                ) USING order_id
                WHERE event_type IN ('order_created', 'payment_succeeded') AND {not_late})
            GROUP BY w, c, k""",
        ),
        "page_load_1m": (
            3,
            f"""
            SELECT {WINDOW} AS w, {norm("page_type", PAGE_TYPES)} AS p, {ch} AS c, count(),
                countIf(load_ms IS NOT NULL), sum(ifNull(load_ms, 0)), [{buckets}]
            FROM clicks_raw FINAL WHERE event_type = 'page_view' AND {not_late}
            GROUP BY w, p, c""",
        ),
        "tickets_1m": (
            4,
            f"""
            SELECT {WINDOW} AS w, toString(event_type) AS t, {norm("kind", KINDS)} AS k,
                {norm("reason", REASONS)} AS r, count()
            FROM tickets_raw FINAL WHERE {not_late} GROUP BY w, t, k, r""",
        ),
    }


def raw_recomputation(
    settings: Settings, late_ids: set[str], before_s: int
) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """The rollups recomputed from the raw tables, in the ground truth's shape."""
    got: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for name, (width, sql) in recompute_sql(late_ids).items():
        got[name] = {
            tuple(plain(v) for v in r[:width]): tuple(plain(v) for v in r[width:])
            for r in query(settings, sql)
        }
    traffic: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, (views, users) in got.pop("page_views").items():
        traffic[key][0], traffic[key][2] = views, users
    for key, (visits,) in got.pop("visits").items():
        traffic[key][1] = visits
    got["traffic_1m"] = {k: (v[0], v[1], v[2]) for k, v in traffic.items()}
    return in_windows(got, before_s)


def metrics(text: str) -> Amounts:
    """Counter and page-load histogram samples of a /metrics text."""
    out = amounts()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_total") or s.name.startswith("salewatch_page_load_seconds"):
                if "clickhouse" in s.name or s.name.endswith("_created"):
                    continue
                labels = {k: fix_le(k, v) for k, v in s.labels.items()}
                out[sample(s.name, **labels)] += s.value
    return out


def fix_le(label: str, value: str) -> str:
    return value if label != "le" or value == "+Inf" else str(float(value))


def prometheus_samples(
    settings: Settings, at_range: str = ""
) -> dict[Sample, list[tuple[float, float]]]:
    """This test's worker's counter samples in Prometheus: ``{sample: [(t, value), ...]}``."""
    instance = f"127.0.0.1:{settings.metrics_port}"
    selector = (
        f'{{__name__=~"salewatch_.*_total|salewatch_page_load_seconds_.*",'
        f'__name__!~"salewatch_clickhouse_.*",instance="{instance}"}}{at_range}'
    )
    out: dict[Sample, list[tuple[float, float]]] = {}
    for series in prometheus_query(settings, selector):
        labels = {
            k: fix_le(k, v)
            for k, v in series["metric"].items()
            if k not in ("instance", "job", "__name__")
        }
        values = series.get("values") or [series["value"]]
        key = sample(series["metric"]["__name__"], **labels)
        out[key] = [(float(t), float(v)) for t, v in values if not math.isnan(float(v))]
    return out


def same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def differences(
    got: Mapping[Sample, float], want: Mapping[Sample, float]
) -> dict[Sample, tuple[float, float]]:
    keys = {k for k, v in got.items() if v} | {k for k, v in want.items() if v}
    return {
        k: (got.get(k, 0.0), want.get(k, 0.0))
        for k in sorted(keys)
        if not same(got.get(k, 0.0), want.get(k, 0.0))
    }


def assert_rows_equal(
    got: Mapping[str, Mapping[Any, Any]], want: Mapping[str, Mapping[Any, Any]], what: str
) -> None:
    for table in sorted(set(got) | set(want)):
        g, w = got.get(table, {}), want.get(table, {})
        wrong = {
            k: (g.get(k), w.get(k))
            for k in sorted(set(g) | set(w), key=repr)
            if g.get(k) != w.get(k)
        }
        assert not wrong, (
            f"{what}: {table}: {len(wrong)} rows differ (got, want): {list(wrong.items())[:8]}"
        )


# ------------------------------------------------------------------ the scenario


@dataclass
class Run:
    settings: Settings
    msgs: list[Msg]
    truth: Truth
    t_end: int
    last_window_s: int  # start of the stream's last window, epoch s
    log: Path
    timings: dict[str, float] = field(default_factory=dict)


def make_run(isolated: Settings, tmp_path: Path, seed: int) -> Run:
    settings = isolated.model_copy(
        update={"window_clock": "event", "allowed_lateness_s": LATENESS_S, "regions": list(REGIONS)}
    )
    assert settings.topic_partitions == PARTITIONS
    t0 = (int(time.time() * 1000) - 16 * MIN) // MIN * MIN
    msgs = generate(t0, seed)
    t_end = t0 + 10 * MIN
    msgs.append(sentinel(t_end))
    last_window_s = (t_end - 1) // MIN * 60
    return Run(settings, msgs, ground_truth(msgs), t_end, last_window_s, tmp_path / "worker.log")


def worker_samples(worker: WorkerProcess) -> Amounts:
    return metrics(worker.metrics_text())


def closed_through(worker: WorkerProcess) -> float:
    for family in text_string_to_metric_families(worker.metrics_text()):
        for s in family.samples:
            if s.name == "salewatch_window_closed_timestamp_seconds":
                return float(s.value)
    return 0.0


def finish(
    run: Run,
    worker: WorkerProcess,
    expected_before_sentinel: Amounts,
    may_differ: frozenset[Sample] = frozenset(),
) -> None:
    """Wait for every counted number, send the sentinel, wait for the last window to close."""
    wait_until(
        lambda: differences(worker_samples(worker), expected_before_sentinel),
        lambda d: not set(d) - may_differ,
        40,
        "the worker to count the whole stream",
    )
    send_now(run.settings, run.msgs[-1:])
    wait_until(
        lambda: closed_through(worker),
        lambda t: t >= run.last_window_s + 60,
        30,
        "the stream's last window to close",
    )


def check_clickhouse(run: Run) -> None:
    """Raw tables, rollups and their recomputation from raw events, against the truth."""
    settings, truth = run.settings, run.truth
    for topic in ("clicks", "carts", "orders", "tickets"):
        ids = {m.event["event_id"] for m in run.msgs if m.topic == topic and m.event}
        n = len(ids)
        # raw rows are stored after they are counted, up to the insert linger later
        stored = wait_until(
            lambda t=topic: query(
                settings, f"SELECT count(), uniqExact(event_id) FROM {t}_raw FINAL"
            ),
            lambda got, n=n: got[0][0] >= n,
            settings.insert_linger_s + 10,
            f"{topic}_raw to hold the stream",
        )
        assert stored == [(len(ids), len(ids))], topic
    before = run.last_window_s + 60
    want = in_windows(truth.rollups, before)
    assert_rows_equal(rollups(settings, before), want, "rollups")
    assert_rows_equal(
        raw_recomputation(settings, truth.late_ids, before), want, "recomputed from raw"
    )
    # distinct users per minute from the raw rows' mergeable states (late views included)
    states = query(
        settings,
        "SELECT toUInt32(window_start), channel, traffic_source, uniqCombinedMerge(users) "
        "FROM active_users_1m GROUP BY window_start, channel, traffic_source",
    )
    for w, channel, source, estimate in states:
        exact = len(truth.raw_users.get((w, channel, source), ()))
        assert abs(estimate - exact) <= max(1, 0.02 * exact), (w, channel, source, estimate, exact)
    assert len(states) == len(truth.raw_users)


def check_active_user_gauges(run: Run, worker: WorkerProcess) -> None:
    """1 minute: exact; 5 and 15 minutes: HyperLogLog within 3 standard errors (0.81 %)."""
    newest = int(closed_through(worker)) - 60
    text = worker.metrics_text()
    by_window: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for (w, channel, _source), ids in run.truth.users.items():
        by_window[w][channel] |= ids
        by_window[w]["all"] |= ids
    for minutes in (1, 5, 15):
        union: dict[str, set[str]] = defaultdict(set)
        for w in range(newest - (minutes - 1) * 60, newest + 1, 60):
            for channel, ids in by_window.get(w, {}).items():
                union[channel] |= ids
        for channel in (*CHANNELS, OTHER, "all"):
            got = sum(
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == f"salewatch_active_users_{minutes}m" and s.labels["channel"] == channel
            )
            exact = len(union.get(channel, ()))
            bound = 0 if minutes == 1 else max(1.0, 3 * 0.0081 * exact)
            assert abs(got - exact) <= bound, (minutes, channel, got, exact)


def test_ground_truth_on_the_real_stack(isolated: Settings, tmp_path: Path) -> None:
    started = time.monotonic()
    run = make_run(isolated, tmp_path, seed=7)
    truth = run.truth
    everything = truth.totals()
    before_sentinel = truth.totals(range(len(run.msgs) - 1))
    with running_worker(run.settings, run.log) as worker:
        producer = PacedProducer(run.settings, run.msgs[:-1])
        producer.start()
        producer.join(120)
        assert producer.error is None, producer.error
        finish(run, worker, before_sentinel)

        assert not differences(worker_samples(worker), everything), "worker /metrics"
        check_clickhouse(run)
        check_active_user_gauges(run, worker)

        # the stack's Prometheus scrapes the worker every 5 s
        got = wait_until(
            lambda: {k: v[-1][1] for k, v in prometheus_samples(run.settings).items()},
            lambda g: not differences(g, everything),
            30,
            "Prometheus to scrape the final counters",
        )
        assert not differences(got, everything)
        check_war_room_queries(run)
    print(f"\nground truth run: {len(run.msgs)} messages, {time.monotonic() - started:.1f}s")


# ------------------------------------------------------------------ restart in the middle


DUPLICATE_ORDERS = sample("salewatch_events_duplicate_total", topic="orders")


def kill_zone(
    msgs: list[Msg], scraped_at: float, killed_at: float, lag_s: float, linger_s: float
) -> list[int]:
    """Messages whose counts Prometheus may hold although ClickHouse did not store them (the
    batches counted and waiting for their insert at the kill), or may miss although they
    were stored (counted after the old worker's last scrape): those sent between its last
    scrape minus its lag, minus two batch windows (orders are counted one hop later,
    through orders_by_session, ``batch_within_s`` = 1 s each), minus the insert linger
    (``linger_s``), and the kill."""
    since = scraped_at - lag_s - 2.0 - linger_s
    return [i for i, m in enumerate(msgs) if m.sent_wall and since <= m.sent_wall <= killed_at]


def lag_at(msgs: list[Msg], received: float, at: float) -> float:
    """How far behind the producer a worker that had read ``received`` messages at ``at``
    was, at most (quarter seconds)."""
    for quarters in range(41):
        lag = quarters / 4
        if received >= sum(1 for m in msgs if m.sent_wall and m.sent_wall <= at - lag):
            return lag
    raise AssertionError(f"the worker was more than 10 s behind at its last scrape ({received})")


def resume_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """Where a restarted worker resumes each source partition: after the newest offset
    ClickHouse holds, or at the group's committed offset if that is further (the last
    messages handled were invalid: dead-lettered, not stored)."""
    out: dict[tuple[str, int], int] = defaultdict(int)
    for topic in ("clicks", "carts", "orders", "tickets"):
        for partition, offset in query(
            settings,
            f"SELECT kafka_partition, max(kafka_offset) FROM {topic}_raw GROUP BY kafka_partition",
        ):
            out[(topic, int(partition))] = int(offset) + 1
    # reading committed offsets does not join the group
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    try:
        for topic in ("clicks", "carts", "orders", "tickets"):
            for partition in range(settings.topic_partitions):
                committed = consumer.committed(
                    TopicPartition(settings.kafka_topic(topic), partition)
                )
                if committed is not None:
                    out[(topic, partition)] = max(out[(topic, partition)], committed)
    finally:
        consumer.close()
    return dict(out)


def test_ground_truth_with_a_worker_killed_in_the_middle(
    isolated: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    run = make_run(isolated, tmp_path, seed=11)
    truth, settings = run.truth, run.settings
    everything = truth.totals()
    valid_rows = len({m.event["event_id"] for m in run.msgs[:-1] if m.event})
    raw_count = "SELECT " + " + ".join(
        f"(SELECT count() FROM {topic}_raw)" for topic in ("clicks", "carts", "orders", "tickets")
    )
    emitted = "SELECT count() FROM traffic_1m"
    worker = WorkerProcess(settings, run.log)
    try:
        run_started = time.time()  # samples of earlier workers on this port are older
        worker.start()
        producer = PacedProducer(settings, run.msgs[:-1])
        producer.start()
        # the kill comes once windows have been emitted and about half the stream is stored
        wait_until(
            lambda: (query(settings, raw_count)[0][0], query(settings, emitted)[0][0]),
            lambda v: v[0] >= valid_rows * 0.4 and v[1] > 0,
            60,
            "40 % of the stream and a closed window in ClickHouse",
        )
        # kill right after a scrape, while the stream flows
        instance = f"127.0.0.1:{settings.metrics_port}"

        def last_scrape() -> str:
            up = f'timestamp(up{{instance="{instance}"}})'
            return str(prometheus_query(settings, up)[0]["value"][1])

        first = last_scrape()
        wait_until(last_scrape, lambda t: t != first, 10, "a scrape")
        worker.stop(signal.SIGKILL)
        killed_at = time.time()
        producer.go.clear()
        sent_before_kill = producer.sent
        time.sleep(1)  # the producer finishes its slice
        resume = resume_offsets(settings)
        assert query(settings, raw_count)[0][0] < valid_rows, "the kill came too late"

        restart_started = time.monotonic()
        worker.start()
        run.timings["restart_to_ready_s"] = time.monotonic() - restart_started
        producer.go.set()
        producer.join(120)
        assert producer.error is None, producer.error

        after = [
            i
            for i, m in enumerate(run.msgs[:-1])
            if m.offset >= resume.get((m.topic, m.partition), 0)
        ]
        finish(run, worker, truth.totals(after), frozenset({DUPLICATE_ORDERS}))
        final = worker_samples(worker)
        wait_until(
            lambda: {k: v[-1][1] for k, v in prometheus_samples(settings).items()},
            lambda latest: not differences(latest, final),
            30,
            "Prometheus to scrape the restarted worker's final counters",
        )
    finally:
        worker.stop()

    rebuilt = [
        line for line in run.log.read_text().splitlines() if "rebuilt from ClickHouse" in line
    ]
    print("\n" + "\n".join(rebuilt[-1:]))
    check_clickhouse(run)

    # the restarted worker counted exactly the messages after what ClickHouse held (or Kafka
    # had committed, if further): nothing stored was read again, and its rebuilt windows
    # and sessions make its counts exact; a duplicate order whose first copy was stored
    # before the kill is skipped as a redelivery, not counted as a duplicate (recovery)
    want_after = truth.totals([*after, len(run.msgs) - 1])
    diff = differences(final, want_after)
    assert not {k: v for k, v in diff.items() if k != DUPLICATE_ORDERS}, "restarted worker"

    # Prometheus, increase()-style: the last sample of each process, added
    series = prometheus_samples(settings, f"[{int(time.time() - run_started) + 30}s]")
    old: dict[Sample, tuple[float, float]] = {}
    totals: dict[Sample, float] = {}
    for key, points in series.items():
        before = [p for p in points if run_started < p[0] < killed_at]
        after_kill = [p for p in points if p[0] > killed_at]
        old[key] = max(before, default=(0.0, 0.0))
        totals[key] = old[key][1] + max(after_kill, default=(0.0, 0.0))[1]
    scraped_at = max(t for t, _ in old.values())
    received_then = sum(
        v for (name, _), (_, v) in old.items() if name == "salewatch_events_received_total"
    )
    lag_s = lag_at(run.msgs, received_then, scraped_at)
    zone = kill_zone(run.msgs, scraped_at, killed_at, lag_s, settings.insert_linger_s)
    bound = amounts()
    for i in zone:
        for k, v in truth.contributions[i].items():
            bound[k] += abs(v)
    beyond = {
        k: (g, w, bound[k])
        for k, (g, w) in differences(totals, everything).items()
        if abs(g - w) > bound[k] + 1e-6
    }
    assert not beyond, f"Prometheus totals beyond the kill zone's contributions: {beyond}"
    off = differences(totals, everything)
    received = {
        dict(labels)["topic"]: round(g - w)
        for (name, labels), (g, w) in off.items()
        if name == "salewatch_events_received_total"
    }
    print(f"\nPrometheus - truth, events received per topic: {received or 'none'}")
    print(
        f"restart run: {len(run.msgs)} messages, killed after {sent_before_kill} sent, "
        f"{len(after)} counted after the restart, kill zone {len(zone)} messages "
        f"(lag {lag_s:.2f}s, killed {killed_at - scraped_at:.2f}s after the last scrape), "
        f"{len(off)} Prometheus samples off by <= their zone contribution, "
        f"ready {run.timings['restart_to_ready_s']:.1f}s after the restart, "
        f"{time.monotonic() - started:.1f}s in all"
    )


# ------------------------------------------------------------------ README war-room queries


def war_room_queries() -> Iterator[tuple[str, str]]:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## War-room queries", 1)[1].split("\n## ", 1)[0]
    for lang, body in re.findall(r"```(promql|sql)\n(.*?)```", section, flags=re.S):
        yield lang, body.strip()


def check_war_room_queries(run: Run) -> None:
    """Every README war-room query runs; GMV per minute matches the ground truth."""
    found = list(war_room_queries())
    assert sum(1 for lang, _ in found if lang == "promql") >= 5
    assert sum(1 for lang, _ in found if lang == "sql") >= 5
    for lang, text in found:
        if lang == "promql":
            prometheus_query(run.settings, text)  # asserts status success
        else:
            rows = query(
                run.settings, text.replace("salewatch.", f"{run.settings.clickhouse_database}.")
            )
            if "sum(gmv) AS gmv" in text:
                gmv: Counter[int] = Counter()
                for (w, *_), (_orders, cents, *_rest) in run.truth.rollups[
                    "category_sales_1m"
                ].items():
                    gmv[w] += cents
                got = {utc_seconds(r[0]): int(r[1] * 100) for r in rows if r[1]}
                want = {w: c for w, c in gmv.items() if c and w <= run.last_window_s}
                assert got == want


def utc_seconds(value: Any) -> int:
    if value.tzinfo is None:  # the server's time zone is UTC (stack config)
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def test_war_room_queries_are_in_the_readme() -> None:
    """Without the stack: the section exists and has both languages for every number."""
    found = list(war_room_queries())
    text = " ".join(body for _, body in found)
    for needle in ("funnel_sessions", "gmv", "payment_succeeded", "0.75", "ticket_opened"):
        assert needle in text
