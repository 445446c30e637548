"""Office screen: the paid-GMV ticker and a few numbers readable from across the room.

Top: paid GMV today in full digits (``¥`` in the title, the value with thousands
separators: Grafana's currency units abbreviate to "¥1.23 B", its ``locale`` unit does
not), the value only, beside the number of pages firing. Below: pace against the target
curve, orders per minute, conversion against its baseline, page-load p75. Every colour
means something, written in each panel's description: green = fine or target reached,
orange = watch, red = act; blue = the ticker on its way to the target.

Dark and refreshed every 10 s. Grafana dashboards carry no theme of their own: the screen
opens ``/d/salewatch-office?kiosk&theme=dark`` (the link on the War room), and the panels
use solid background colours that read the same on either theme. "today" is the
dashboard's time range, midnight to now in the sale's time zone (the office's, from
``sale.toml``), not the browser's.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from streams.dashboards.panels import LOAD_TIME_STEPS, Query, assemble, ch_table, prom, stat_panel
from streams.dashboards.sale_panels import GMV_VS_TARGET, PACE_STEPS
from streams.dashboards.variables import FILTERS, sale_constants, with_variables
from streams.sale import Sale, load_sale

UID = "salewatch-office"
TITLE = "Salewatch · Office screen"
KIOSK_PATH = f"/d/{UID}?kiosk&theme=dark"
VALUE_SIZE = 140  # px: readable at ~10 m on a 55" screen
TICKER_SIZE = 170

PAID_GMV_TODAY = """SELECT toFloat64(sum(amount)) AS paid_gmv
FROM orders_1m FINAL
WHERE event_type = 'payment_succeeded' AND $__timeFilter(window_start)"""
PAGES_FIRING = 'count(ALERTS{alertstate="firing", severity="page"}) or vector(0)'
CONVERSION_VS_BASELINE = ":salewatch_conversion:ratio_rate5m / :salewatch_conversion:ratio_baseline"


def dashboard(sale: Sale | None = None) -> dm.Dashboard:
    sale = sale or load_sale()
    board = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .tags(["salewatch", "office-screen"])
        .description(f"Open as {KIOSK_PATH}")
        .refresh("10s")
        .time("now/d", "now")
        .timezone(sale.timezone)
        .readonly()
        .timepicker(dashboard_builders.TimePicker().hidden(True).refresh_intervals(["10s"]))
    )
    # the filters are fixed at "All" here (no variable picker in kiosk mode); the constants
    # carry the sale into the pace query
    board = with_variables(board, list(FILTERS), sale_constants(sale))
    return assemble(
        board,
        [
            _big(
                "Paid GMV today (¥)",
                ch_table(PAID_GMV_TODAY),
                unit="locale",
                decimals=0,
                steps=((None, "dark-blue"), (sale.gmv_target, "dark-green")),
                w=18,
                size=TICKER_SIZE,
                description="Amount of successful payments since midnight (office time), "
                "exact from ClickHouse (orders_1m), in full digits. Blue: below the sale's "
                f"target ({sale.gmv_target:,.0f}); green: target reached.",
            ),
            _big(
                "Pages firing",
                prom(PAGES_FIRING),
                unit="none",
                decimals=0,
                steps=((None, "dark-green"), (1, "dark-red")),
                w=6,
                description="Page-severity alerts firing now (Prometheus ALERTS). Green: "
                "none; red: someone is being paged, see the War room.",
            ),
            _big(
                "Pace vs target",
                ch_table(GMV_VS_TARGET),
                unit="percentunit",
                decimals=0,
                steps=PACE_STEPS,
                description="Paid GMV since the sale's start / the target curve by now. "
                "Green: on or above the curve; orange: within 10 % below; red: further.",
            ),
            _big(
                "Orders / min",
                prom('event_type:salewatch_orders:rate1m{event_type="order_created"} * 60'),
                unit="short",
                decimals=0,
                steps=((None, "dark-red"), (1, "dark-green")),
                description="Orders created per minute. Red: below one a minute (orders "
                "stopped); green: orders flowing.",
            ),
            _big(
                "Conversion vs usual",
                prom(CONVERSION_VS_BASELINE),
                unit="percentunit",
                decimals=0,
                steps=((None, "dark-red"), (0.5, "dark-orange"), (0.8, "dark-green")),
                description="Conversion (paid sessions / visits, 5 minutes) as a share of its "
                "baseline. Red: below half, where SaleConversionDrop pages; orange: below "
                "80 %; green: as usual.",
            ),
            _big(
                "Page load p75",
                prom(":salewatch_page_load_seconds:p75_rate2m"),
                unit="s",
                decimals=1,
                steps=LOAD_TIME_STEPS,
                description="LCP p75 over 2 minutes. Green: good (≤ 2.5 s); orange: needs "
                "improvement; red: poor (> 4 s).",
            ),
        ],
    )


def _big(
    title: str,
    query: Query,
    *,
    unit: str,
    decimals: float,
    steps: Sequence[tuple[float | None, str]],
    description: str,
    w: int = 6,
    size: int = VALUE_SIZE,
) -> stat.Panel:
    """One number, value only, its background coloured by ``steps``."""
    return (
        stat_panel(
            title,
            [query],
            unit=unit,
            w=w,
            h=11,
            decimals=decimals,
            steps=steps,
            value_size=size,
            graph=False,
            description=description,
        )
        .text_mode(common.BigValueTextMode.VALUE)
        .text(common_builders.VizTextDisplayOptions().value_size(size).title_size(36))
    )
