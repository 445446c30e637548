"""War room: the sale-night dashboard on the big screen of the incident room.

Top to bottom: the sale against its target (paid GMV vs the target curve and the previous
sale, pace, projection: ``streams.dashboards.sale_panels``); sales broken down live as
visitors × conversion × average order value; the funnel per step; GMV and orders per
minute against the same time last week; payment success by method; tickets; page speed
(Core Web Vitals p75 by page type, against their "good" and "poor" lines); top products,
hot items whose cart rate collapsed, bounce rate; firing alerts; pipeline freshness.

Variables ``$channel``, ``$region``, ``$payment_method`` filter the panels whose data
carries those dimensions (``streams.dashboards.variables``); annotations mark alerts
firing, the sale and its flash sales. The dashboard's time zone is the sale's (the
office's), not the browser's.
Panel titles are referred to by ``alerts/runbook.md``: rename both together.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dm

from streams.dashboards.panels import (
    CLS_STEPS,
    INP_STEPS,
    LOAD_TIME_STEPS,
    Item,
    assemble,
    bar_gauge_panel,
    prom,
    stat_panel,
    table_panel,
    time_series_panel,
)
from streams.dashboards.sale_panels import product_panels, sale_annotations, sale_panels
from streams.dashboards.variables import FILTERS, prom_filter, sale_constants, with_variables
from streams.sale import Sale, load_sale

UID = "salewatch-war-room"
TITLE = "Salewatch · War room"
CURRENCY = "currencyCNY"

VISITS_PER_MIN = 'sum(step:salewatch_funnel_sessions:rate5m{step="visit"}) * 60'
PAID_PER_MIN = ":salewatch_paid_amount:rate5m * 60"
CONVERSION = ":salewatch_conversion:ratio_rate5m"
AOV = ":salewatch_aov:ratio_rate5m"


def _sales() -> list[Item]:
    return [
        dashboard_builders.Row("Sales = visitors × conversion × average order value"),
        stat_panel(
            "Visitors per minute",
            [prom(VISITS_PER_MIN)],
            unit="short",
            w=5,
            h=5,
            description="Sessions started per minute (5-minute rate).",
        ),
        stat_panel(
            "× Conversion",
            [prom(CONVERSION)],
            unit="percentunit",
            w=5,
            h=5,
            decimals=2,
            description="Paid sessions / visits over the last 5 minutes (EVENTS.md funnel).",
        ),
        stat_panel(
            "× Average order value",
            [prom(AOV)],
            unit=CURRENCY,
            w=5,
            h=5,
            description="Paid amount / paid orders over the last 5 minutes.",
        ),
        stat_panel(
            "= Sales per minute (paid)",
            [prom(PAID_PER_MIN)],
            unit=CURRENCY,
            w=9,
            h=5,
            steps=((None, "green"),),
            description="Amount of successful payments per minute (5-minute rate).",
        ),
        time_series_panel(
            "Sales decomposition: visitors × conversion × AOV",
            [
                prom(PAID_PER_MIN, "paid amount / min"),
                prom(
                    f"{VISITS_PER_MIN} * on () {CONVERSION} * on () {AOV}",
                    "visitors × conversion × AOV",
                ),
            ],
            unit=CURRENCY,
            w=12,
            description="The product of the three factors follows the paid amount; where they "
            "part, sessions paid for more (or fewer) than one order.",
        ),
        time_series_panel(
            "Visitors per minute by channel",
            [
                prom(
                    f"channel:salewatch_sessions_started:rate1m{{{prom_filter('channel')}}} * 60",
                    "{{channel}}",
                )
            ],
            unit="short",
            w=12,
            stack=True,
        ),
    ]


def _funnel() -> list[Item]:
    return [
        dashboard_builders.Row("Funnel"),
        bar_gauge_panel(
            "Funnel: sessions per minute by step",
            [prom("step:salewatch_funnel_sessions:rate5m * 60", "{{step}}")],
            unit="short",
            w=8,
            description="visit → detail → cart → checkout (order created) → paid, per minute.",
        ),
        time_series_panel(
            "Conversion vs baseline",
            [
                prom(CONVERSION, "visit → paid"),
                prom(":salewatch_conversion:ratio_baseline", "visit → paid baseline"),
                prom(":salewatch_checkout_conversion:ratio_rate5m", "checkout → paid"),
                prom(":salewatch_checkout_conversion:ratio_baseline", "checkout → paid baseline"),
            ],
            unit="percentunit",
            w=8,
            description="SaleConversionDrop pages below half (visit → paid) or 60 % "
            "(checkout → paid) of the baseline.",
        ),
        time_series_panel(
            "Funnel by channel",
            [
                prom(
                    f"channel_step:salewatch_funnel_sessions:rate5m{{{prom_filter('channel')}}}"
                    " * 60",
                    "{{channel}} {{step}}",
                )
            ],
            unit="short",
            w=8,
        ),
    ]


def _orders() -> list[Item]:
    return [
        dashboard_builders.Row("GMV and orders"),
        time_series_panel(
            "GMV per minute vs same time last week",
            [
                prom(":salewatch_gmv:rate1m * 60", "GMV / min"),
                prom(
                    'sum(rate(salewatch_order_amount_total{event_type="order_created"}[1m]'
                    " offset 1w)) * 60",
                    "same time last week",
                ),
            ],
            unit=CURRENCY,
            w=12,
            description="GMV = amount of created orders.",
        ),
        time_series_panel(
            "Orders per minute vs same time last week",
            [
                prom(
                    'event_type:salewatch_orders:rate1m{event_type="order_created"} * 60', "orders"
                ),
                prom(
                    'event_type:salewatch_orders:expected_rate1m{event_type="order_created"} * 60',
                    "expected from traffic",
                ),
                prom(
                    'sum(rate(salewatch_orders_total{event_type="order_created"}[1m] offset 1w))'
                    " * 60",
                    "same time last week",
                ),
            ],
            unit="short",
            w=12,
            description="SaleOrdersStalled pages below a quarter of the expected rate.",
        ),
        time_series_panel(
            "GMV per minute by category",
            [prom("category:salewatch_gmv:rate5m * 60", "{{category}}")],
            unit=CURRENCY,
            w=12,
            stack=True,
        ),
        time_series_panel(
            "Orders per minute by payment method (filtered)",
            [
                prom(
                    "sum by (payment_method) (rate(salewatch_orders_total"
                    f'{{event_type="order_created", {prom_filter(*FILTERS)}}}[2m])) * 60',
                    "{{payment_method}}",
                )
            ],
            unit="short",
            w=12,
            stack=True,
            description="Orders created per minute in the selected channels, regions and "
            "payment methods.",
        ),
        time_series_panel(
            "Order events per minute by type",
            [prom("event_type:salewatch_orders:rate1m * 60", "{{event_type}}")],
            unit="short",
            w=12,
        ),
    ]


def _payments_and_tickets() -> list[Item]:
    return [
        dashboard_builders.Row("Payments, tickets, active users"),
        time_series_panel(
            "Payment success by method",
            [
                prom(
                    "payment_method:salewatch_payment_success:ratio_rate2m"
                    f"{{{prom_filter('payment_method')}}}",
                    "{{payment_method}}",
                )
            ],
            unit="percentunit",
            w=8,
            description="SalePaymentFailureSpike pages 20 points below the method's baseline.",
        ),
        time_series_panel(
            "Payment failures by reason",
            [prom("failure_reason:salewatch_payment_failures:rate5m * 60", "{{failure_reason}}")],
            unit="short",
            w=8,
            stack=True,
        ),
        time_series_panel(
            "Tickets opened per minute by kind",
            [prom("kind:salewatch_tickets_opened:rate5m * 60", "{{kind}}")],
            unit="short",
            w=8,
            stack=True,
        ),
        time_series_panel(
            "Tickets per paid order",
            [
                prom(":salewatch_tickets_per_paid_order:ratio_rate5m", "tickets / paid order"),
                prom(":salewatch_tickets_per_paid_order:ratio_baseline", "baseline"),
            ],
            unit="percentunit",
            w=12,
            description="Tickets of the last 5 minutes / orders paid in the last hour.",
        ),
        time_series_panel(
            "Active users by channel",
            [
                prom("channel:salewatch_active_users_1m:sum", "{{channel}} (1 min)"),
                prom('channel:salewatch_active_users_15m:sum{channel="all"}', "all (15 min)"),
            ],
            unit="short",
            w=12,
            description="Distinct users with a page view in the last closed minute "
            "(published when the minute closes, up to 3 minutes late).",
        ),
    ]


def _page_speed() -> list[Item]:
    return [
        dashboard_builders.Row("Page speed from real browsers (Core Web Vitals p75)"),
        time_series_panel(
            "Page load p75 by page type",
            [prom("page_type:salewatch_page_load_seconds:p75_rate2m", "{{page_type}}")],
            unit="s",
            w=6,
            steps=LOAD_TIME_STEPS,
            description="LCP p75 over 2 minutes; web vitals: good ≤ 2.5 s, poor > 4 s. "
            "SalePageSpeedDegraded pages for detail and checkout pages.",
        ),
        time_series_panel(
            "Interaction (INP) p75 by page type",
            [prom("page_type:salewatch_web_vitals_inp_seconds:p75_rate5m", "{{page_type}}")],
            unit="s",
            w=6,
            steps=INP_STEPS,
            description="Interaction to Next Paint p75 over 5 minutes; good ≤ 200 ms, poor "
            "> 500 ms (SaleInteractionSlow pages). Reported when a page is hidden: it trails "
            "the page loads by minutes.",
        ),
        time_series_panel(
            "Layout shift (CLS) p75 by page type",
            [prom("page_type:salewatch_web_vitals_cls:p75_rate5m", "{{page_type}}")],
            unit="none",
            w=6,
            steps=CLS_STEPS,
            description="Cumulative Layout Shift p75 over 5 minutes; good ≤ 0.1, poor > 0.25 "
            "(SaleLayoutUnstable opens a ticket).",
        ),
        time_series_panel(
            "Beacons per minute by outcome",
            [
                prom(
                    "sum(rate(salewatch_collector_beacons_accepted_total[5m])) * 60",
                    "accepted",
                ),
                prom("reason:salewatch_collector_beacons_rejected:rate5m * 60", "{{reason}}"),
                prom(":salewatch_collector_page_views_produced:rate1m * 60", "page views out"),
            ],
            unit="short",
            w=6,
            description="What the beacon collector (salewatch collect) does with browsers' "
            "beacons; refusals by reason (BeaconRejectionsHigh above 10 %).",
        ),
    ]


def _alerts_and_pipeline() -> list[Item]:
    return [
        dashboard_builders.Row("Alerts and pipeline"),
        table_panel(
            "Active alerts",
            [
                prom(
                    "sum by (alertname, severity, category, channel, payment_method, page_type) "
                    '(ALERTS{alertstate="firing"})',
                    instant=True,
                )
            ],
            w=12,
            description="Firing alerts as Prometheus sees them (silences and inhibitions "
            "are applied later, in Alertmanager).",
        ),
        time_series_panel(
            "Pipeline freshness",
            [prom("topic:salewatch_event_freshness_seconds:min", "{{topic}}")],
            unit="s",
            w=6,
            description="Clock minus the event time of the newest event per topic.",
        ),
        time_series_panel(
            "Event lag p90 by topic",
            [prom("topic:salewatch_event_lag_seconds:p90_rate2m", "{{topic}}")],
            unit="s",
            w=6,
            steps=((None, "green"), (60, "red")),
        ),
        time_series_panel(
            "Events per second by topic",
            [prom("topic:salewatch_events_received:rate1m", "{{topic}}")],
            unit="short",
            w=8,
            stack=True,
        ),
        time_series_panel(
            "Dead-letter ratio by topic",
            [prom("topic:salewatch_dead_letters:ratio_rate5m", "{{topic}}")],
            unit="percentunit",
            w=8,
            steps=((None, "green"), (0.05, "red")),
        ),
        time_series_panel(
            "ClickHouse rows written and write errors",
            [
                prom("table:salewatch_clickhouse_rows_written:rate1m", "{{table}} rows/s"),
                prom("table:salewatch_clickhouse_write_errors:rate2m", "{{table}} errors/s"),
            ],
            unit="short",
            w=8,
        ),
    ]


def dashboard(sale: Sale | None = None) -> dm.Dashboard:
    sale = sale or load_sale()
    board = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .tags(["salewatch", "sale-day"])
        .description("Live sale-night view: sales, funnel, payments, speed, alerts, pipeline.")
        .refresh("10s")
        .time("now-3h", "now")
        .timezone(sale.timezone)
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard_builders.DashboardLink("Office screen")
            .type(dm.DashboardLinkType.LINK)
            .url("/d/salewatch-office?kiosk&theme=dark")
        )
        .link(
            dashboard_builders.DashboardLink("Drill-down (ClickHouse)")
            .type(dm.DashboardLinkType.LINK)
            .url("/d/salewatch-drill-down")
            .keep_time(True)
        )
    )
    board = with_variables(board, list(FILTERS), sale_constants(sale))
    board = sale_annotations(board, sale)
    sections: tuple[Callable[[], list[Item]], ...] = (
        partial(sale_panels, sale),
        _sales,
        _funnel,
        _orders,
        _payments_and_tickets,
        _page_speed,
        product_panels,
        _alerts_and_pipeline,
    )
    return assemble(board, [item for section in sections for item in section()])
