"""Queries of the Grafana ClickHouse data source plugin (``grafana-clickhouse-datasource``).

grafana-foundation-sdk ships query types for Grafana's core data sources only, so this
module adds the one salewatch needs, the SDK way: a ``Dataquery`` model with ``to_json`` /
``from_json`` and a builder, registered with the SDK runtime so that a dashboard read back
with ``Dashboard.from_json`` gets ``ClickHouseQuery`` objects again (not untyped dicts).

The JSON is what plugin v4 saves for a raw SQL query: ``editorType`` "sql", ``rawSql``, and
``format`` 0 (time series: a DateTime column named ``time`` plus value columns) or 1
(table). Macros such as ``$__timeFilter(event_time)`` are expanded by the plugin;
``tests.unit.dashboards.macros.expand_macros`` does the same for tests.
"""

from __future__ import annotations

import enum
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants

PLUGIN_ID = "grafana-clickhouse-datasource"


class Format(enum.IntEnum):
    TIME_SERIES = 0
    TABLE = 1


class ClickHouseQuery(cogvariants.Dataquery):
    """One raw SQL query against the data source ``datasource_uid``."""

    def __init__(
        self,
        raw_sql: str = "",
        ref_id: str = "A",
        format_val: Format = Format.TABLE,
        datasource_uid: str = "clickhouse",
    ) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.format = format_val
        self.datasource_uid = datasource_uid

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": {"type": PLUGIN_ID, "uid": self.datasource_uid},
            "editorType": "sql",
            "format": int(self.format),
            "queryType": "timeseries" if self.format == Format.TIME_SERIES else "table",
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            raw_sql=str(data.get("rawSql", "")),
            ref_id=str(data.get("refId", "A")),
            format_val=Format(int(data.get("format", Format.TABLE))),
            datasource_uid=str(data.get("datasource", {}).get("uid", "clickhouse")),
        )


class ClickHouseQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    """``ClickHouseQueryBuilder(sql).time_series().ref_id("B")``."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = ClickHouseQuery(raw_sql=raw_sql)

    def build(self) -> ClickHouseQuery:
        return self._internal

    def time_series(self) -> Self:
        self._internal.format = Format.TIME_SERIES
        return self

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self


def register() -> None:
    """Let ``Dashboard.from_json`` turn ClickHouse targets into ``ClickHouseQuery``."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=PLUGIN_ID, from_json_hook=ClickHouseQuery.from_json)
    )
