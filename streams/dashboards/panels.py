"""Panel and query helpers shared by the salewatch dashboards.

Every query names its data source by the fixed uids provisioned in
``deploy/grafana/provisioning/datasources/salewatch.yml``: ``prometheus`` and
``clickhouse``. PromQL reads the recording rules of ``alerts/salewatch-recording.rules.yml``
wherever one exists, so a number on a dashboard is the number an alert looks at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as prometheus_models

from streams.dashboards.clickhouse import PLUGIN_ID, ClickHouseQueryBuilder

PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
CLICKHOUSE = dm.DataSourceRef(type_val=PLUGIN_ID, uid="clickhouse")

Query = cogbuilder.Builder[cogvariants.Dataquery]
# what a dashboard is made of, top to bottom: rows and the panels under them
Item = dashboard_builders.Row | cogbuilder.Builder[dm.Panel]
P = TypeVar("P", stat.Panel, timeseries.Panel, table.Panel, bargauge.Panel)

# Core Web Vitals lines as threshold steps: green "good", orange "needs improvement", red
# "poor". Grafana starts a colour at its step (≥) where web.dev's "good" includes the line
# (≤): only a value exactly on a line is coloured one step worse.
# web vitals LCP: good up to 2.5 s, poor above 4 s
LOAD_TIME_STEPS = ((None, "green"), (2.5, "orange"), (4.0, "red"))
# INP: good up to 200 ms, poor above 500 ms
INP_STEPS = ((None, "green"), (0.2, "orange"), (0.5, "red"))
# CLS (unitless): good up to 0.1, poor above 0.25
CLS_STEPS = ((None, "green"), (0.1, "orange"), (0.25, "red"))


def prom(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(prometheus_models.PromQueryFormat.TABLE)
    return query


def ch_table(sql: str) -> ClickHouseQueryBuilder:
    return ClickHouseQueryBuilder(sql)


def ch_time_series(sql: str) -> ClickHouseQueryBuilder:
    return ClickHouseQueryBuilder(sql).time_series()


def _datasource(queries: Sequence[Query]) -> dm.DataSourceRef:
    clickhouse = [isinstance(q, ClickHouseQueryBuilder) for q in queries]
    return CLICKHOUSE if all(clickhouse) else PROMETHEUS


def _with_targets(panel: P, queries: Sequence[Query]) -> P:
    for i, query in enumerate(queries):
        ref = chr(ord("A") + i)
        if isinstance(query, ClickHouseQueryBuilder | prometheus.Dataquery):
            query.ref_id(ref)
        panel = panel.with_target(query)
    return panel.datasource(_datasource(queries))


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def stat_panel(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str,
    w: int,
    h: int,
    description: str = "",
    decimals: float | None = None,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    value_size: float | None = None,
    graph: bool = True,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA if graph else common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds(*steps))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if value_size is not None:
        panel = panel.text(
            common_builders.VizTextDisplayOptions().value_size(value_size).title_size(36)
        )
    return _with_targets(panel, queries)


def time_series_panel(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str,
    w: int,
    h: int = 8,
    description: str = "",
    steps: Sequence[tuple[float | None, str]] = (),
    stack: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if steps:
        panel = panel.thresholds(thresholds(*steps)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        )
    return _with_targets(panel, queries)


def table_panel(
    title: str,
    queries: Sequence[Query],
    *,
    w: int,
    h: int = 8,
    description: str = "",
    unit: str = "short",
) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        # the schema's defaults, written out so that the JSON round-trips unchanged
        .align(common.FieldTextAlignment.AUTO)
        .inspect(False)
    )
    return _with_targets(panel, queries)


def bar_gauge_panel(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str,
    w: int,
    h: int = 8,
    description: str = "",
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return _with_targets(panel, queries)


def assemble(board: dashboard_builders.Dashboard, items: Sequence[Item]) -> dm.Dashboard:
    """Lay ``items`` out left to right, top to bottom (a row starts a new line) and number
    the panels."""
    for item in items:
        if isinstance(item, dashboard_builders.Row):
            board = board.with_row(item)
        else:
            board = board.with_panel(item)
    return number_panels(board.build())


def number_panels(board: dm.Dashboard) -> dm.Dashboard:
    """Give every panel (rows and the panels inside collapsed rows too) a unique id, in
    layout order, so that ids are stable from one generation to the next."""
    next_id = 1
    for panel in board.panels or []:
        panel.id_val = next_id
        next_id += 1
        if isinstance(panel, dm.RowPanel):
            for inner in panel.panels:
                inner.id_val = next_id
                next_id += 1
    return board
