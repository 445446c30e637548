"""Panels that steer by the configured sale (``sale.toml``): paid GMV against the target
curve and the previous sale, the pace projection, top products and hot items of the last
15 minutes, bounce rate; and the sale's annotations.

Money here is **paid** GMV (amount of ``payment_succeeded``), the number the target and
``salewatch recap`` are about. Cumulative curves and the pace read the 1-minute rollup
``orders_1m`` (small: one row per minute and dimension set and worker); products, hot
items and bounces exist only in the raw tables, so those queries are bounded to the last
15 minutes (products) or the last hour of the range (bounces) and never scan a day.

The target curve is linear in time (``streams.sale``); the projection follows the previous
sale's shape: paid GMV so far × previous sale's total / previous sale's GMV at the same
minute since its start. SQL runs on ClickHouse 18.16 and current ClickHouse: cumulative
sums are ``arrayCumSum`` over a sorted ``groupArray`` (no window functions).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from streams.dashboards.panels import (
    PROMETHEUS,
    Item,
    ch_table,
    ch_time_series,
    stat_panel,
    table_panel,
    time_series_panel,
)
from streams.dashboards.variables import sql_filter
from streams.sale import Sale

ORDER_FILTERS = sql_filter("channel", "region", "payment_method")
CLICK_FILTERS = sql_filter("channel", "region")
PAID = f"event_type = 'payment_succeeded' AND {ORDER_FILTERS}"
LAST_15_MIN = "event_time > $__toTime - 900 AND event_time <= $__toTime"
# "so far": from the sale's start to the end of the dashboard's range, within the sale
SO_FAR_S = "least(toUInt32($__toTime), ${sale_end})"
# pace of "paid GMV vs target so far": red below 90 % of the target curve, green at or above
PACE_STEPS = ((None, "red"), (0.9, "orange"), (1.0, "green"))


def _cumulative(start: str, end: str, time_expr: str, column: str) -> str:
    """Cumulative paid GMV per minute over ``[start, end)`` (epoch-second expressions)."""
    return f"""SELECT toDateTime({time_expr}) AS time, cum AS {column}
FROM
(
    SELECT
        arraySort(groupArray((m, g))) AS minutes,
        arrayCumSum(arrayMap(x -> x.2, minutes)) AS cums
    FROM
    (
        SELECT toUInt32(window_start) AS m, toFloat64(sum(amount)) AS g
        FROM orders_1m FINAL
        WHERE {PAID}
          AND window_start >= toDateTime({start}) AND window_start < toDateTime({end})
        GROUP BY m
    )
)
ARRAY JOIN arrayMap(x -> x.1, minutes) AS minute, cums AS cum
WHERE $__timeFilter(time)
ORDER BY time"""


CUMULATIVE_GMV = _cumulative(
    "${sale_start}", "least(toUInt32($__toTime) + 1, ${sale_end})", "minute", "paid_gmv"
)
PREVIOUS_SALE_GMV = _cumulative(
    "${previous_start}",
    "${previous_start} + ${sale_end} - ${sale_start}",
    "minute - ${previous_start} + ${sale_start}",
    "previous_sale",
)
TARGET_CURVE = """SELECT
    toDateTime(${sale_start} + number * 60) AS time,
    ${gmv_target} * number * 60 / (${sale_end} - ${sale_start}) AS target
FROM numbers(100000)
WHERE number <= intDiv(${sale_end} - ${sale_start}, 60) AND $__timeFilter(time)
ORDER BY time"""


def _paid_between(start: str, end: str) -> str:
    return f"""(
        SELECT toFloat64(sum(amount)) FROM orders_1m FINAL
        WHERE {PAID}
          AND window_start >= toDateTime({start}) AND window_start < toDateTime({end})
    )"""


GMV_SO_FAR = _paid_between("${sale_start}", SO_FAR_S)
PROJECTED_GMV = f"""SELECT
    if(previous_so_far > 0, so_far * previous_total / previous_so_far, nan) AS projected_gmv
