"""The counting facade: what each event counts, late and duplicate events, windows closed
by the timer, distinct-user gauges, counters equal to rollup sums, flat memory."""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from streams.counting.classify import ORDER_MEMORY_MS
from streams.counting.funnel import MemorySessionStore
from streams.counting.pipeline import Pipeline
from streams.counting.rollups import ROLLUP_COLUMNS, RollupRow
from streams.events.contract import Topic
from streams.metrics.defs import METRICS
from streams.metrics.totals import Totals
from streams.settings import Settings
from tests.unit.events_factory import DROP, make_event

T0 = 1_731_283_200_000  # 2024-11-11 00:00:00 UTC, a window start
MIN = 60_000
LATENESS = 2 * MIN

# the business metrics this core owns (pipeline-health ones belong to the chain)
OWN_COUNTERS = sorted(
    name
    for name, d in METRICS.items()
    if d.kind == "counter"
    and name
    not in {
        "salewatch_events_received_total",
        "salewatch_events_valid_total",
        "salewatch_events_invalid_total",
        "salewatch_dead_letters_total",
        "salewatch_clickhouse_rows_written_total",
        "salewatch_clickhouse_write_errors_total",
    }
)

Snapshot = dict[str, dict[tuple[str, ...], float]]


def counters(totals: Totals) -> Snapshot:
    """The counters that counted something (series exported at 0 from the start left out)."""
    return {
        name: counted
        for name in OWN_COUNTERS
        if (counted := {k: v for k, v in totals.values.get(name, {}).items() if v})
    }


def event(topic: Topic, n: int = 1, dt: int = 0, **overrides: Any) -> dict[str, Any]:
    return make_event(topic, event_id=f"{topic}-{n}", ts=T0 + dt, **overrides)


def funnel(channel: str, upto: str) -> dict[tuple[str, ...], float]:
    names = ["visit", "detail", "cart", "checkout", "paid"]
    return {(step, channel): 1.0 for step in names[: names.index(upto) + 1]}


# ------------------------------------------------------------------ what one event counts

ONE_FAILED_ORDER = {("alipay", "attempted"): 1.0, ("alipay", "failed"): 1.0}

