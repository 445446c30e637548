"""Score a backtest against the incidents that really happened: precision, recall, delay.

Contract. Input: the report's ``alerts`` (firing episodes) and a list of
:class:`TrueIncident` (kind, optional arg, event-time window). Only pages count
(``severity="page"``): tickets and the Watchdog heartbeat are not someone woken up.

* A page **belongs** to an incident when it starts within ``[start, end + RESOLVE_MS]`` of
  it and its alert is one that incident kind may cause (``MAY_PAGE``). Otherwise it is a
  **false page**. Precision per alert = pages that belong / all its pages.
* An incident is **detected** when an alert it *must* raise (``MUST_PAGE``, matching the
  arg: the payment method, the channel) starts within ``PAGE_WITHIN_MS`` of its start;
  the **delay** is that start minus the incident's. It **resolved in time** when that
  episode ends within ``RESOLVE_MS`` of the incident's end. Recall = detected / incidents.

Incidents files (``salewatch backtest --incidents FILE``): the simulator's
``--summary-json`` (``start_ms`` and ``incidents`` specs), or a JSON list of objects
``{"kind": ..., "arg": ... (optional), "start_ms": ..., "end_ms": ...}`` written by any
other generator.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.backtest.errors import BacktestError

PAGE_WITHIN_MS = 3 * 60_000
RESOLVE_MS = 10 * 60_000

PIPELINE = frozenset({"PipelineStalled", "PipelineLagHigh"})
# Orders lost entirely while clicks flow and a stalled `orders` topic are the same data
# (no order event arrives, every other topic flows): either page is the right one, and the
# runbook of each sends on-call to the producer and to the pipeline. A partial loss (orders
# still flow, fewer than the visits predict) is SaleOrdersStalled's alone.
ORDERS_SILENT = frozenset({"SaleOrdersStalled", "PipelineStalled"})
# the alert(s) an incident kind must page with (any one of them, on the incident's arg)
MUST_PAGE: dict[str, frozenset[str]] = {
    "checkout_slow": frozenset({"SalePageSpeedDegraded"}),
    "payment_outage": frozenset({"SalePaymentFailureSpike"}),
    "orders_lost": ORDERS_SILENT,
    "ticket_surge": frozenset({"SaleTicketSurge"}),
    "traffic_drop": frozenset({"SaleActiveUsersDrop"}),
    "pipeline_stall": frozenset({"PipelineStalled"}),
    "pipeline_lag": PIPELINE,
}
# what else an incident may legitimately page with (its own consequences)
MAY_PAGE: dict[str, frozenset[str]] = {
    "checkout_slow": frozenset({"SalePageSpeedDegraded", "SaleOrdersStalled"}),
    "payment_outage": frozenset({"SalePaymentFailureSpike", "SaleOrdersStalled"}),
    "orders_lost": ORDERS_SILENT,
    "ticket_surge": frozenset({"SaleTicketSurge"}),
    "traffic_drop": frozenset({"SaleActiveUsersDrop"}),
    "pipeline_stall": PIPELINE,
    "pipeline_lag": PIPELINE,
}
# the label that carries an incident's arg, per kind
ARG_LABEL = {"payment_outage": "payment_method", "pipeline_stall": "topic", "pipeline_lag": "topic"}
# labels a page must carry for an incident kind without arg (PipelineStalled for lost orders)
KIND_LABELS = {("orders_lost", "PipelineStalled"): ("topic", frozenset({"orders", "all"}))}


@dataclass(frozen=True)
class TrueIncident:
    """What happened: ``kind`` (``arg``: method, topic or None) over ``[start_ms, end_ms)``."""

    kind: str
    start_ms: int
    end_ms: int
    arg: str | None = None

    @property
    def name(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def load_incidents(path: Path) -> list[TrueIncident]:
    """Incidents from a simulator summary or a plain list (see the module docstring)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BacktestError(f"cannot read incidents from {path}: {exc}") from None
    if isinstance(doc, dict) and "incidents" in doc and "start_ms" in doc:
        from streams.simulation import parse_incident

        start = int(doc["start_ms"])
        out = []
        for spec in doc["incidents"]:
            inc = parse_incident(spec)
            begin, end = inc.window_ms(start)
            out.append(TrueIncident(inc.kind, begin, end, inc.arg))
        return out
    if isinstance(doc, list):
        try:
            return [
                TrueIncident(str(d["kind"]), int(d["start_ms"]), int(d["end_ms"]), d.get("arg"))
                for d in doc
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BacktestError(f"{path}: bad incident entry ({exc})") from None
    raise BacktestError(f"{path}: neither a simulator summary nor a list of incidents")


def _matches_kind(incident: TrueIncident, alert: dict[str, Any]) -> bool:
    required = KIND_LABELS.get((incident.kind, alert["alertname"]))
    return required is None or alert["labels"].get(required[0]) in required[1]


def _matches(incident: TrueIncident, alert: dict[str, Any]) -> bool:
    if not _matches_kind(incident, alert):
        return False
    label = ARG_LABEL.get(incident.kind)
    if incident.arg is None or label is None:
        return True
    return alert["labels"].get(label) in (incident.arg, "all")


def score(alerts: list[dict[str, Any]], incidents: list[TrueIncident]) -> dict[str, Any]:
    """Precision per alert, detection/delay/resolution per incident, and the totals."""
    pages = [a for a in alerts if a["labels"].get("severity") == "page"]
    per_alert: dict[str, dict[str, int]] = defaultdict(lambda: {"pages": 0, "true": 0})
    false_pages = []
    for page in pages:
        stats = per_alert[page["alertname"]]
        stats["pages"] += 1
        belongs = any(
            inc.start_ms <= page["starts_at"] <= inc.end_ms + RESOLVE_MS
            and page["alertname"] in MAY_PAGE.get(inc.kind, frozenset())
            and _matches_kind(inc, page)
            for inc in incidents
        )
        if belongs:
            stats["true"] += 1
        else:
            false_pages.append(page)
    found: list[dict[str, Any]] = []
    for inc in incidents:
        candidates = [
            a
            for a in pages
            if a["alertname"] in MUST_PAGE.get(inc.kind, frozenset())
            and inc.start_ms <= a["starts_at"] <= inc.start_ms + PAGE_WITHIN_MS
            and _matches(inc, a)
        ]
        first = min(candidates, key=lambda a: a["starts_at"], default=None)
        delay = None if first is None else (first["starts_at"] - inc.start_ms) / 1000
        ends = None if first is None else first["ends_at"]
        found.append(
            {
                "incident": inc.name,
                "start_ms": inc.start_ms,
                "end_ms": inc.end_ms,
                "detected": first is not None,
                "alert": None if first is None else first["alertname"],
                "delay_s": delay,
                "resolved_after_s": None if ends is None else (ends - inc.end_ms) / 1000,
                "resolved_in_time": ends is not None
                and inc.end_ms <= ends <= inc.end_ms + RESOLVE_MS,
            }
        )
    detected = [f for f in found if f["detected"]]
    delays: list[float] = [f["delay_s"] for f in detected]
    return {
        "pages": len(pages),
        "false_pages": len(false_pages),
        "false_page_list": [
            {"alertname": p["alertname"], "labels": p["labels"], "starts_at": p["starts_at"]}
            for p in false_pages
        ],
        "precision": (len(pages) - len(false_pages)) / len(pages) if pages else 1.0,
        "recall": len(detected) / len(found) if found else 1.0,
        "max_delay_s": max(delays, default=None),
        "per_alert": {
            name: {**s, "precision": s["true"] / s["pages"]}
            for name, s in sorted(per_alert.items())
        },
        "incidents": found,
    }


def format_score(result: dict[str, Any], origin_ms: int) -> str:
    """The score as lines for people; times relative to ``origin_ms`` (the data's start)."""
    lines = [
        f"score    pages {result['pages']}, false {result['false_pages']},"
        f" precision {result['precision']:.2f}, recall {result['recall']:.2f},"
        f" slowest detection "
        + ("-" if result["max_delay_s"] is None else f"{result['max_delay_s']:.0f}s")
    ]
    for name, s in result["per_alert"].items():
        lines.append(f"  {name}: {s['pages']} page(s), precision {s['precision']:.2f}")
    for f in result["incidents"]:
        at = (f["start_ms"] - origin_ms) / 60_000
        if f["detected"]:
            after = f["resolved_after_s"]
            res = "still firing" if after is None else f"{after:+.0f}s"
            lines.append(
                f"  {f['incident']} at +{at:.0f}m: {f['alert']} after {f['delay_s']:.0f}s,"
                f" resolved {res} after the end"
            )
        else:
            lines.append(f"  {f['incident']} at +{at:.0f}m: NOT paged within 3 minutes")
    for p in result["false_page_list"]:
        at = (p["starts_at"] - origin_ms) / 60_000
        lines.append(f"  false page: {p['alertname']} {p['labels']} at +{at:.1f}m")
    return "\n".join(lines)
