"""The recap's SQL: one function per question, over the raw tables read with ``FINAL``.

Every query is bounded by the recap window ``[from_s, to_s)`` on ``event_time`` (the
tables' sort key after ``event_type``), except where the question needs history: buyers'
earlier orders (``LOOKBACK_DAYS`` before the window) and repurchases (``REPURCHASE_DAYS``
after it). Exact distinct counts (``uniqExact``) over deduplicated rows, because these
numbers are reported and compared; the dashboards' HyperLogLog estimates are not.

Written for ClickHouse 18.16 and current ClickHouse alike: no window functions, no
``WITH FILL``, no ``toStartOfInterval``, no ``JSONExtract``, no ``DateTime64``; ``JOIN``
only ``ALL INNER``/``ALL LEFT`` ``USING``; Decimal sums are returned as strings (exact in
any client) and 64-bit integers cast where a client might quote them.
"""

from __future__ import annotations

DAY_S = 86_400
LOOKBACK_DAYS = 365
REPURCHASE_DAYS = (1, 7)
PAID = "event_type = 'payment_succeeded'"


def window(from_s: int, to_s: int, column: str = "event_time") -> str:
    return f"{column} >= toDateTime({from_s}) AND {column} < toDateTime({to_s})"


def headline(from_s: int, to_s: int) -> str:
    """Paid GMV (exact, as a string), paid orders, paid sessions, buyers."""
    return f"""SELECT
    toString(sum(amount)) AS gmv_paid,
    toUInt32(uniqExact(order_id)) AS orders_paid,
    toUInt32(uniqExact(session_id)) AS paid_sessions,
    toUInt32(uniqExact(user_id)) AS buyers
FROM orders_raw FINAL
WHERE {PAID} AND {window(from_s, to_s)}"""


def visit_sessions(from_s: int, to_s: int) -> str:
    return f"""SELECT toUInt32(uniqExact(session_id)) AS visit_sessions
FROM clicks_raw FINAL
WHERE event_type = 'page_view' AND {window(from_s, to_s)}"""


def tickets_opened(from_s: int, to_s: int) -> str:
    return f"""SELECT toUInt32(uniqExact(ticket_id)) AS tickets
FROM tickets_raw FINAL
WHERE event_type = 'ticket_opened' AND {window(from_s, to_s)}"""


def paid_per_minute(from_s: int, to_s: int) -> str:
    """(minute start in epoch seconds, paid GMV as a string) for every minute with a sale."""
    return f"""SELECT
    toUInt32(toStartOfMinute(event_time)) AS minute,
    toString(sum(amount)) AS gmv
FROM orders_raw FINAL
WHERE {PAID} AND {window(from_s, to_s)}
GROUP BY minute
ORDER BY minute"""


def funnel_by_channel(from_s: int, to_s: int) -> str:
    """Sessions per funnel step and channel: each session's deepest step (EVENTS.md: a
    later step implies the earlier ones), the session's channel its first event's. One
    branch per step with a constant depth: 18.16 finds no common type for ``if()`` over a
    LowCardinality column across UNION ALL branches."""
    w = window(from_s, to_s)
    return f"""SELECT
    channel,
    toUInt32(countIf(depth >= 1)) AS visit,
    toUInt32(countIf(depth >= 2)) AS detail,
    toUInt32(countIf(depth >= 3)) AS cart,
    toUInt32(countIf(depth >= 4)) AS checkout,
    toUInt32(countIf(depth >= 5)) AS paid
FROM
(
    SELECT session_id, argMin(channel, ts_ms) AS channel, max(depth) AS depth
    FROM
    (
        SELECT session_id, toString(channel) AS channel, ts_ms, toUInt8(1) AS depth
        FROM clicks_raw FINAL WHERE event_type = 'page_view' AND page_type != 'detail' AND {w}
        UNION ALL
        SELECT session_id, toString(channel) AS channel, ts_ms, toUInt8(2) AS depth
        FROM clicks_raw FINAL WHERE event_type = 'page_view' AND page_type = 'detail' AND {w}
        UNION ALL
        SELECT session_id, toString(channel) AS channel, ts_ms, toUInt8(3) AS depth
        FROM carts_raw FINAL WHERE event_type = 'add_to_cart' AND {w}
        UNION ALL
        SELECT session_id, toString(channel) AS channel, ts_ms, toUInt8(4) AS depth
        FROM orders_raw FINAL WHERE event_type = 'order_created' AND {w}
        UNION ALL
        SELECT session_id, toString(channel) AS channel, ts_ms, toUInt8(5) AS depth
        FROM orders_raw FINAL WHERE event_type = 'payment_succeeded' AND {w}
    )
    GROUP BY session_id
)
GROUP BY channel
ORDER BY visit DESC, channel"""