FROM
(
    SELECT
        {GMV_SO_FAR} AS so_far,
        {_paid_between("${previous_start}", f"${{previous_start}} + {SO_FAR_S} - ${{sale_start}}")}
            AS previous_so_far,
        {_paid_between("${previous_start}", "${previous_start} + ${sale_end} - ${sale_start}")}
            AS previous_total
)"""
GMV_VS_TARGET = f"""SELECT
    if(elapsed > 0, so_far / (${{gmv_target}} * elapsed / (${{sale_end}} - ${{sale_start}})), nan)
        AS vs_target
FROM
(
    SELECT
        {GMV_SO_FAR} AS so_far,
        toInt64({SO_FAR_S}) - ${{sale_start}} AS elapsed
)"""

TOP_PRODUCTS_BY_GMV = f"""SELECT
    items.item_id AS item,
    any(items.category) AS item_category,
    sum(items.quantity) AS units,
    uniqExact(order_id) AS orders,
    toFloat64(sum(items.price * items.quantity)) AS item_gmv
FROM orders_raw FINAL
ARRAY JOIN items
WHERE event_type = 'order_created' AND {LAST_15_MIN} AND {ORDER_FILTERS}
GROUP BY item
ORDER BY item_gmv DESC
LIMIT 20"""

DETAIL_VIEWS = f"""event_type = 'page_view' AND page_type = 'detail' AND item_id != ''
      AND {LAST_15_MIN} AND {CLICK_FILTERS}"""

TOP_PRODUCTS_BY_VIEWS = f"""SELECT
    item_id AS item,
    any(category) AS item_category,
    count() AS detail_views,
    uniqExact(session_id) AS sessions
FROM clicks_raw FINAL
WHERE {DETAIL_VIEWS}
GROUP BY item
ORDER BY detail_views DESC
LIMIT 20"""


def hot_items(min_views: str, max_cart_rate: str, until: str = "$__toTime") -> str:
    """Items with at least ``min_views`` detail views in the 15 minutes before ``until``
    and add-to-carts below ``max_cart_rate`` of them (stock-out, price error, broken
    button), most viewed first."""
    last_15 = f"event_time > {until} - 900 AND event_time <= {until}"
    return f"""SELECT
    item_id AS item,
    item_category,
    views,
    carts,
    round(carts / views, 4) AS cart_rate
FROM
(
    SELECT item_id, any(category) AS item_category, count() AS views
    FROM clicks_raw FINAL
    WHERE event_type = 'page_view' AND page_type = 'detail' AND item_id != '' AND {last_15}
    GROUP BY item_id
    HAVING views >= {min_views}
) AS viewed
ALL LEFT JOIN
(
    SELECT item_id, count() AS carts
    FROM carts_raw FINAL
    WHERE event_type = 'add_to_cart' AND {last_15}
    GROUP BY item_id
) AS carted USING item_id
WHERE carts < {max_cart_rate} * views
ORDER BY views DESC
LIMIT 50"""


HOT_ITEMS = hot_items("${hot_item_min_views}", "${hot_item_max_cart_rate}")

BOUNCE_RATE = f"""SELECT
    landing_page_type,
    if(source = '', 'other', source) AS traffic_source,
    count() AS sessions,
    countIf(page_views = 1) AS bounced,
    round(bounced / sessions, 4) AS bounce_rate
