"""Grafana ClickHouse plugin macros, expanded the way the plugin (v4) does it (for tests).

The plugin replaces ``$__timeFilter(col)`` with ``col >= toDateTime(FROM) AND col <=
toDateTime(TO)`` and ``$__fromTime`` / ``$__toTime`` with ``toDateTime(...)`` (epoch
seconds) before sending the query. Tests use this to run every panel query against a real
ClickHouse; the dashboards use only these macros (``$__timeInterval`` expands to
``toStartOfInterval``, which ClickHouse 18.16 lacks).
"""

from __future__ import annotations

import re

SUPPORTED_MACROS = ("$__timeFilter", "$__fromTime", "$__toTime")
_TIME_FILTER = re.compile(r"\$__timeFilter\(\s*([\w.]+)\s*\)")


def expand_macros(sql: str, from_s: int, to_s: int) -> str:
    """``sql`` with the plugin macros replaced for the range ``[from_s, to_s]``."""
    sql = _TIME_FILTER.sub(
        lambda m: f"{m[1]} >= toDateTime({from_s}) AND {m[1]} <= toDateTime({to_s})", sql
    )
    sql = sql.replace("$__fromTime", f"toDateTime({from_s})")
    sql = sql.replace("$__toTime", f"toDateTime({to_s})")
    if "$__" in sql:
        raise ValueError(f"unsupported macro in: {sql}")
    return sql
