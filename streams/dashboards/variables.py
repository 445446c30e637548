"""Dashboard variables: the filters ``$channel``, ``$region``, ``$payment_method`` and the
hidden constants that carry the configured sale (``sale.toml``) into the queries.

The filters are custom variables over the closed label sets of ``streams.metrics.labels`` (the
same values the metrics and the rollups use, ``other`` included), multi-value with "All"
(no custom all-value: Grafana then expands "All" to every value, which both formats below
accept). Queries use them as:

* PromQL: ``channel=~"${channel:regex}"`` (``(app|web|…)``);
* ClickHouse SQL: ``channel IN (${channel:singlequote})`` (``'app','web',…``).

The sale is held in constants (``${sale_start}``, …) rather than pasted into the SQL, so
that a query reads as what it means and tests can run the committed queries against a
sale placed around their own data (:func:`expand_variables`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dm

from streams.metrics import labels as lv
from streams.metrics.defs import REGION_VALUES
from streams.sale import Sale

# the hot-item rule of the "Hot items whose cart rate collapsed" panel: at least this many
# detail views in 15 minutes and fewer add-to-carts than this share of them
HOT_ITEM_MIN_VIEWS = 200
HOT_ITEM_MAX_CART_RATE = 0.01


def _ordered(values: frozenset[str]) -> list[str]:
    """Sorted, ``other`` last."""
    return [*sorted(v for v in values if v != lv.OTHER), lv.OTHER]


FILTERS: dict[str, list[str]] = {
    "channel": _ordered(lv.CHANNELS),
    "region": _ordered(REGION_VALUES),
    "payment_method": _ordered(lv.PAYMENT_METHODS),
}
LABELS = {"channel": "Channel", "region": "Region", "payment_method": "Payment method"}


def sale_constants(sale: Sale) -> dict[str, str]:
    constants = {
        "sale_start": str(sale.start_s),
        "sale_end": str(sale.end_s),
        "gmv_target": f"{sale.gmv_target:.0f}",
        "hot_item_min_views": str(HOT_ITEM_MIN_VIEWS),
        "hot_item_max_cart_rate": str(HOT_ITEM_MAX_CART_RATE),
    }
    if sale.previous_start_s is not None:
        constants["previous_start"] = str(sale.previous_start_s)
    return constants


def filter_variable(name: str) -> dashboard_builders.CustomVariable:
    return (
        dashboard_builders.CustomVariable(name)
        .label(LABELS[name])
        .values(",".join(FILTERS[name]))
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def with_variables(
    board: dashboard_builders.Dashboard, filters: Sequence[str], constants: Mapping[str, str]
) -> dashboard_builders.Dashboard:
    for name in filters:
        board = board.with_variable(filter_variable(name))
    for name, value in constants.items():
        board = board.with_variable(dashboard_builders.ConstantVariable(name).value(value))
    return board


def sql_filter(*names: str) -> str:
    return " AND ".join(f"{n} IN (${{{n}:singlequote}})" for n in names)


def prom_filter(*names: str) -> str:
    return ", ".join(f'{n}=~"${{{n}:regex}}"' for n in names)


# what Grafana's regex format escapes (not "-")
_GRAFANA_REGEX_SPECIALS = re.compile(r"([\\^$*+?.()|{}\[\]/])")
_REFERENCE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def expand_variables(text: str, board: dict[str, Any], **overrides: str) -> str:
    """``text`` with the dashboard's variables replaced the way Grafana does it, every
    filter at "All" (all its values) and constants at their value or ``overrides``."""
    values: dict[str, list[str]] = {}
    for variable in board.get("templating", {}).get("list", []):
        if variable["type"] == "custom":
            values[variable["name"]] = str(variable["query"]).split(",")
        elif variable["type"] == "constant":
            values[variable["name"]] = [overrides.get(variable["name"], str(variable["query"]))]

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        if name not in values:
            return match[0]  # a Grafana built-in ($__range, $__timeFilter, …)
        vals, fmt = values[name], match[2]
        if fmt == "singlequote":
            return ",".join(f"'{v}'" for v in vals)
        if fmt == "regex":
            escaped = [_GRAFANA_REGEX_SPECIALS.sub(r"\\\1", v) for v in vals]
            return "(" + "|".join(escaped) + ")" if len(escaped) > 1 else escaped[0]
        if fmt is None and len(vals) == 1:
            return vals[0]
        raise ValueError(f"unsupported use of ${name} in: {text}")

    return _REFERENCE.sub(replace, text)