FROM
(
    SELECT
        session_id,
        argMin(page_type, ts_ms) AS landing_page_type,
        argMin(traffic_source, ts_ms) AS source,
        count() AS page_views
    FROM clicks_raw FINAL
    WHERE event_type = 'page_view'
      AND event_time >= greatest($__fromTime, $__toTime - 3600) AND event_time <= $__toTime
      AND {CLICK_FILTERS}
    GROUP BY session_id
)
GROUP BY landing_page_type, traffic_source
ORDER BY sessions DESC"""


def sale_panels(sale: Sale) -> list[Item]:
    """The war room's first row: where the sale stands against its target."""
    curves = [ch_time_series(CUMULATIVE_GMV), ch_time_series(TARGET_CURVE)]
    if sale.previous_start_s is not None:
        curves.append(ch_time_series(PREVIOUS_SALE_GMV))
    items: list[Item] = [
        dashboard_builders.Row(f"{sale.name}: paid GMV against the target"),
        time_series_panel(
            "Cumulative paid GMV vs target and previous sale",
            curves,
            unit="currencyCNY",
            w=12,
            h=9,
            description="Paid GMV since the sale's start (orders_1m), the linear target "
            "curve (sale.toml gmv_target) and the previous sale aligned by minutes since its "
            "start. Filtered by channel, region and payment method; the target is not.",
        ),
        stat_panel(
            "Paid GMV vs target so far",
            [ch_table(GMV_VS_TARGET)],
            unit="percentunit",
            w=4,
            h=9,
            decimals=1,
            steps=PACE_STEPS,
            graph=False,
            description="Paid GMV since the start / what the linear target curve promises "
            "by now. Green: on or above the curve; orange: within 10 % below; red: further.",
        ),
    ]
    if sale.previous_start_s is not None:
        target = sale.gmv_target
        items.append(
            stat_panel(
                "Projected end-of-sale paid GMV",
                [ch_table(PROJECTED_GMV)],
                unit="currencyCNY",
                w=8,
                h=9,
                decimals=0,
                steps=((None, "red"), (0.9 * target, "orange"), (target, "green")),
                graph=False,
                description="If the rest of the sale follows the previous sale's shape: paid "
                "GMV so far × previous total / previous GMV at the same minute since start. "
                "Green: reaches the target; orange: within 10 %; red: short by more.",
            )
        )
    return items


def product_panels() -> list[Item]:
    return [
        dashboard_builders.Row("Products and landing pages (raw events, last 15 minutes)"),
        table_panel(
            "Top products by GMV, last 15 minutes",
            [ch_table(TOP_PRODUCTS_BY_GMV)],
            w=8,
            h=10,
            description="Items of orders created in the 15 minutes before the range's end.",
        ),
        table_panel(
            "Top products by detail views, last 15 minutes",
            [ch_table(TOP_PRODUCTS_BY_VIEWS)],
            w=8,
            h=10,
        ),
        table_panel(
            "Hot items whose cart rate collapsed",
            [ch_table(HOT_ITEMS)],
            w=8,
            h=10,
            description="Items with many detail views and almost no add-to-cart in the last 15 "
            "minutes, all channels and regions: sold out, wrong price or a broken button. "
            "The Grafana alert "
            "SaleHotItemCartRateCollapsed (ticket) fires on the same query "
            "(alerts/runbook.md#salehotitemcartratecollapsed).",
        ),
        table_panel(
            "Bounce rate by landing page and traffic source",
            [ch_table(BOUNCE_RATE)],
            w=24,
            h=8,
            description="Sessions with a single page view / sessions, by the page type and "
            "traffic source of their first page view, over the last hour of the range "
            "(raw events; a session begun earlier counts its views in that hour only).",
        ),
    ]


def _calendar(start_s: int, end_s: int) -> str:
    """1 while ``time()`` is in ``[start_s, end_s)``, else nothing: an annotation region."""
    return f"vector(1) and on () (vector(time()) >= {start_s} and vector(time()) < {end_s})"


def sale_annotations(
    board: dashboard_builders.Dashboard, sale: Sale
) -> dashboard_builders.Dashboard:
    """Alerts firing (Prometheus ``ALERTS``), the sale, and each flash sale. The calendar
    ones are PromQL on ``time()`` (no data needed): the SDK's annotation model has no place
    for a ClickHouse query, and they would not round-trip."""
    board = board.annotation(
        dashboard_builders.AnnotationQuery()
        .name("Alerts firing")
        .datasource(PROMETHEUS)
        .expr('sum by (alertname, severity) (ALERTS{alertstate="firing"})')
        .icon_color("red")
        .enable(True)
    ).annotation(
        dashboard_builders.AnnotationQuery()
        .name(f"Sale: {sale.name}")
        .datasource(PROMETHEUS)
        .expr(_calendar(sale.start_s, sale.end_s))
        .icon_color("blue")
        .enable(True)
    )
    for flash in sale.flash_sales:
        board = board.annotation(
            dashboard_builders.AnnotationQuery()
            .name(f"Flash sale: {flash.name}")
            .datasource(PROMETHEUS)
            .expr(_calendar(flash.start_s, flash.end_s))
            .icon_color("orange")
            .enable(True)
        )
    return board