CASES = [
    pytest.param(
        "clicks",
        {},
        {
            "salewatch_page_views_total": {("app", "search", "detail"): 1.0},
            "salewatch_sessions_started_total": {("app", "search"): 1.0},
            "salewatch_funnel_sessions_total": funnel("app", "detail"),
        },
        id="page_view of a detail page",
    ),
    pytest.param(
        "clicks",
        {"channel": "tv", "page_type": "amp", "traffic_source": DROP},
        {
            "salewatch_page_views_total": {("other", "other", "other"): 1.0},
            "salewatch_sessions_started_total": {("other", "other"): 1.0},
            "salewatch_funnel_sessions_total": funnel("other", "visit"),
        },
        id="unknown channel, page type and missing traffic source count as other",
    ),
    pytest.param("clicks", {"event_type": "click"}, {}, id="a click counts nothing"),
    pytest.param(
        "carts",
        {"channel": "web"},
        {
            "salewatch_cart_events_total": {("add_to_cart", "web"): 1.0},
            "salewatch_sessions_started_total": {("web", "other"): 1.0},
            "salewatch_funnel_sessions_total": funnel("web", "cart"),
        },
        id="add_to_cart reaches cart, implying visit and detail",
    ),
    pytest.param(
        "carts",
        {"event_type": "remove_from_cart"},
        {"salewatch_cart_events_total": {("remove_from_cart", "app"): 1.0}},
        id="remove_from_cart is no funnel step",
    ),
    pytest.param(
        "orders",
        {},
        {
            "salewatch_orders_total": {("order_created", "app", "alipay", "CN-GD"): 1.0},
            "salewatch_order_amount_total": {("order_created", "app", "apparel"): 199.0},
            "salewatch_coupon_redemptions_total": {("app",): 1.0},
            "salewatch_sessions_started_total": {("app", "other"): 1.0},
            "salewatch_funnel_sessions_total": funnel("app", "checkout"),
        },
        id="order_created: GMV by top-level category, coupon, checkout",
    ),
    pytest.param(
        "orders",
        {
            "channel": "tv",
            "payment_method": "paypal",
            "region": "US-CA",
            "coupon_code": "",
            "items": [{"item_id": "i", "category": "garden/tools", "quantity": 1, "price": 5}],
            "amount": 5,
        },
        {
            "salewatch_orders_total": {("order_created", "other", "other", "other"): 1.0},
            "salewatch_order_amount_total": {("order_created", "other", "other"): 5.0},
            "salewatch_sessions_started_total": {("other", "other"): 1.0},
            "salewatch_funnel_sessions_total": funnel("other", "checkout"),
        },
        id="unknown channel, method, region, category; empty coupon is none",
    ),
    pytest.param(
        "orders",
        {"event_type": "payment_failed", "failure_reason": "alien", "coupon_code": DROP},
        {
            "salewatch_orders_total": {("payment_failed", "app", "alipay", "CN-GD"): 1.0},
            "salewatch_order_amount_total": {("payment_failed", "app", "apparel"): 199.0},
            "salewatch_payment_failures_total": {("alipay", "CN-GD", "other"): 1.0},
            "salewatch_payment_orders_total": ONE_FAILED_ORDER,
        },
        id="payment_failed with an unknown reason",
    ),
    pytest.param(
        "orders",
        {"event_type": "payment_failed", "failure_reason": "timeout", "items": DROP},
        {
            "salewatch_orders_total": {("payment_failed", "app", "alipay", "CN-GD"): 1.0},
            "salewatch_order_amount_total": {("payment_failed", "app", "other"): 199.0},
            "salewatch_payment_failures_total": {("alipay", "CN-GD", "timeout"): 1.0},
            "salewatch_payment_orders_total": ONE_FAILED_ORDER,
        },
        id="payment_failed of an unknown order: category other; coupon only on created",
    ),
    pytest.param(
        "orders",
        {"event_type": "payment_succeeded", "items": DROP, "coupon_code": DROP},
        {
            "salewatch_orders_total": {("payment_succeeded", "app", "alipay", "CN-GD"): 1.0},
            "salewatch_order_amount_total": {("payment_succeeded", "app", "other"): 199.0},
            "salewatch_sessions_started_total": {("app", "other"): 1.0},
            "salewatch_funnel_sessions_total": funnel("app", "paid"),
            "salewatch_payment_orders_total": {("alipay", "attempted"): 1.0},
        },
        id="payment_succeeded reaches paid",
    ),
    pytest.param(
        "orders",
        {"event_type": "order_cancelled", "items": DROP, "coupon_code": DROP},
        {
            "salewatch_orders_total": {("order_cancelled", "app", "alipay", "CN-GD"): 1.0},
            "salewatch_order_amount_total": {("order_cancelled", "app", "other"): 199.0},
        },
        id="auto-cancel counts like any cancel and touches no session",
    ),
    pytest.param(
        "tickets",
        {},
        {"salewatch_ticket_events_total": {("ticket_opened", "return", "size"): 1.0}},
        id="ticket opened",
    ),
    pytest.param(
        "tickets",
        {"event_type": "ticket_resolved", "kind": "praise", "reason": "mood"},
        {"salewatch_ticket_events_total": {("ticket_resolved", "other", "other"): 1.0}},
        id="ticket of unknown kind and reason",
    ),
]


@pytest.mark.parametrize(("topic", "overrides", "expected"), CASES)
def test_one_event_counts(topic: Topic, overrides: dict[str, Any], expected: Snapshot) -> None:
    totals = Totals()
    Pipeline(totals).process(topic, [event(topic, **overrides)], T0)
    assert counters(totals) == expected


