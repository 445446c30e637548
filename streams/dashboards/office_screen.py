"""Office screen: four huge numbers readable from across the room.

GMV today, orders per minute, conversion and page-load p75, dark and refreshed every 10 s.
Grafana dashboards carry no theme of their own (the ``style`` field is gone from the
schema): the screen opens ``/d/salewatch-office?kiosk&theme=dark`` (the link on the War
room), and the panels use solid background colours that read the same on either theme.
"today" is the dashboard's time range, midnight (browser time) to now.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.models import dashboard as dm

from streams.dashboards.panels import LOAD_TIME_STEPS, assemble, prom, stat_panel

UID = "salewatch-office"
TITLE = "Salewatch · Office screen"
KIOSK_PATH = f"/d/{UID}?kiosk&theme=dark"
VALUE_SIZE = 140  # px: readable at ~10 m on a 55" screen


def dashboard() -> dm.Dashboard:
    board = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .tags(["salewatch", "office-screen"])
        .description(f"Open as {KIOSK_PATH}")
        .refresh("10s")
        .time("now/d", "now")
        .timezone("browser")
        .readonly()
        .timepicker(dashboard_builders.TimePicker().hidden(True).refresh_intervals(["10s"]))
    )
    return assemble(
        board,
        [
            _big(
                "GMV today",
                'sum(increase(salewatch_order_amount_total{event_type="order_created"}[$__range]))',
                unit="currencyCNY",
                decimals=0,
                steps=((None, "dark-green"),),
                graph=False,
            ),
            _big(
                "Orders / min",
                'event_type:salewatch_orders:rate1m{event_type="order_created"} * 60',
                unit="short",
                decimals=0,
                steps=((None, "dark-blue"),),
            ),
            _big(
                "Conversion",
                ":salewatch_conversion:ratio_rate5m",
                unit="percentunit",
                decimals=1,
                steps=((None, "dark-purple"),),
            ),
            _big(
                "Page load p75",
                ":salewatch_page_load_seconds:p75_rate2m",
                unit="s",
                decimals=1,
                steps=LOAD_TIME_STEPS,
            ),
        ],
    )


def _big(
    title: str,
    expr: str,
    *,
    unit: str,
    decimals: float,
    steps: Sequence[tuple[float | None, str]],
    graph: bool = True,
) -> stat.Panel:
    """A quarter of the screen, one number."""
    return stat_panel(
        title,
        [prom(expr)],
        unit=unit,
        w=12,
        h=11,
        decimals=decimals,
        steps=steps,
        value_size=VALUE_SIZE,
        graph=graph,
    )
