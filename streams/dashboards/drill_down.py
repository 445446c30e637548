"""Drill-down: where did the money (not) come from, from ClickHouse.

GMV and orders by hour, channel, category and region; ticket reasons; payment success and
failures by method and reason read the **1-minute rollups** (``orders_1m``,
``category_sales_1m``, ``tickets_1m``, ``payment_failures_1m``; ``FINAL``, summed over the
``worker`` column), so a 24-hour range refreshed every minute reads a few thousand rows,
not every raw event of the day. Only what no rollup holds reads the raw tables, bounded to
the last hour of the range: top items (order items) and the Core Web Vitals p75 (INP, CLS
and TTFB are not in ``page_load_1m``).

Every query runs on ClickHouse 18.16 (the local stack) and current ClickHouse
(docker-compose): no window functions, no ``toStartOfInterval``, only the plugin macros
``$__timeFilter`` / ``$__fromTime`` / ``$__toTime`` (``tests.unit.dashboards.macros``). Tables
are unqualified: the data source's default database is ``salewatch``. Category, as in the
``salewatch_order_amount_total`` metric, is the top-level category of an order's first item.
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
CREATED = "event_type = 'order_created' AND $__timeFilter(window_start)"
# raw tables: the last hour of the range at most
LAST_HOUR = "event_time >= greatest($__fromTime, $__toTime - 3600) AND event_time <= $__toTime"

GMV_BY_HOUR_AND_CHANNEL = f"""SELECT
    toStartOfHour(window_start) AS time,
    channel,
    toFloat64(sum(amount)) AS gmv
FROM orders_1m FINAL
WHERE {CREATED}
GROUP BY time, channel
ORDER BY time, channel"""

ORDERS_BY_HOUR_AND_CHANNEL = f"""SELECT
    toStartOfHour(window_start) AS time,
    channel,
    sum(orders) AS orders
FROM orders_1m FINAL
WHERE {CREATED}
GROUP BY time, channel
ORDER BY time, channel"""


def _by(column: str) -> str:
    return f"""SELECT
    {column},
    sum(orders) AS orders,
    toFloat64(sum(amount)) AS gmv,
    round(gmv / orders, 2) AS average_order_value
FROM orders_1m FINAL
WHERE {CREATED}
GROUP BY {column}
ORDER BY gmv DESC"""


BY_CATEGORY = """SELECT
    category AS top_category,
    sum(orders) AS orders,
    toFloat64(sum(gmv)) AS gmv_created,
    round(gmv_created / orders, 2) AS average_order_value,
    toFloat64(sum(paid_amount)) AS paid
FROM category_sales_1m FINAL
WHERE $__timeFilter(window_start)
GROUP BY top_category
ORDER BY gmv_created DESC"""

TOP_ITEMS = f"""SELECT
    items.item_id AS item,
    any(items.category) AS item_category,
    sum(items.quantity) AS units,
    uniqExact(order_id) AS orders,
    toFloat64(sum(items.price * items.quantity)) AS item_value
FROM orders_raw FINAL
ARRAY JOIN items
WHERE event_type = 'order_created' AND {LAST_HOUR}
GROUP BY item
ORDER BY item_value DESC
LIMIT 25"""

TICKET_REASONS = """SELECT
    kind,
    reason,
    sum(tickets) AS tickets
FROM tickets_1m FINAL
WHERE event_type = 'ticket_opened' AND $__timeFilter(window_start)
GROUP BY kind, reason
ORDER BY tickets DESC"""

PAYMENT_FAILURES = """SELECT
    payment_method,
    failure_reason,
    sum(failures) AS failures
FROM payment_failures_1m FINAL
WHERE $__timeFilter(window_start)
GROUP BY payment_method, failure_reason
ORDER BY failures DESC"""

PAYMENT_SUCCESS_BY_METHOD = """SELECT
    payment_method,
    sumIf(orders, event_type = 'payment_succeeded') AS succeeded,
    sumIf(orders, event_type = 'payment_failed') AS failed,
    round(succeeded / (succeeded + failed), 4) AS success_ratio
FROM orders_1m FINAL
WHERE event_type IN ('payment_succeeded', 'payment_failed') AND $__timeFilter(window_start)
GROUP BY payment_method
ORDER BY failed DESC"""

# page views that carry any vital (the collector's, or an SDK's); NULL = not measured, which
# quantile() skips, so each p75 is over the page views that measured that vital
WEB_VITALS_BY_PAGE_TYPE = f"""SELECT
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
  AND {LAST_HOUR}
GROUP BY page_type, channel
ORDER BY measured_page_views DESC"""


def dashboard() -> dm.Dashboard:
    board = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .tags(["salewatch", "clickhouse"])
        .description("ClickHouse rollups (raw events for items and vitals, last hour)")
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
                [ch_table(BY_CATEGORY)],
                w=8,
            ),
            table_panel("GMV and orders by channel", [ch_table(_by("channel"))], w=8),
            table_panel("GMV and orders by region", [ch_table(_by("region"))], w=8),
            dashboard_builders.Row("Items, tickets, payments"),
            table_panel("Top items, last hour", [ch_table(TOP_ITEMS)], w=12, h=10),
            table_panel("Ticket reasons", [ch_table(TICKET_REASONS)], w=12, h=10),
            table_panel("Payment failures by reason", [ch_table(PAYMENT_FAILURES)], w=12),
            table_panel("Payment success by method", [ch_table(PAYMENT_SUCCESS_BY_METHOD)], w=12),
            dashboard_builders.Row("Page speed from real browsers"),
            table_panel(
                "Core Web Vitals p75 by page type and channel, last hour",
                [ch_table(WEB_VITALS_BY_PAGE_TYPE)],
                w=24,
                description="Per page view, from clicks_raw (the last hour of the range). "
                "Good / poor: LCP 2500 / 4000 ms, "
                "INP 200 / 500 ms, CLS 0.1 / 0.25, TTFB 800 / 1800 ms.",
            ),
        ],
    )