def test_payment_takes_the_category_of_its_order() -> None:
    totals = Totals()
    p = Pipeline(totals)
    p.process("orders", [event("orders", 1)], T0)
    paid = event("orders", 2, dt=5 * MIN, event_type="payment_succeeded", items=DROP)
    p.process("orders", [paid], T0 + 5 * MIN)
    amounts = totals.values["salewatch_order_amount_total"]
    assert amounts[("payment_succeeded", "app", "apparel")] == 199.0


def test_order_category_is_forgotten_after_the_order_memory() -> None:
    totals = Totals()
    p = Pipeline(totals)
    p.process("orders", [event("orders", 1)], T0)
    later = T0 + ORDER_MEMORY_MS + 4 * MIN
    p.close_windows(later)
    refund = event("orders", 2, dt=later - T0, event_type="order_refunded", items=DROP)
    p.process("orders", [refund], later)
    amounts = totals.values["salewatch_order_amount_total"]
    assert amounts[("order_refunded", "app", "other")] == 199.0


def test_payment_orders_count_each_order_once_per_method() -> None:
    """One order fails three times with alipay, then fails with card, then pays with card:
    alipay 1 attempted 1 failed, card 1 attempted 1 failed. A second order paying at once:
    attempted only. The first order's alipay retry after the order memory counts again."""
    totals = Totals()
    p = Pipeline(totals)
    failed = {"event_type": "payment_failed", "items": DROP}
    p.process("orders", [event("orders", i, dt=i * 30_000, **failed) for i in (1, 2, 3)], T0)
    card = {"payment_method": "card", "items": DROP}
    p.process("orders", [event("orders", 4, dt=2 * MIN, **card, event_type="payment_failed")], T0)
    paid_card = event("orders", 5, dt=3 * MIN, **card, event_type="payment_succeeded")
    p.process("orders", [paid_card], T0)
    paid = {"event_type": "payment_succeeded", "items": DROP, "order_id": "o-2"}
    p.process("orders", [event("orders", 6, dt=3 * MIN, **paid)], T0)
    later = T0 + ORDER_MEMORY_MS + 4 * MIN
    p.close_windows(later)
    p.process("orders", [event("orders", 7, dt=later - T0, **failed)], later)
    assert counters(totals)["salewatch_payment_orders_total"] == {
        ("alipay", "attempted"): 3.0,
        ("alipay", "failed"): 2.0,
        ("card", "attempted"): 1.0,
        ("card", "failed"): 1.0,
    }
    assert sum(totals.values["salewatch_payment_failures_total"].values()) == 5.0


def test_amounts_are_exact_in_cents() -> None:
    totals = Totals()
    p = Pipeline(totals)
    p.process("orders", [event("orders", n, amount=1.15) for n in range(3)], T0)
    rows = p.close_windows(T0 + 3 * MIN)
    (orders,) = [r.row for r in rows if r.table == "orders_1m"]
    assert orders["amount"] == Decimal("3.45")
    (sales,) = [r.row for r in rows if r.table == "category_sales_1m"]
    assert (sales["orders"], sales["gmv"]) == (3, Decimal("3.45"))


def test_page_load_histogram_matches_per_event_observe() -> None:
    loads = [0, 1, 499, 500, 501, 2500, 2501, 7500, 19_999, 20_000, 20_001, 600_000]
    totals = Totals()
    clicks = [event("clicks", n, load_ms=ms) for n, ms in enumerate(loads)]
    Pipeline(totals).process("clicks", clicks, T0)

    expected = Totals()
    for ms in loads:
        expected.observe("salewatch_page_load_seconds", ("detail", "app"), ms / 1000)
    (got,) = totals.histograms["salewatch_page_load_seconds"].values()
    (want,) = expected.histograms["salewatch_page_load_seconds"].values()
    assert got.bucket_counts == want.bucket_counts
    assert got.count == want.count
    assert got.sum == pytest.approx(want.sum)


