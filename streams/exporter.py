"""Expose a ``Totals`` on an HTTP ``/metrics`` endpoint in the Prometheus text format.

A custom collector reads the totals at scrape time, so counting never calls
prometheus_client on the hot path. Series appear once they have been touched.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from streams.metric_defs import METRICS
from streams.totals import Totals


class TotalsCollector(Collector):
    """Yields one metric family per declared metric from a live ``Totals``."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        for name, d in METRICS.items():
            family: Metric
            if d.kind == "counter":
                # prometheus_client appends _total itself
                base = name.removesuffix("_total")
                family = CounterMetricFamily(base, d.help, labels=d.label_names)
                for lbl, value in list(self.totals.values.get(name, {}).items()):
                    family.add_metric(lbl, value)
            elif d.kind == "gauge":
                family = GaugeMetricFamily(name, d.help, labels=d.label_names)
                for lbl, value in list(self.totals.values.get(name, {}).items()):
                    family.add_metric(lbl, value)
            else:
                family = HistogramMetricFamily(name, d.help, labels=d.label_names)
                bounds = [*(floatToGoString(b) for b in d.buckets), "+Inf"]  # type: ignore[no-untyped-call]
                for lbl, hist in list(self.totals.histograms.get(name, {}).items()):
                    cumulative = hist.cumulative()
                    family.add_metric(lbl, list(zip(bounds, cumulative, strict=True)), hist.sum)
            yield family


def serve_metrics(totals: Totals, host: str, port: int) -> CollectorRegistry:
    """Start a daemon thread serving ``/metrics`` for ``totals``; returns its registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    start_http_server(port, addr=host, registry=registry)
    return registry
