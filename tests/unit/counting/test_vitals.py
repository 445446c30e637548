"""Core Web Vitals of page views (INP, CLS, TTFB) into their histograms: observed only when
the optional field is present, by closed page type and channel, le-inclusive buckets whose
bounds include the Core Web Vitals thresholds, and the same numbers as Totals.observe."""

from __future__ import annotations

from typing import Any

import pytest

from streams.counting.pipeline import Pipeline
from streams.counting.tally import VITALS
from streams.metrics.defs import METRICS
from streams.metrics.exporter import TextRenderer
from streams.metrics.totals import Totals
from tests.unit.events_factory import DROP, make_event

T0 = 1_731_283_200_000  # a window start
INP = "salewatch_web_vitals_inp_seconds"
CLS = "salewatch_web_vitals_cls"
TTFB = "salewatch_web_vitals_ttfb_seconds"
VITAL_METRICS = (INP, CLS, TTFB)

# metric -> labels -> (index of the one bucket observed, sum in the metric's unit)
Observed = dict[str, dict[tuple[str, str], tuple[int, float]]]


def count_clicks(*overrides: dict[str, Any]) -> Totals:
    totals = Totals()
    events = [
        make_event("clicks", event_id=f"c-{n}", ts=T0 + n, **o) for n, o in enumerate(overrides)
    ]
    Pipeline(totals).process("clicks", events, T0)
    return totals


def observed(totals: Totals) -> Observed:
    """The vitals histograms, each series reduced to (its single bucket, its sum)."""
    out: Observed = {}
    for name in VITAL_METRICS:
        for labels, hist in totals.histograms.get(name, {}).items():
            assert hist.count == 1, (name, labels, hist)
            (bucket,) = [i for i, n in enumerate(hist.bucket_counts) if n]
            out.setdefault(name, {})[(labels[0], labels[1])] = (bucket, hist.sum)
    return out


CASES = [
    pytest.param({}, {}, id="no vitals in the event: no vitals histogram"),
    pytest.param(
        {"inp_ms": 180},
        {INP: {("detail", "app"): (2, 0.18)}},
        id="inp only: only the INP histogram moves",
    ),
    pytest.param(
        {"inp_ms": 640, "cls": 0.02, "ttfb_ms": 95},
        {
            INP: {("detail", "app"): (5, 0.64)},
            CLS: {("detail", "app"): (1, 0.02)},
            TTFB: {("detail", "app"): (0, 0.095)},
        },
        id="all three: each into its own histogram",
    ),
    pytest.param(
        {"cls": 0.0},
        {CLS: {("detail", "app"): (0, 0.0)}},
        id="cls 0 is a measurement (a stable page), not an absent value",
    ),
    pytest.param(
        {"page_type": "amp", "channel": "tv", "inp_ms": 90},
        {INP: {("other", "other"): (1, 0.09)}},
        id="unknown page type and channel count as other",
    ),
    pytest.param(
        {"page_type": "checkout", "channel": "web", "ttfb_ms": 600_000},
        {TTFB: {("checkout", "web"): (9, 600.0)}},
        id="a value above the last bound goes to +Inf",
    ),
    pytest.param(
        {"event_type": "click", "inp_ms": 300, "cls": 0.3},
        {},
        id="a click is not a page load: its vitals count nowhere",
    ),
    pytest.param(
        {"load_ms": DROP, "inp_ms": 300},
        {INP: {("detail", "app"): (3, 0.3)}},
        id="vitals without a load time still count",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), CASES)
def test_one_page_view(overrides: dict[str, Any], expected: Observed) -> None:
    got = observed(count_clicks(overrides))
    assert got.keys() == expected.keys()
    for name, series in expected.items():
        assert got[name].keys() == series.keys()
        for labels, (bucket, total) in series.items():
            assert got[name][labels][0] == bucket, (name, labels)
            assert got[name][labels][1] == pytest.approx(total), (name, labels)


