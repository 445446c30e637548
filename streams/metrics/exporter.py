"""Expose a ``Totals`` on an HTTP ``/metrics`` endpoint in the Prometheus text format.

A custom collector reads the totals at scrape time, so counting never calls
prometheus_client on the hot path. Series appear once they have been touched.

Scrape cost (issue 8): prometheus_client renders ~17 µs per sample (label validation and
escaping on every sample, every scrape); a worker has ~1,000 samples, so one scrape took
~20 ms of the worker's GIL. ``TextRenderer`` produces the same text 0.0.4 bytes but
renders each series' name-and-labels prefix once and caches it (labels come from closed
sets, so the cache is bounded); a scrape then only formats the values. The HTTP server
answers plain-text scrapes with it and leaves everything else (OpenMetrics negotiation,
compression, other methods) to prometheus_client's own WSGI app over ``TotalsCollector``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from streams.metrics.defs import METRICS
from streams.metrics.totals import LabelValues, Totals


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
                bounds = _bounds(d.buckets)
                for lbl, hist in list(self.totals.histograms.get(name, {}).items()):
                    cumulative = hist.cumulative()
                    family.add_metric(lbl, list(zip(bounds, cumulative, strict=True)), hist.sum)
            yield family


def _bounds(buckets: Iterable[float]) -> list[str]:
    return [*(floatToGoString(b) for b in buckets), "+Inf"]  # type: ignore[no-untyped-call]


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class TextRenderer:
    """``generate_latest`` over a ``TotalsCollector``, with cached series prefixes.

    Output is byte-identical to prometheus_client's text format 0.0.4 rendering
    (``tests/unit/test_bench_exporter.py``): ``# HELP``/``# TYPE`` per declared metric,
    labels sorted by name, histogram buckets then ``_count`` and ``_sum``.
    """

    def __init__(self, totals: Totals) -> None:
        self.totals = totals
        self._prefixes: dict[tuple[str, LabelValues], str] = {}
        self._headers = {
            name: f"# HELP {name} {_escape_help(d.help)}\n# TYPE {name} {d.kind}\n"
            for name, d in METRICS.items()
        }
        self._bounds = {name: _bounds(d.buckets) for name, d in METRICS.items() if d.buckets}

    def _prefix(self, sample: str, metric: str, labels: LabelValues, le: str | None) -> str:
        key = (sample, (*labels, le) if le is not None else labels)
        prefix = self._prefixes.get(key)
        if prefix is None:
            pairs = dict(zip(METRICS[metric].label_names, labels, strict=True))
            if le is not None:
                pairs["le"] = le
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items()))
            prefix = self._prefixes[key] = f"{sample}{{{inner}}} " if inner else f"{sample} "
        return prefix

    def render(self) -> bytes:
        out: list[str] = []
        totals = self.totals
        fmt: Callable[[float], str] = floatToGoString
        for name, d in METRICS.items():
            out.append(self._headers[name])
            if d.kind != "histogram":
                for lbl, value in list(totals.values.get(name, {}).items()):
                    out.append(f"{self._prefix(name, name, lbl, None)}{fmt(value)}\n")
                continue
            bounds = self._bounds[name]
            bucket, count, total = f"{name}_bucket", f"{name}_count", f"{name}_sum"
            for lbl, hist in list(totals.histograms.get(name, {}).items()):
                cumulative = hist.cumulative()
                for le, n in zip(bounds, cumulative, strict=True):
                    out.append(f"{self._prefix(bucket, name, lbl, le)}{fmt(n)}\n")
                out.append(f"{self._prefix(count, name, lbl, None)}{fmt(cumulative[-1])}\n")
                out.append(f"{self._prefix(total, name, lbl, None)}{fmt(hist.sum)}\n")
        return "".join(out).encode("utf-8")


class _SilentHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def metrics_app(registry: CollectorRegistry, renderer: TextRenderer) -> Callable[..., Any]:
    """WSGI app: plain GETs get ``renderer``'s text, the rest prometheus_client's app."""
    fallback = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        plain = (
            environ["REQUEST_METHOD"] == "GET"
            and environ.get("PATH_INFO") != "/favicon.ico"
            and "openmetrics" not in environ.get("HTTP_ACCEPT", "")
            and not environ.get("QUERY_STRING")
        )
        if not plain:
            result: list[bytes] = fallback(environ, start_response)
            return result
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [renderer.render()]

    return app


def serve_metrics(totals: Totals, host: str, port: int) -> CollectorRegistry:
    """Start a daemon thread serving ``/metrics`` for ``totals``; returns its registry.

    Raises ``OSError`` when ``host:port`` cannot be bound (e.g. the port is taken).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(_ThreadingServer):
        address_family = family

    app = metrics_app(registry, TextRenderer(totals))
    httpd = make_server(host, port, app, Server, handler_class=_SilentHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return registry
