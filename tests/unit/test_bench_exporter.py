"""The cached /metrics renderer (issue 8) writes exactly what prometheus_client writes."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from streams.counting.pipeline import Pipeline
from streams.metrics.exporter import TextRenderer, TotalsCollector, serve_metrics
from streams.metrics.totals import Totals
from tests.unit.events_factory import NOW_MS, make_event


def reference(totals: Totals) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    return generate_latest(registry)


def busy_totals() -> Totals:
    totals = Totals()
    pipeline = Pipeline(totals)
    clicks = [
        make_event("clicks", event_id=f"c{i}", session_id=f"s{i % 7}", load_ms=i * 37)
        for i in range(200)
    ]
    pipeline.process("clicks", clicks, NOW_MS)
    pipeline.process("orders", [make_event("orders", event_id="o1")], NOW_MS)
    pipeline.close_windows(NOW_MS + 10 * 60_000)
    totals.inc("salewatch_events_received_total", ("clicks",), 200)
    totals.set("salewatch_last_event_timestamp_seconds", ("clicks",), NOW_MS / 1000)
    for value in (0.05, 0.3, 7.0, 5000.0):
        totals.observe("salewatch_event_lag_seconds", ("orders",), value)
    return totals


@pytest.mark.parametrize(
    "totals",
    [
        pytest.param(Totals(), id="nothing touched"),
        pytest.param(busy_totals(), id="after counting"),
    ],
)
def test_renderer_output_is_byte_identical(totals: Totals) -> None:
    renderer = TextRenderer(totals)
    assert renderer.render() == reference(totals)
    totals.inc("salewatch_events_received_total", ("clicks",), 5)
    assert renderer.render() == reference(totals)  # cached prefixes, fresh values


def test_label_values_are_escaped_like_prometheus_client() -> None:
    totals = Totals()
    totals.inc("salewatch_events_received_total", ('a"b\\c\nd',))
    assert TextRenderer(totals).render() == reference(totals)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_answers_plain_and_openmetrics_scrapes() -> None:
    totals = busy_totals()
    port = _free_port()
    serve_metrics(totals, "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == reference(totals)
    request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_taken_port_raises_oserror() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError):
            serve_metrics(Totals(), "127.0.0.1", s.getsockname()[1])
