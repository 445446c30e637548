"""Totals hold counter/gauge/histogram values; the exporter renders them for Prometheus."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from streams.metrics.defs import METRICS
from streams.metrics.exporter import TotalsCollector
from streams.metrics.totals import Totals


def scrape(totals: Totals) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counter_accumulates_per_label_set() -> None:
    totals = Totals()
    totals.inc("salewatch_events_received_total", ("orders",), 3)
    totals.inc("salewatch_events_received_total", ("orders",), 2)
    totals.inc("salewatch_events_received_total", ("clicks",))
    samples = scrape(totals)
    assert samples[("salewatch_events_received_total", (("topic", "orders"),))] == 5
    assert samples[("salewatch_events_received_total", (("topic", "clicks"),))] == 1


def test_payment_orders_are_exported_at_zero_before_the_first_order() -> None:
    """rate() over a series born at 3 would miss those 3 failed orders: every method and
    outcome is there at 0 from the start, and only metrics marked so."""
    samples = scrape(Totals())
    zero = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "salewatch_payment_orders_total"
    }
    methods = dict(METRICS["salewatch_payment_orders_total"].labels)["payment_method"]
    assert len(zero) == 2 * len(methods) and set(zero.values()) == {0.0}
    assert (("outcome", "failed"), ("payment_method", "alipay")) in zero
    counters = {name for name, _ in samples if not name.endswith("_created")}
    assert counters == {"salewatch_payment_orders_total"}


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    totals = Totals()
    for value in (0.05, 0.3, 0.3, 7.0, 5000.0):
        totals.observe("salewatch_event_lag_seconds", ("orders",), value)
    samples = scrape(totals)

    def bucket(le: str) -> float:
        return samples[("salewatch_event_lag_seconds_bucket", (("le", le), ("topic", "orders")))]

    assert (bucket("0.1"), bucket("0.5"), bucket("10.0"), bucket("+Inf")) == (1, 3, 4, 5)
    assert samples[("salewatch_event_lag_seconds_count", (("topic", "orders"),))] == 5
    assert samples[("salewatch_event_lag_seconds_sum", (("topic", "orders"),))] == pytest.approx(
        5007.65
    )


def test_gauge_set_max_keeps_the_largest() -> None:
    totals = Totals()
    name = "salewatch_last_event_timestamp_seconds"
    for value in (10.0, 30.0, 20.0):
        totals.set_max(name, ("orders",), value)
    assert totals.get(name, ("orders",)) == 30.0


@pytest.mark.parametrize(
    ("method", "name"),
    [
        pytest.param("inc", "salewatch_last_event_timestamp_seconds", id="inc on a gauge"),
        pytest.param("set", "salewatch_events_received_total", id="set on a counter"),
        pytest.param("inc", "salewatch_no_such_metric_total", id="undeclared name"),
    ],
)
def test_wrong_kind_or_undeclared_metric_is_refused(method: str, name: str) -> None:
    totals = Totals()
    with pytest.raises(KeyError):
        if method == "inc":
            totals.inc(name, ("orders",))
        else:
            totals.set(name, ("orders",), 1.0)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_is_well_formed(name: str) -> None:
    d = METRICS[name]
    assert name.startswith("salewatch_")
    assert (d.kind == "counter") == name.endswith("_total")
    assert d.help.strip()
    forbidden = {"user_id", "session_id", "order_id", "event_id", "ticket_id", "item_id"}
    assert not forbidden & set(d.label_names), "ids must never be labels"
    assert all(len(values) > 0 for _, values in d.labels)
    assert d.max_series <= 5000, f"{name} may produce {d.max_series} series"
    assert (d.kind == "histogram") == bool(d.buckets)
