"""The collector's own metrics, on its own ``/metrics`` (one registry per app).

The worker measures the events (``salewatch_page_load_seconds`` …); the collector measures
only what happens to beacons before they are events. Names, help and label values are
declared in ``streams.metrics.defs.COLLECTOR_METRICS``; this module only instantiates them.
Every rejection reason is pre-declared at zero so that ``rate()`` and alerts see the series
before the first one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.collector.beacon import BeaconRejectReason
from streams.metrics.defs import COLLECTOR_METRICS

REJECTED = "salewatch_collector_beacons_rejected_total"


class CollectorMetrics:
    """Counters and gauges of one collector app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = self._counter("salewatch_collector_beacons_accepted_total")
        self.rejected = self._counter(REJECTED)
        self.late = self._counter("salewatch_collector_beacons_late_total")
        self.produced = self._counter("salewatch_collector_page_views_produced_total")
        self.produce_errors = self._counter("salewatch_collector_produce_errors_total")
        pending = COLLECTOR_METRICS["salewatch_collector_pending_page_loads"]
        self.pending = Gauge(pending.name, pending.help, registry=self.registry)
        ((_, reasons),) = COLLECTOR_METRICS[REJECTED].labels
        for reason in sorted(reasons):
            self.rejected.labels(reason)

    def _counter(self, name: str) -> Counter:
        d = COLLECTOR_METRICS[name]
        if d.kind != "counter":
            raise KeyError(f"{name} is not a counter")
        # prometheus_client appends _total itself
        return Counter(name.removesuffix("_total"), d.help, d.label_names, registry=self.registry)

    def reject(self, reason: BeaconRejectReason) -> None:
        self.rejected.labels(reason).inc()