def payment_success_by_method(from_s: int, to_s: int) -> str:
    return f"""SELECT
    toString(payment_method) AS payment_method,
    toUInt32(uniqExactIf(order_id, event_type = 'payment_succeeded')) AS succeeded,
    toUInt32(countIf(event_type = 'payment_failed')) AS failed
FROM orders_raw FINAL
WHERE event_type IN ('payment_succeeded', 'payment_failed') AND {window(from_s, to_s)}
GROUP BY payment_method
ORDER BY payment_method"""


def page_speed_by_page_type(from_s: int, to_s: int) -> str:
    """p75 of the page load time (LCP) of measured page views; NULL = not measured."""
    return f"""SELECT
    toString(page_type) AS page_type,
    toUInt32(count(load_ms)) AS measured_views,
    toFloat64(quantileExact(0.75)(load_ms)) AS p75_ms
FROM clicks_raw FINAL
WHERE event_type = 'page_view' AND load_ms IS NOT NULL AND {window(from_s, to_s)}
GROUP BY page_type
ORDER BY page_type"""


def _buyers(from_s: int, to_s: int) -> str:
    return f"SELECT user_id FROM orders_raw FINAL WHERE {PAID} AND {window(from_s, to_s)}"


def returning_buyers(from_s: int, to_s: int) -> str:
    """Buyers of the window who had paid before it (up to ``LOOKBACK_DAYS`` back)."""
    before = window(from_s - LOOKBACK_DAYS * DAY_S, from_s)
    return f"""SELECT toUInt32(uniqExact(user_id)) AS returning_buyers
FROM orders_raw FINAL
WHERE {PAID} AND {before} AND user_id IN ({_buyers(from_s, to_s)})"""


def repurchase(from_s: int, to_s: int) -> str:
    """For the window's new buyers (no paid order in the lookback): how many paid another
    order within 1 and within 7 days of their first paid order of the window, and the
    latest first purchase (to tell whether the data reaches far enough)."""
    before = window(from_s - LOOKBACK_DAYS * DAY_S, from_s)
    after = window(from_s, to_s + max(REPURCHASE_DAYS) * DAY_S + 1)
    d1, d7 = (days * DAY_S * 1000 for days in REPURCHASE_DAYS)
    return f"""SELECT
    toUInt32(uniqExact(user_id)) AS new_buyers,
    toUInt32(uniqExactIf(user_id, order_id != first_order AND ts_ms >= first_ms
        AND ts_ms <= first_ms + {d1})) AS repurchased_d1,
    toUInt32(uniqExactIf(user_id, order_id != first_order AND ts_ms >= first_ms
        AND ts_ms <= first_ms + {d7})) AS repurchased_d7,
    toInt64(max(first_ms)) AS last_first_ms
FROM
(
    SELECT user_id, min(ts_ms) AS first_ms, argMin(order_id, ts_ms) AS first_order
    FROM orders_raw FINAL
    WHERE {PAID} AND {window(from_s, to_s)}
        AND user_id NOT IN (SELECT user_id FROM orders_raw FINAL WHERE {PAID} AND {before})
    GROUP BY user_id
) AS first_buys
ALL INNER JOIN
(
    SELECT user_id, order_id, ts_ms
    FROM orders_raw FINAL
    WHERE {PAID} AND {after}
) AS later_buys USING user_id"""


def data_until(from_s: int, to_s: int) -> str:
    """The newest paid order within the repurchase horizon: how far the data reaches."""
    after = window(from_s, to_s + max(REPURCHASE_DAYS) * DAY_S + 1)
    return f"""SELECT toInt64(max(ts_ms)) AS data_until_ms
FROM orders_raw FINAL
WHERE {PAID} AND {after}"""


def buyers_rfm(from_s: int, to_s: int) -> str:
    """Per buyer of the window, as of the window's end, over the lookback and the window:
    last paid order (epoch ms), paid orders, paid amount (string)."""
    span = window(from_s - LOOKBACK_DAYS * DAY_S, to_s)
    return f"""SELECT
    user_id,
    toInt64(max(ts_ms)) AS last_ms,
    toUInt32(uniqExact(order_id)) AS orders,
    toString(sum(amount)) AS amount
FROM orders_raw FINAL
WHERE {PAID} AND {span} AND user_id IN ({_buyers(from_s, to_s)})
GROUP BY user_id
ORDER BY user_id"""


def all_queries(from_s: int, to_s: int) -> dict[str, str]:
    """Every query of a recap by name (tests run each on 18.16 and on chdb)."""
    return {
        "headline": headline(from_s, to_s),
        "visit_sessions": visit_sessions(from_s, to_s),
        "tickets_opened": tickets_opened(from_s, to_s),
        "paid_per_minute": paid_per_minute(from_s, to_s),
        "funnel_by_channel": funnel_by_channel(from_s, to_s),
        "payment_success_by_method": payment_success_by_method(from_s, to_s),
        "page_speed_by_page_type": page_speed_by_page_type(from_s, to_s),
        "returning_buyers": returning_buyers(from_s, to_s),
        "repurchase": repurchase(from_s, to_s),
        "data_until": data_until(from_s, to_s),
        "buyers_rfm": buyers_rfm(from_s, to_s),
    }
