"""Grafana-managed alert rules on ClickHouse, provisioned from code.

**SaleHotItemCartRateCollapsed** (severity ``ticket``): at least one item has
``HOT_ITEM_MIN_VIEWS`` detail views or more in the last 15 minutes and add-to-carts below
``HOT_ITEM_MAX_CART_RATE`` of them, for 5 minutes — the query of the War room panel **Hot
items whose cart rate collapsed**, counted.

Why a ClickHouse check in Grafana and not a Prometheus rule: the question is per item, and
item ids must not be metric labels (unbounded). A bounded worker metric ("items below the
rate") does not work either: the worker's partitions are keyed by session, so an item's
views are spread over every worker, each sees a fraction of them, and per-worker counts of
hot items cannot be added up (an item hot only in aggregate is counted by nobody). ClickHouse
holds all partitions' events; the query reads 15 minutes of two raw tables.

The rule reaches the project's Alertmanager like the Prometheus rules: the provisioned
contact point ``salewatch-alertmanager`` (type Alertmanager) receives every Grafana alert,
and ``alerts/alertmanager.yml`` routes ``severity="ticket"`` to the ``tickets`` receiver.
The file is generated (``salewatch dashboards generate``), mounted by docker-compose at
``/etc/grafana/provisioning/alerting``; tests check that it equals the code and run its
query on ClickHouse 18.16 and current ClickHouse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.dashboards.clickhouse import PLUGIN_ID
from streams.dashboards.sale_panels import hot_items
from streams.dashboards.variables import HOT_ITEM_MAX_CART_RATE, HOT_ITEM_MIN_VIEWS

ALERTING_FILE = (
    Path(__file__).resolve().parents[2] / "deploy/grafana/provisioning/alerting/salewatch.yml"
)
RULE_NAME = "SaleHotItemCartRateCollapsed"
RUNBOOK_URL = "alerts/runbook.md#salehotitemcartratecollapsed"
CONTACT_POINT = "salewatch-alertmanager"

HOT_ITEMS_COUNT = f"""SELECT count() AS hot_items
FROM
(
{hot_items(str(HOT_ITEM_MIN_VIEWS), str(HOT_ITEM_MAX_CART_RATE), until="now()")}
)"""


def provisioning() -> dict[str, Any]:
    """Grafana's alerting provisioning document (apiVersion 1)."""
    query = {
        "refId": "A",
        "datasource": {"type": PLUGIN_ID, "uid": "clickhouse"},
        "editorType": "sql",
        "format": 1,
        "queryType": "table",
        "rawSql": HOT_ITEMS_COUNT,
    }
    rule = {
        "uid": "salewatch-hot-item-cart-rate",
        "title": RULE_NAME,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 900, "to": 0},
                "datasourceUid": "clickhouse",
                "model": query,
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"},
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        "for": "5m",
        "noDataState": "OK",
        "execErrState": "Error",
        "labels": {"severity": "ticket"},
        "annotations": {
            "summary": "Hot items whose add-to-cart rate collapsed",
            "description": "{{ $values.B.Value }} item(s) with at least "
            f"{HOT_ITEM_MIN_VIEWS} detail views in 15 minutes and add-to-carts below "
            f"{HOT_ITEM_MAX_CART_RATE:.0%} of them: sold out, wrong price or a broken "
            "button. The items: War room → Hot items whose cart rate collapsed.",
            "runbook_url": RUNBOOK_URL,
        },
    }
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "salewatch-clickhouse",
                "folder": "Salewatch",
                "interval": "1m",
                "rules": [rule],
            }
        ],
        "contactPoints": [
            {
                "orgId": 1,
                "name": CONTACT_POINT,
                "receivers": [
                    {
                        "uid": "salewatch-alertmanager",
                        "type": "prometheus-alertmanager",
                        "settings": {"url": "http://alertmanager:9093"},
                    }
                ],
            }
        ],
        "policies": [{"orgId": 1, "receiver": CONTACT_POINT, "group_by": ["alertname"]}],
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the SQL) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    header = (
        "# Generated by `salewatch dashboards generate` from streams/dashboards/alerting.py;\n"
        "# do not edit. Grafana-managed alert rules on ClickHouse (why: that module).\n"
    )
    return header + yaml.dump(
        provisioning(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )


def is_stale(path: Path = ALERTING_FILE) -> bool:
    return not path.exists() or path.read_text(encoding="utf-8") != render()


def write(path: Path = ALERTING_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