# the Core Web Vitals thresholds ("good" up to and including, "poor" above) sit exactly on
# bucket bounds: a value on the line counts as good, the next step above it does not
BOUNDARIES = [
    pytest.param("inp_ms", 200, INP, 0.2, id="INP 200 ms: good, le=0.2"),
    pytest.param("inp_ms", 201, INP, 0.3, id="INP 201 ms: needs improvement, le=0.3"),
    pytest.param("inp_ms", 500, INP, 0.5, id="INP 500 ms: not yet poor, le=0.5"),
    pytest.param("inp_ms", 501, INP, 0.75, id="INP 501 ms: poor, le=0.75"),
    pytest.param("cls", 0.1, CLS, 0.1, id="CLS 0.1: good, le=0.1"),
    pytest.param("cls", 0.1001, CLS, 0.15, id="CLS 0.1001: needs improvement, le=0.15"),
    pytest.param("cls", 0.25, CLS, 0.25, id="CLS 0.25: not yet poor, le=0.25"),
    pytest.param("cls", 0.2501, CLS, 0.5, id="CLS 0.2501: poor, le=0.5"),
    pytest.param("ttfb_ms", 800, TTFB, 0.8, id="TTFB 800 ms: good, le=0.8"),
    pytest.param("ttfb_ms", 1801, TTFB, 3.0, id="TTFB 1801 ms: poor, le=3"),
]


@pytest.mark.parametrize(("field", "value", "metric", "le"), BOUNDARIES)
def test_thresholds_are_bucket_bounds(field: str, value: float, metric: str, le: float) -> None:
    (hist,) = count_clicks({field: value}).histograms[metric].values()
    assert hist.bucket_counts[METRICS[metric].buckets.index(le)] == 1


@pytest.mark.parametrize(
    ("field", "values"),
    [
        pytest.param("inp_ms", [0, 1, 49, 50, 51, 199, 200, 999, 5000, 5001, 600_000], id="inp"),
        pytest.param("cls", [0.0, 0.0001, 0.01, 0.05, 0.0999, 0.25, 0.99, 1.0, 3.5], id="cls"),
        pytest.param("ttfb_ms", [0, 99, 100, 800, 1799, 1800, 10_000, 10_001], id="ttfb"),
    ],
)
def test_histogram_matches_per_event_observe(field: str, values: list[float]) -> None:
    """The tally buckets in the field's unit; Totals.observe in the metric's: same result."""
    vital = VITALS[field]
    got = count_clicks(*({field: v} for v in values))
    want = Totals()
    for v in values:
        want.observe(vital.metric, ("detail", "app"), v / vital.per_unit)
    (g,) = got.histograms[vital.metric].values()
    (w,) = want.histograms[vital.metric].values()
    assert (g.bucket_counts, g.count) == (w.bucket_counts, w.count)
    assert g.sum == pytest.approx(w.sum)


def test_batches_and_windows_add_up() -> None:
    """Two batches, the second also in the next window: one series, counts added."""
    totals = Totals()
    pipeline = Pipeline(totals)
    first = [make_event("clicks", event_id="a", ts=T0, inp_ms=120)]
    second = [
        make_event("clicks", event_id="b", ts=T0 + 1, inp_ms=120),
        make_event("clicks", event_id="c", ts=T0 + 60_000, inp_ms=700),
    ]
    pipeline.process("clicks", first, T0)
    pipeline.process("clicks", second, T0 + 60_000)
    (hist,) = totals.histograms[INP].values()
    assert hist.count == 3
    assert hist.bucket_counts[2] == 2 and hist.bucket_counts[5] == 1
    assert hist.sum == pytest.approx(0.94)


def test_exposed_on_metrics_with_cumulative_buckets() -> None:
    text = TextRenderer(count_clicks({"inp_ms": 250}, {"inp_ms": 90})).render().decode()
    # labels sorted by name, as prometheus_client renders them
    for le, n in (("0.1", 1), ("0.2", 1), ("0.3", 2), ("+Inf", 2)):
        assert f'{INP}_bucket{{channel="app",le="{le}",page_type="detail"}} {n}.0' in text
    assert f'{INP}_count{{channel="app",page_type="detail"}} 2.0' in text
    assert f"{CLS}_count" not in text, "no CLS observed: no CLS series"


def test_every_vital_feeds_a_declared_histogram_with_page_type_and_channel() -> None:
    for vital in VITALS.values():
        d = METRICS[vital.metric]
        assert d.kind == "histogram"
        assert d.label_names == ("page_type", "channel")
        assert len(vital.bounds) == len(d.buckets)