def test_page_view_without_load_time_is_not_observed() -> None:
    totals = Totals()
    Pipeline(totals).process("clicks", [event("clicks", load_ms=DROP)], T0)
    assert "salewatch_page_load_seconds" not in totals.histograms


# ------------------------------------------------------------------ late and duplicate


@pytest.mark.parametrize(
    ("dt", "now", "late"),
    [
        pytest.param(59_999, 3 * MIN - 1, False, id="within lateness"),
        pytest.param(59_999, 3 * MIN, True, id="window end + lateness reached"),
        pytest.param(60_000, 3 * MIN, False, id="next window: still open"),
        pytest.param(0, 60 * MIN, True, id="an hour late"),
    ],
)
def test_late_event_counts_only_as_late(dt: int, now: int, late: bool) -> None:
    totals = Totals()
    p = Pipeline(totals, lateness_ms=LATENESS)
    p.process("clicks", [event("clicks", dt=dt)], T0 + now)
    snapshot = counters(totals)
    if late:
        assert snapshot == {"salewatch_events_late_total": {("clicks",): 1.0}}
        assert len(p.windows) == 0
    else:
        assert "salewatch_events_late_total" not in snapshot
        assert snapshot["salewatch_page_views_total"] == {("app", "search", "detail"): 1.0}


def test_event_of_an_already_emitted_window_is_late() -> None:
    totals = Totals()
    p = Pipeline(totals)
    p.process("clicks", [event("clicks", 1)], T0)
    assert p.close_windows(T0 + 3 * MIN)
    p.process("clicks", [event("clicks", 2, dt=30_000)], T0)  # an older clock changes nothing
    assert totals.values["salewatch_events_late_total"] == {("clicks",): 1.0}
    assert p.close_windows(T0 + 3 * MIN) == []


def test_duplicate_event_ids_count_once() -> None:
    totals = Totals()
    p = Pipeline(totals)
    view = event("clicks", 1)
    cart = event("carts", 2, dt=1000)
    p.process("clicks", [view, view], T0)
    p.process("carts", [cart], T0)
    p.process("carts", [cart], T0 + 1000)
    p.process("clicks", [view], T0 + 2000)
    snapshot = counters(totals)
    assert snapshot["salewatch_events_duplicate_total"] == {("clicks",): 2.0, ("carts",): 1.0}
    assert snapshot["salewatch_page_views_total"] == {("app", "search", "detail"): 1.0}
    assert snapshot["salewatch_cart_events_total"] == {("add_to_cart", "app"): 1.0}
    assert snapshot["salewatch_funnel_sessions_total"] == funnel("app", "cart")


def test_dedupe_memory_is_bounded() -> None:
    totals = Totals()
    p = Pipeline(totals, dedupe_capacity=2)
    views = [event("clicks", n) for n in range(3)]
    p.process("clicks", views, T0)
    p.process("clicks", [views[0]], T0)  # forgotten: the last 2 ids are 1 and 2
    p.process("clicks", [views[2]], T0)
    assert totals.values["salewatch_page_views_total"] == {("app", "search", "detail"): 4.0}
    assert totals.values["salewatch_events_duplicate_total"] == {("clicks",): 1.0}
    assert len(p.recent) == 2


# ------------------------------------------------------------------ windows and rows


def rows_of(rows: list[RollupRow], table: str) -> list[dict[str, Any]]:
    return [r.row for r in rows if r.table == table]


def test_window_is_emitted_by_the_timer_without_a_later_event() -> None:
    totals = Totals()
    p = Pipeline(totals)
    p.process("clicks", [event("clicks", 1, dt=59_999)], T0, partition=3)

    assert p.close_windows(T0 + 3 * MIN - 1) == []
    rows = p.close_windows(T0 + 3 * MIN)
    assert rows_of(rows, "traffic_1m") == [
        {
            "window_start": T0 // 1000,
            "worker": "p3",  # the partition's rows: any worker emitting them replaces them
            "channel": "app",
            "traffic_source": "search",
            "page_views": 1,
            "visits": 1,
            "active_users": 1,
            "version": T0 + 3 * MIN,
        }
    ]
    assert p.close_windows(T0 + 4 * MIN) == [], "each window once"
    assert totals.get("salewatch_window_closed_timestamp_seconds") == (T0 + 2 * MIN) / 1000


