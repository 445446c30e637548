"""The collector's own metrics, on its own ``/metrics`` (one registry per app).

The worker measures the events (``salewatch_page_load_seconds`` …); the collector measures
only what happens to beacons before they are events. Every rejection reason is
pre-declared at zero so that ``rate()`` and alerts see the series before the first one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.collector.beacon import BEACON_REJECT_REASONS, BeaconRejectReason


class CollectorMetrics:
    """Counters and gauges of one collector app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = Counter(
            "salewatch_collector_beacons_accepted",
            "Beacons accepted (valid, within size and rate limits) and merged into a page load.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "salewatch_collector_beacons_rejected",
            "Beacons refused with a 4xx/5xx and no event, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.late = Counter(
            "salewatch_collector_beacons_late",
            "Beacons for a page load whose event was already produced (dropped, 204).",
            registry=self.registry,
        )
        self.produced = Counter(
            "salewatch_collector_page_views_produced",
            "page_view events handed to the Kafka producer (one per page load).",
            registry=self.registry,
        )
        self.produce_errors = Counter(
            "salewatch_collector_produce_errors",
            "page_view events the Kafka producer failed to deliver (lost).",
            registry=self.registry,
        )
        self.pending = Gauge(
            "salewatch_collector_pending_page_loads",
            "Page loads waiting for their beacons to settle before their event is produced.",
            registry=self.registry,
        )
        for reason in sorted(BEACON_REJECT_REASONS):
            self.rejected.labels(reason)

    def reject(self, reason: BeaconRejectReason) -> None:
        self.rejected.labels(reason).inc()
