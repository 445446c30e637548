"""Drill-down: the raw events in ClickHouse, for questions the metrics cannot answer.

GMV and orders by hour, channel, category and region; top items; ticket reasons; payment
failures by reason; Core Web Vitals p75 of page views measured in browsers. Every query
reads the raw tables with ``FINAL`` (a redelivered event counts once) and runs on
ClickHouse 18.16 (the local stack) and current ClickHouse (docker-compose): no window
functions, no ``toStartOfInterval``, only the plugin macros ``$__timeFilter`` /
``$__fromTime`` / ``$__toTime`` (``streams.dashboards.sql``). Tables are unqualified: the
data source's default database is ``salewatch``.
Category, as in the ``salewatch_order_amount_total`` metric, is the top-level category of
an order's first item.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dm

from streams.dashboards.panels import (
    assemble,
    ch_table,
    ch_time_series,
    table_panel,
    time_series_panel,
)

UID = "salewatch-drill-down"
TITLE = "Salewatch · Drill-down (ClickHouse)"
CREATED = "event_type = 'order_created' AND $__timeFilter(event_time)"

GMV_BY_HOUR_AND_CHANNEL = f"""SELECT
    toStartOfHour(event_time) AS time,
    channel,
    toFloat64(sum(amount)) AS gmv
FROM orders_raw FINAL
WHERE {CREATED}
GROUP BY time, channel
ORDER BY time, channel"""

ORDERS_BY_HOUR_AND_CHANNEL = f"""SELECT
    toStartOfHour(event_time) AS time,
    channel,
    count() AS orders
FROM orders_raw FINAL
WHERE {CREATED}
GROUP BY time, channel
ORDER BY time, channel"""


def _by(column: str, expression: str | None = None) -> str:
    select = f"{expression} AS {column}" if expression else column
    return f"""SELECT
    {select},
    count() AS orders,
    toFloat64(sum(amount)) AS gmv,
    round(gmv / orders, 2) AS average_order_value
FROM orders_raw FINAL
WHERE {CREATED}
GROUP BY {column}
ORDER BY gmv DESC"""


TOP_ITEMS = f"""SELECT
    items.item_id AS item,
    any(items.category) AS item_category,
    sum(items.quantity) AS units,
    uniqExact(order_id) AS orders,
    toFloat64(sum(items.price * items.quantity)) AS item_value
FROM orders_raw FINAL
ARRAY JOIN items
WHERE {CREATED}
GROUP BY item
ORDER BY item_value DESC
LIMIT 25"""

TICKET_REASONS = """SELECT
    kind,
    reason,
    count() AS tickets,
    uniqExact(order_id) AS orders
FROM tickets_raw FINAL
WHERE event_type = 'ticket_opened' AND $__timeFilter(event_time)
GROUP BY kind, reason
ORDER BY tickets DESC"""

PAYMENT_FAILURES = """SELECT
    payment_method,
    failure_reason,
    count() AS failures,
    uniqExact(order_id) AS orders
FROM orders_raw FINAL
WHERE event_type = 'payment_failed' AND $__timeFilter(event_time)
GROUP BY payment_method, failure_reason
ORDER BY failures DESC"""

PAYMENT_SUCCESS_BY_METHOD = """SELECT
    payment_method,
    countIf(event_type = 'payment_succeeded') AS succeeded,
    countIf(event_type = 'payment_failed') AS failed,
    round(succeeded / (succeeded + failed), 4) AS success_ratio
FROM orders_raw FINAL
WHERE event_type IN ('payment_succeeded', 'payment_failed') AND $__timeFilter(event_time)
GROUP BY payment_method
ORDER BY failed DESC"""

# page views that carry any vital (the collector's, or an SDK's); NULL = not measured, which
# quantile() skips, so each p75 is over the page views that measured that vital
WEB_VITALS_BY_PAGE_TYPE = """SELECT
    page_type,
    channel,
    count() AS measured_page_views,
    quantile(0.75)(lcp_ms) AS lcp_p75_ms,
    quantile(0.75)(inp_ms) AS inp_p75_ms,
    round(quantile(0.75)(cls), 3) AS cls_p75,
    quantile(0.75)(ttfb_ms) AS ttfb_p75_ms,
    round(countIf(inp_ms > 500) / count(inp_ms), 3) AS inp_poor_share,
    round(countIf(cls > 0.25) / count(cls), 3) AS cls_poor_share
FROM clicks_raw FINAL
WHERE event_type = 'page_view'
  AND (lcp_ms IS NOT NULL OR inp_ms IS NOT NULL OR cls IS NOT NULL OR ttfb_ms IS NOT NULL)
  AND $__timeFilter(event_time)
GROUP BY page_type, channel
ORDER BY measured_page_views DESC"""


def dashboard() -> dm.Dashboard:
    board = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .tags(["salewatch", "clickhouse"])
        .description("Raw events from ClickHouse: where did the money (not) come from?")
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .readonly()
        .link(
            dashboard_builders.DashboardLink("War room")
            .type(dm.DashboardLinkType.LINK)
            .url("/d/salewatch-war-room")
            .keep_time(True)
        )
    )
    return assemble(
        board,
        [
            dashboard_builders.Row("GMV and orders"),
            time_series_panel(
                "GMV by hour and channel",
                [ch_time_series(GMV_BY_HOUR_AND_CHANNEL)],
                unit="currencyCNY",
                w=12,
                stack=True,
            ),
            time_series_panel(
                "Orders by hour and channel",
                [ch_time_series(ORDERS_BY_HOUR_AND_CHANNEL)],
                unit="short",
                w=12,
                stack=True,
            ),
            table_panel(
                "GMV and orders by category",
                [ch_table(_by("top_category", "lower(splitByChar('/', items.category[1])[1])"))],
                w=8,
            ),
            table_panel("GMV and orders by channel", [ch_table(_by("channel"))], w=8),
            table_panel("GMV and orders by region", [ch_table(_by("region"))], w=8),
            dashboard_builders.Row("Items, tickets, payments"),
            table_panel("Top items", [ch_table(TOP_ITEMS)], w=12, h=10),
            table_panel("Ticket reasons", [ch_table(TICKET_REASONS)], w=12, h=10),
            table_panel("Payment failures by reason", [ch_table(PAYMENT_FAILURES)], w=12),
            table_panel("Payment success by method", [ch_table(PAYMENT_SUCCESS_BY_METHOD)], w=12),
            dashboard_builders.Row("Page speed from real browsers"),
            table_panel(
                "Core Web Vitals p75 by page type and channel",
                [ch_table(WEB_VITALS_BY_PAGE_TYPE)],
                w=24,
                description="Per page view, from clicks_raw. Good / poor: LCP 2500 / 4000 ms, "
                "INP 200 / 500 ms, CLS 0.1 / 0.25, TTFB 800 / 1800 ms.",
            ),
        ],
    )