def test_rows_have_exactly_the_table_columns() -> None:
    p = Pipeline(Totals())
    for topic, overrides, _ in (c.values for c in CASES):
        p.process(topic, [event(topic, hash(str(overrides)), **overrides)], T0)
    rows = p.close_windows(T0 + 3 * MIN)
    assert {r.table for r in rows} == set(ROLLUP_COLUMNS)
    for r in rows:
        assert tuple(r.row) == ROLLUP_COLUMNS[r.table]


def test_event_boundaries_split_windows() -> None:
    p = Pipeline(Totals())
    p.process("tickets", [event("tickets", 1, dt=59_999), event("tickets", 2, dt=60_000)], T0)
    rows = rows_of(p.close_windows(T0 + 10 * MIN), "tickets_1m")
    assert [(r["window_start"], r["tickets"]) for r in rows] == [
        (T0 // 1000, 1),
        (T0 // 1000 + 60, 1),
    ]


def test_funnel_rows_are_in_the_window_of_the_step() -> None:
    p = Pipeline(Totals())
    p.process("clicks", [event("clicks", 1, page_type="home")], T0)
    p.process("carts", [event("carts", 2, dt=MIN + 5)], T0 + MIN)
    rows = rows_of(p.close_windows(T0 + 10 * MIN), "funnel_1m")
    got = {(r["window_start"] - T0 // 1000, r["step"]): r["sessions"] for r in rows}
    assert got == {(0, "visit"): 1, (60, "detail"): 1, (60, "cart"): 1}


# ------------------------------------------------------------------ distinct users


def page_views(users_by_channel: dict[str, list[str]], dt: int, first_id: int) -> list[Any]:
    out = []
    n = first_id
    for channel, users in users_by_channel.items():
        for user in users:
            out.append(event("clicks", n, dt=dt, channel=channel, user_id=user))
            n += 1
    return out


def gauges(totals: Totals, minutes: int) -> dict[str, float]:
    return {lbl[0]: v for lbl, v in totals.values[f"salewatch_active_users_{minutes}m"].items()}


def test_active_users_1m_exact_and_sliding_unions() -> None:
    totals = Totals()
    p = Pipeline(totals)
    p.process("clicks", page_views({"app": ["u1", "u2", "u1"], "web": ["u3"]}, 0, 0), T0)
    p.process("clicks", page_views({"app": ["u1"], "h5": ["u4", "u3"]}, MIN, 10), T0 + MIN)
    p.close_windows(T0 + 4 * MIN)  # closes both windows

    zero = dict.fromkeys(["app", "web", "h5", "mini_program", "other", "all"], 0.0)
    assert gauges(totals, 1) == {**zero, "app": 1, "h5": 2, "all": 3}
    assert gauges(totals, 5) == {**zero, "app": 2, "web": 1, "h5": 2, "all": 4}
    assert gauges(totals, 15) == gauges(totals, 5)

    p.close_windows(T0 + 8 * MIN)  # no events since: the 1-minute count drops to 0
    assert gauges(totals, 1) == zero
    assert gauges(totals, 5) == {**zero, "app": 1, "h5": 2, "all": 3}, "only minute 1 left"
    p.close_windows(T0 + 30 * MIN)
    assert gauges(totals, 15) == zero


def test_active_users_in_traffic_rows_are_per_source() -> None:
    p = Pipeline(Totals())
    views = [
        event("clicks", 1, user_id="u1", traffic_source="ads"),
        event("clicks", 2, user_id="u1", traffic_source="search"),
        event("clicks", 3, user_id="u2", traffic_source="search", session_id="s-2"),
    ]
    p.process("clicks", views, T0)
    rows = rows_of(p.close_windows(T0 + 3 * MIN), "traffic_1m")
    got = {r["traffic_source"]: (r["page_views"], r["visits"], r["active_users"]) for r in rows}
    assert got == {"ads": (1, 1, 1), "search": (2, 1, 2)}


# ------------------------------------------------------------------ counters = rollups


def mixed_stream(rng: random.Random, minutes: int) -> list[tuple[Topic, dict[str, Any]]]:
    """Sessions browsing, carting and paying, with unknown labels, duplicates, disorder."""
    out: list[tuple[Topic, dict[str, Any]]] = []
    n = 0
    for s in range(400):
        t = rng.randrange(minutes * MIN)
        channel = rng.choice(["app", "web", "h5", "tv"])
        base = {"session_id": f"s{s}", "user_id": f"u{s % 150}", "channel": channel}
        for page in rng.choices(["home", "list", "detail", "weird"], k=rng.randrange(1, 6)):
            n += 1
            t += rng.randrange(20_000)
            source = rng.choice(["ads", "search", DROP, "tv"])
            load = rng.choice([DROP, rng.randrange(100, 30_000)])
            view = dict(base, page_type=page, traffic_source=source, load_ms=load)
            out.append(("clicks", event("clicks", n, dt=t, **view)))
        if rng.random() < 0.5:
            n += 1
            out.append(("carts", event("carts", n, dt=t + 1, **base)))
        if rng.random() < 0.3:
            oid = f"o{s}"
            method = rng.choice(["alipay", "card", "paypal"])
            order = dict(base, order_id=oid, payment_method=method, amount=rng.randrange(1, 999))
            n += 1
            out.append(("orders", event("orders", n, dt=t + 2, **order)))
            kind = rng.choice(["payment_succeeded", "payment_failed", "order_cancelled"])
            n += 1
            out.append(
                ("orders", event("orders", n, dt=t + 3, event_type=kind, items=DROP, **order))
            )
        if rng.random() < 0.1:
            n += 1
            out.append(("tickets", event("tickets", n, dt=t + 4, kind=rng.choice(["return", "x"]))))
    out.sort(key=lambda te: te[1]["ts"] + rng.randrange(-30_000, 30_000))  # some disorder
    out += rng.sample(out, 30)  # redelivered duplicates
    return out


def test_every_counter_equals_the_sum_of_its_rollup_rows() -> None:
    rng = random.Random(4)
    totals = Totals()
    p = Pipeline(totals)
    rows: list[RollupRow] = []
    stream = mixed_stream(rng, minutes=20)
    for i in range(0, len(stream), 50):
        batch = stream[i : i + 50]
        now = max(e["ts"] for _, e in batch) + 45_000  # a clock that makes a few events late
        for topic in ("clicks", "carts", "orders", "tickets"):
            events = [e for t, e in batch if t == topic]
            if events:
                p.process(topic, events, now)
        rows += p.close_windows(now)
    rows += p.close_windows(T0 + 24 * 60 * MIN)
    c = counters(totals)
    assert c["salewatch_events_late_total"], "the stream has late events"
    assert c["salewatch_events_duplicate_total"], "the stream has duplicates"

    def summed(table: str, dims: tuple[str, ...], measure: str) -> dict[tuple[str, ...], Any]:
        out: dict[tuple[str, ...], Any] = defaultdict(int)
        for row in rows_of(rows, table):
            out[tuple(row[d] for d in dims)] += row[measure]
        return {k: v for k, v in out.items() if v}  # a row may be zero in one measure

    def metric(name: str, keep: tuple[int, ...] | None = None) -> dict[tuple[str, ...], Any]:
        out: dict[tuple[str, ...], Any] = defaultdict(float)
        for labels, v in c.get(name, {}).items():
            out[labels if keep is None else tuple(labels[i] for i in keep)] += v
        return dict(out)

    assert summed("traffic_1m", ("channel", "traffic_source"), "page_views") == metric(
        "salewatch_page_views_total", (0, 1)
    )
    assert summed("page_load_1m", ("channel", "page_type"), "page_views") == metric(
        "salewatch_page_views_total", (0, 2)
    )
    assert summed("traffic_1m", ("channel", "traffic_source"), "visits") == metric(
        "salewatch_sessions_started_total"
    )
    assert summed("funnel_1m", ("step", "channel"), "sessions") == metric(
        "salewatch_funnel_sessions_total"
    )
    assert summed("cart_events_1m", ("event_type", "channel"), "events") == metric(
        "salewatch_cart_events_total"
    )
    order_dims = ("event_type", "channel", "payment_method", "region")
    assert summed("orders_1m", order_dims, "orders") == metric("salewatch_orders_total")
    assert summed(
        "payment_failures_1m", ("payment_method", "region", "failure_reason"), "failures"
    ) == metric("salewatch_payment_failures_total")
    gmv = summed("category_sales_1m", ("channel", "category"), "gmv")
    created = {
        (ch, cat): v
        for (et, ch, cat), v in metric("salewatch_order_amount_total").items()
        if et == "order_created"
    }
    assert {k: float(v) for k, v in gmv.items()} == pytest.approx(created)
    assert summed("tickets_1m", ("event_type", "kind", "reason"), "tickets") == metric(
        "salewatch_ticket_events_total"
    )
    buckets: dict[tuple[str, ...], list[int]] = {}
    for row in rows_of(rows, "page_load_1m"):
        key = (row["page_type"], row["channel"])
        current = buckets.get(key, [0] * len(row["load_ms_buckets"]))
        buckets[key] = [a + b for a, b in zip(current, row["load_ms_buckets"], strict=True)]
    histograms = totals.histograms["salewatch_page_load_seconds"]
    assert {k: v for k, v in buckets.items() if any(v)} == {
        k: h.bucket_counts for k, h in histograms.items()
    }


# ------------------------------------------------------------------ memory


def test_memory_is_flat_after_windows_and_sessions_expire() -> None:
    rng = random.Random(1)
    p = Pipeline(Totals())
    for minute in range(180):
        now = T0 + minute * MIN
        clicks = [
            event("clicks", minute * 100 + i, dt=minute * MIN + i, session_id=f"s{minute}-{i % 7}")
            for i in range(20)
        ]
        orders = [event("orders", minute * 100 + 50, dt=minute * MIN, order_id=f"o{minute}")]
        p.process("clicks", clicks, now)
        p.process("orders", orders, now)
        p.close_windows(now + rng.randrange(MIN))
        assert len(p.windows) <= 4
        assert len(p.active_users) <= 15

    p.close_windows(T0 + 180 * MIN + 40 * MIN)
    assert len(p.windows) == 0
    assert list(p.sessions.store.items()) == []
    assert isinstance(p.sessions.store, MemorySessionStore)
    assert p.sessions.store.filings() == 0
    assert len(p.classifier.order_categories) == 0
    assert p.classifier.order_categories.filings() == 0
    assert len(p.active_users) <= 15


# ------------------------------------------------------------------ configuration


def test_from_settings_takes_lateness_and_regions() -> None:
    settings = Settings(allowed_lateness_s=300, regions=["US-CA"])
    totals = Totals()
    p = Pipeline.from_settings(settings, totals)
    p.process("orders", [event("orders", 1, region="US-CA"), event("orders", 2)], T0 + 5 * MIN)
    assert p.windows.lateness_ms == 300_000
    assert set(totals.values["salewatch_orders_total"]) == {
        ("order_created", "app", "alipay", "US-CA"),
        ("order_created", "app", "alipay", "other"),
    }


def test_unknown_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        Pipeline(Totals()).process("payments", [], T0)  # type: ignore[arg-type]
