"""The collector exposes exactly the metrics declared in streams.metrics.defs (names, types,
label values), every rejection reason from the start, and none of the worker's names."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.collector.beacon import BEACON_REJECT_REASONS
from streams.collector.metrics import CollectorMetrics
from streams.metrics.defs import ALL_METRICS, COLLECTOR_METRICS, METRICS


def exposed() -> dict[str, tuple[str, set[tuple[tuple[str, str], ...]]]]:
    """name -> (type, label sets of its samples) as a scrape of a fresh collector sees it."""
    text = generate_latest(CollectorMetrics().registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue  # prometheus_client's creation time (`salewatch collect` turns it off)
        # the parser drops _total from counter family names; samples keep it
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = (family.type, {tuple(sorted(s.labels.items())) for s in samples})
    return out


def test_exposed_names_and_types_are_the_declared_ones() -> None:
    got = exposed()
    assert set(got) == set(COLLECTOR_METRICS)
    for name, (kind, _) in got.items():
        assert kind == COLLECTOR_METRICS[name].kind, name


def test_every_rejection_reason_is_exposed_at_zero_before_the_first_one() -> None:
    _, label_sets = exposed()["salewatch_collector_beacons_rejected_total"]
    assert {dict(ls)["reason"] for ls in label_sets} == BEACON_REJECT_REASONS
    ((_, declared),) = COLLECTOR_METRICS["salewatch_collector_beacons_rejected_total"].labels
    assert declared == BEACON_REJECT_REASONS


def test_collector_and_worker_names_do_not_overlap() -> None:
    assert not set(METRICS) & set(COLLECTOR_METRICS)
    assert ALL_METRICS.keys() == METRICS.keys() | COLLECTOR_METRICS.keys()
    assert all(name.startswith("salewatch_collector_") for name in COLLECTOR_METRICS)
