"""Taobao UserBehavior CSV → EVENTS.md events: mapping, sessions, invented fields."""

from __future__ import annotations

from typing import Any

import pytest

from streams.convert.taobao import ConvertStats, convert
from streams.events.contract import Topic
from streams.events.decode import Limits, validate_event

T = 1_511_658_000  # 2017-11-26 01:00:00 UTC, seconds as in the data
GAP = 30 * 60  # seconds: 30 minutes of inactivity ends a session


def run(csv: str, seed: int = 0) -> tuple[list[tuple[Topic, dict[str, Any]]], ConvertStats]:
    stats = ConvertStats()
    events = list(convert(csv.strip().splitlines(), seed, stats))
    return events, stats


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        pytest.param("pv", [("clicks", "page_view")], id="pv-is-a-detail-page-view"),
        pytest.param("fav", [("clicks", "click")], id="fav-is-a-click-not-a-view"),
        pytest.param("cart", [("carts", "add_to_cart")], id="cart"),
        pytest.param(
            "buy",
            [("orders", "order_created"), ("orders", "payment_succeeded")],
            id="buy-is-an-order-and-its-payment",
        ),
    ],
)
def test_each_behaviour_becomes_its_events(behaviour: str, expected: list[tuple[str, str]]) -> None:
    events, _ = run(f"100,7,42,{behaviour},{T}")
    assert [(topic, e["event_type"]) for topic, e in events] == expected
    for topic, event in events:
        assert validate_event(event, topic, T * 1000, Limits()) is event
        assert (event["ts"], event["user_id"]) == (T * 1000, "100")
        item = event["items"][0] if "items" in event else event
        assert item.get("item_id", "7") == "7"


def test_views_are_detail_pages_of_the_item() -> None:
    ((_, event),) = run(f"100,7,42,pv,{T}")[0]
    assert (event["page_type"], event["item_id"], event["category"]) == ("detail", "7", "42")
    assert "load_ms" not in event and "traffic_source" not in event


def test_an_order_and_its_payment_share_order_amount_and_method() -> None:
    (_, created), (_, paid) = run(f"100,7,42,buy,{T}")[0]
    for key in ("order_id", "amount", "currency", "payment_method", "session_id"):
        assert created[key] == paid[key]
    assert created["items"] == [
        {"item_id": "7", "category": "42", "quantity": 1, "price": created["amount"]}
    ]
    assert created["event_id"] != paid["event_id"]


@pytest.mark.parametrize(
    ("gap_s", "sessions"),
    [
        pytest.param(GAP - 1, 1, id="29m59s-continues"),
        pytest.param(GAP, 2, id="30m-starts-a-new-session"),
        pytest.param(3 * GAP, 2, id="long-gap"),
    ],
)
def test_sessions_end_after_30_minutes_of_inactivity(gap_s: int, sessions: int) -> None:
    events, stats = run(f"100,7,42,pv,{T}\n100,8,42,cart,{T + gap_s}")
    assert len({e["session_id"] for _, e in events}) == sessions == stats.sessions


def test_sessions_are_per_user_and_use_the_latest_activity() -> None:
    csv = "\n".join(
        [
            f"1,7,42,pv,{T}",
            f"2,7,42,pv,{T + 100}",
            f"1,7,42,pv,{T + GAP - 10}",  # continues user 1's session
            f"1,7,42,buy,{T + 2 * GAP - 20}",  # 29m50s after the last: still the same
            f"2,7,42,pv,{T + GAP + 100}",  # user 2: exactly 30 minutes: new session
        ]
    )
    events, stats = run(csv)
    by_user: dict[str, list[str]] = {}
    for _, e in events:
        by_user.setdefault(e["user_id"], []).append(e["session_id"])
    assert len(set(by_user["1"])) == 1
    assert len(set(by_user["2"])) == 2
    assert (stats.sessions, stats.users) == (3, 2)


def test_rows_are_put_in_time_order_stably() -> None:
    events, _ = run(f"1,7,42,pv,{T + 5}\n2,7,42,pv,{T}\n3,7,42,fav,{T}")
    assert [e["user_id"] for _, e in events] == ["2", "3", "1"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        pytest.param("1,7,42,pv", "wrong_field_count", id="missing-field"),
        pytest.param(f"1,7,42,pv,{T},x", "wrong_field_count", id="extra-field"),
        pytest.param(f"1,7,42,like,{T}", "unknown_behaviour", id="unknown-behaviour"),
        pytest.param("1,7,42,pv,2017-11-26", "bad_timestamp", id="bad-timestamp"),
        pytest.param(f",7,42,pv,{T}", "missing_id", id="no-user"),
    ],
)
def test_bad_rows_are_skipped_and_counted(row: str, reason: str) -> None:
    events, stats = run(f"{row}\n5,7,42,pv,{T}")
    assert len(events) == 1
    assert dict(stats.skipped) == {reason: 1}
    assert stats.rows == 2


def test_ids_are_unique_and_stable() -> None:
    csv = "\n".join(f"{u},{u * 3},42,{b},{T + u}" for u in range(1, 40) for b in ("pv", "buy"))
    first, _ = run(csv)
    again, _ = run(csv)
    ids = [e["event_id"] for _, e in first]
    assert len(ids) == len(set(ids))
    assert first == again


def test_invented_fields_follow_the_seed_per_entity() -> None:
    csv = "\n".join(f"{u % 5},{u % 3},42,buy,{T + u}" for u in range(60))
    events, _ = run(csv, seed=1)
    per_user: dict[str, set[tuple[str, str]]] = {}
    per_item: dict[str, set[float]] = {}
    for _, e in events:
        per_user.setdefault(e["user_id"], set()).add((e["channel"], e["region"]))
        per_item.setdefault(e["items"][0]["item_id"] if "items" in e else "", set()).add(
            e["amount"]
        )
    assert all(len(v) == 1 for v in per_user.values())  # a user keeps channel and region
    assert all(len(v) == 1 for k, v in per_item.items() if k)  # an item keeps its price
    other_seed, _ = run(csv, seed=2)
    assert [e["amount"] for _, e in events] != [e["amount"] for _, e in other_seed]
    prices = {e["amount"] for _, e in events}
    assert all(p > 0 and round(p * 10) % 10 == 9 for p in prices)  # shop prices end in .9
