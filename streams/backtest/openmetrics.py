"""Prometheus series as OpenMetrics text with timestamps, the input of ``promtool``.

A scrape of a :class:`~streams.metrics.totals.Totals` at tick ``T`` becomes one line per series,
``name{labels} value T_seconds``, with the series the live Prometheus would store: counters
under their ``_total`` names, histograms as ``_bucket`` (cumulative, with ``le``, ``+Inf``
last), ``_sum`` and ``_count``, gauges as they are, plus ``up 1``, all with the target
labels the live scrape adds (``job``, ``instance``). No ``# TYPE`` lines: the TSDB stores
no metric type, and a family's lines may then repeat at every tick (``promtool`` accepts
that; declared families would have to be contiguous).

Values follow the Go float syntax Prometheus reads (``NaN``, ``+Inf``); label values are
escaped (backslash, double quote, newline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.utils import floatToGoString

from streams.metrics.defs import METRICS
from streams.metrics.totals import HistogramValue, LabelValues, Totals

JOB = "salewatch"
INSTANCE = "backtest"
EOF_LINE = "# EOF\n"


def format_value(value: float) -> str:
    """A sample value as Prometheus parses it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_timestamp(ts_ms: int) -> str:
    """Epoch ms as OpenMetrics seconds, exact to the millisecond."""
    seconds, ms = divmod(ts_ms, 1000)
    return f"{seconds}.{ms:03d}" if ms else str(seconds)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_text(name: str, labels: Iterable[tuple[str, str]]) -> str:
    """``name{a="x",b="y"}`` (``name`` alone without labels)."""
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
    return f"{name}{{{inner}}}" if inner else name


def series_of(name: str, labels: Mapping[str, str]) -> str:
    """The series text of a query result: ``labels`` without ``__name__``, sorted."""
    return series_text(name, sorted((k, v) for k, v in labels.items() if k != "__name__"))


class TotalsScraper:
    """Formats :class:`Totals` snapshots; caches each series' text and last line.

    ``scrape(totals, ts_ms)`` returns the OpenMetrics lines of every series touched so far
    (series appear once touched, as on the live ``/metrics``) and ``up``.
    """

    def __init__(self, job: str = JOB, instance: str = INSTANCE) -> None:
        self.target = (("job", job), ("instance", instance))
        self.up = series_text("up", self.target) + " 1"
        # (series name, label values, le) -> series text + " "
        self._prefix: dict[tuple[str, LabelValues, str], str] = {}
        self._bounds: dict[str, list[str]] = {
            name: [*(floatToGoString(b) for b in d.buckets), "+Inf"]  # type: ignore[no-untyped-call]
            for name, d in METRICS.items()
            if d.kind == "histogram"
        }
        self._values: dict[str, dict[LabelValues, tuple[float, str]]] = {}
        self._histograms: dict[str, dict[LabelValues, tuple[tuple[int, float], list[str]]]] = {}
        self.lines_written = 0

    @property
    def series(self) -> int:
        """Distinct series written so far, ``up`` included."""
        return len(self._prefix) + 1

    def _series(self, base: str, name: str, labels: LabelValues, le: str = "") -> str:
        key = (name, labels, le)
        text = self._prefix.get(key)
        if text is None:
            pairs = list(zip(METRICS[base].label_names, labels, strict=True))
            if le:
                pairs.append(("le", le))
            text = self._prefix[key] = series_text(name, [*pairs, *self.target]) + " "
        return text

    def scrape(self, totals: Totals, ts_ms: int) -> str:
        # each series' "name{labels} value" is cached until its value changes, and the
        # timestamp is joined in once per scrape: most series do not change every tick
        ts = " " + format_timestamp(ts_ms) + "\n"
        parts = [self.up]
        append, extend = parts.append, parts.extend
        for name, values in totals.values.items():
            cache = self._values.setdefault(name, {})
            for labels, value in values.items():
                hit = cache.get(labels)
                if hit is None or hit[0] != value:
                    text = self._series(name, name, labels) + format_value(value)
                    hit = cache[labels] = (value, text)
                append(hit[1])
        for name, histograms in totals.histograms.items():
            blocks = self._histograms.setdefault(name, {})
            for labels, hist in histograms.items():
                block = blocks.get(labels)
                if block is None or block[0] != (hist.count, hist.sum):
                    block = blocks[labels] = (
                        (hist.count, hist.sum),
                        self._histogram(name, labels, hist),
                    )
                extend(block[1])
        self.lines_written += len(parts)
        return ts.join(parts) + ts

    def _histogram(self, name: str, labels: LabelValues, hist: HistogramValue) -> list[str]:
        bounds = self._bounds[name]
        bucket = name + "_bucket"
        out = [
            self._series(name, bucket, labels, le) + str(n)
            for le, n in zip(bounds, hist.cumulative(), strict=True)
        ]
        out.append(self._series(name, name + "_sum", labels) + format_value(hist.sum))
        out.append(self._series(name, name + "_count", labels) + str(hist.count))
        return out
