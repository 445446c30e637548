"""Taobao ``UserBehavior`` clickstream → EVENTS.md events.

Input: CSV rows ``user_id,item_id,category_id,behavior_type,timestamp`` without a header
(Tianchi "UserBehavior" data set; ``timestamp`` in Unix seconds, ``behavior_type`` one of
``pv``, ``cart``, ``fav``, ``buy``). Rows are put in time order (a stable sort: rows of
one second keep their file order) before sessions are cut.

What each row becomes (topic, event):

* ``pv`` → clicks ``page_view`` with ``page_type=detail`` (every row is a view of an item);
* ``fav`` → clicks ``click`` on the item's detail page (a favourite: session activity, no
  funnel step, not a page view);
* ``cart`` → carts ``add_to_cart``, quantity 1;
* ``buy`` → orders ``order_created`` and ``payment_succeeded`` (same time, one order per
  row, quantity 1): the data only records completed purchases.

Taken from the data: ``user_id``, ``item_id``, ``category`` (the numeric ``category_id``
as a string: no top-level category is known, so it counts as ``other``) and the time.
Derived: ``session_id`` — a user's rows form one session until a gap of 30 minutes or
more (EVENTS.md), named ``tb-<user>-<first ts>``; ``event_id`` ``tb<row>`` (``-pay`` for
the payment), ``order_id`` ``tb-o<row>``, where ``<row>`` is the 1-based line number.

INVENTED (seeded by ``--seed``, deterministic per user/item/order, see
``streams.convert.invented``): ``channel`` and ``region`` per user, ``price`` per item
(CNY, log-normal around 79), ``payment_method`` per order, ``currency`` CNY. Not
invented, so absent: ``load_ms`` (no page-speed numbers), ``traffic_source`` (counts as
``other``), payment failures, cancels, refunds and tickets (not in the data).

Bad rows (wrong number of fields, a non-integer timestamp, an unknown behaviour) are
skipped and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.convert.invented import Invented
from streams.counting.funnel import SESSION_TIMEOUT_MS
from streams.events.contract import SCHEMA_VERSION, Topic

BEHAVIOURS = ("pv", "cart", "fav", "buy")
CURRENCY = "CNY"


class Row(NamedTuple):
    line: int  # 1-based line number in the file
    user: str
    item: str
    category: str
    behaviour: str
    ts_ms: int


@dataclass
class ConvertStats:
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    behaviours: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    users: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "skipped": dict(self.skipped),
            "behaviours": dict(self.behaviours),
            "events": dict(self.events),
            "sessions": self.sessions,
            "users": self.users,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
        }


def parse_rows(lines: Iterable[str], stats: ConvertStats) -> list[Row]:
    """Valid rows in time order (stable); bad ones counted in ``stats.skipped``."""
    rows: list[Row] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        stats.rows += 1
        fields = text.split(",")
        if len(fields) != 5:
            stats.skipped["wrong_field_count"] += 1
            continue
        user, item, category, behaviour, ts = (f.strip() for f in fields)
        if behaviour not in BEHAVIOURS:
            stats.skipped["unknown_behaviour"] += 1
            continue
        if not ts.isdigit():
            stats.skipped["bad_timestamp"] += 1
            continue
        if not user or not item:
            stats.skipped["missing_id"] += 1
            continue
        rows.append(Row(number, user, item, category, behaviour, int(ts) * 1000))
    rows.sort(key=lambda r: r.ts_ms)
    return rows


def convert_rows(
    rows: Iterable[Row], invented: Invented, stats: ConvertStats
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """Events of time-ordered ``rows``, in time order."""
    # user -> (session id, last activity): a gap of 30 minutes or more starts a session
    sessions: dict[str, tuple[str, int]] = {}
    for row in rows:
        user, ts = row.user, row.ts_ms
        current = sessions.get(user)
        if current is None or ts - current[1] >= SESSION_TIMEOUT_MS:
            session_id = f"tb-{user}-{ts}"
            stats.sessions += 1
        else:
            session_id = current[0]
        sessions[user] = (session_id, ts)
        stats.behaviours[row.behaviour] += 1
        if stats.first_ms is None:
            stats.first_ms = ts
        stats.last_ms = ts
        base: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"tb{row.line}",
            "event_type": "",
            "ts": ts,
            "user_id": user,
            "session_id": session_id,
            "channel": invented.channel(user),
            "region": invented.region(user),
        }
        for topic, event in _events(row, base, invented):
            stats.events[event["event_type"]] += 1
            yield topic, event
    stats.users = len(sessions)


def _events(
    row: Row, base: dict[str, Any], invented: Invented
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    item = {"item_id": row.item, "category": row.category}
    if row.behaviour in ("pv", "fav"):
        event_type = "page_view" if row.behaviour == "pv" else "click"
        yield "clicks", {**base, "event_type": event_type, "page_type": "detail", **item}
        return
    price = invented.price(row.item)
    if row.behaviour == "cart":
        yield "carts", {**base, "event_type": "add_to_cart", **item, "quantity": 1, "price": price}
        return
    order = {
        "order_id": f"tb-o{row.line}",
        "amount": price,
        "currency": CURRENCY,
        "payment_method": invented.payment_method(f"tb-o{row.line}"),
    }
    items = [{**item, "quantity": 1, "price": price}]
    yield "orders", {**base, "event_type": "order_created", **order, "items": items}
    paid = {**base, "event_id": f"tb{row.line}-pay", "event_type": "payment_succeeded"}
    yield "orders", {**paid, **order}


def convert(
    lines: Iterable[str], seed: int = 0, stats: ConvertStats | None = None
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """CSV lines → ``(topic, event)`` in time order; ``stats`` is filled as it goes."""
    stats = stats if stats is not None else ConvertStats()
    rows = parse_rows(lines, stats)
    return convert_rows(rows, Invented(seed), stats)
