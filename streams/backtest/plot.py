"""A PNG of the key series of a backtest with the alert firings shaded (matplotlib).

The panels are PromQL over the scraped series themselves (not recording-rule names), so
the picture does not depend on how the rules are written: orders and payments per minute,
conversion (paid sessions / visits over 5 minutes), p75 page load of detail and checkout
pages, and payment success per method. Each firing is a shaded span on every panel, one
colour per alert name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.backtest.errors import BacktestError
from streams.backtest.prometheus import ThrowawayPrometheus

MAX_POINTS = 1500


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    legend: str  # label whose value names a line ("" = one line)
    scale: float = 1.0


PANELS = (
    Panel(
        "orders per minute",
        "sum by (event_type) (rate(salewatch_orders_total"
        '{event_type=~"order_created|payment_succeeded"}[1m]))',
        "event_type",
        60.0,
    ),
    Panel(
        "conversion (paid sessions / visits, 5m)",
        'sum(rate(salewatch_funnel_sessions_total{step="paid"}[5m]))'
        ' / sum(rate(salewatch_funnel_sessions_total{step="visit"}[5m]))',
        "",
    ),
    Panel(
        "p75 page load (s)",
        "histogram_quantile(0.75, sum by (page_type, le) ("
        'rate(salewatch_page_load_seconds_bucket{page_type=~"detail|checkout"}[2m])))',
        "page_type",
    ),
    Panel(
        "payment success by method (2m)",
        'sum by (payment_method) (rate(salewatch_orders_total{event_type="payment_succeeded"}[2m]))'
        " / sum by (payment_method) ("
        'rate(salewatch_orders_total{event_type=~"payment_succeeded|payment_failed"}[2m]))',
        "payment_method",
    ),
)

Line = tuple[str, list[float], list[float]]  # legend, epoch seconds, values


def plot_step(start_ms: int, end_ms: int, scrape_ms: int) -> int:
    """A step on the scrape grid giving at most ``MAX_POINTS`` points."""
    span = max(end_ms - start_ms, scrape_ms)
    multiple = -(-span // (MAX_POINTS * scrape_ms))
    return max(1, multiple) * scrape_ms


def collect(
    prom: ThrowawayPrometheus, start_ms: int, end_ms: int, scrape_ms: int
) -> list[list[Line]]:
    """The lines of every panel, read from the running Prometheus."""
    step = plot_step(start_ms, end_ms, scrape_ms)
    start = -(-start_ms // step) * step
    panels: list[list[Line]] = []
    for panel in PANELS:
        lines: list[Line] = []
        for series in prom.query_range(panel.expr, start, end_ms, step):
            name = series.labels.get(panel.legend, "") if panel.legend else ""
            xs = [ts / 1000 for ts, _ in series.samples]
            ys = [float(v) * panel.scale for _, v in series.samples]
            lines.append((name, xs, ys))
        lines.sort(key=lambda line: line[0])
        panels.append(lines)
    return panels


def render(
    path: Path,
    panels: list[list[Line]],
    firings: list[dict[str, Any]],
    period: tuple[int, int],
    title: str,
) -> None:
    """Write the PNG; ``firings`` are report entries (``alertname``, ``starts_at``, …)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise BacktestError("--plot needs matplotlib: pip install matplotlib") from None

    def when(ms: float) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    names = sorted({f["alertname"] for f in firings})
    colours = plt.get_cmap("tab10")
    colour = {name: colours(i % 10) for i, name in enumerate(names)}
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(14, 3 * len(PANELS)), sharex=True)
    for ax, panel, lines in zip(axes, PANELS, panels, strict=True):
        for name, xs, ys in lines:
            ax.plot([when(x * 1000) for x in xs], ys, linewidth=1, label=name or None)
        for firing in firings:
            end = firing["ends_at"] if firing["ends_at"] is not None else period[1]
            ax.axvspan(
                when(firing["starts_at"]), when(end), color=colour[firing["alertname"]], alpha=0.2
            )
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
        if any(name for name, _, _ in lines):
            ax.legend(loc="upper right", fontsize=8, ncol=3)
    axes[-1].set_xlim(when(period[0]), when(period[1]))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    axes[-1].set_xlabel("event time (UTC)")
    if names:
        from matplotlib.patches import Patch

        handles = [Patch(color=colour[n], alpha=0.3, label=n) for n in names]
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.975),
            ncol=min(len(names), 5),
            fontsize=9,
            title="alert firing",
            title_fontsize=9,
        )
    fig.suptitle(title, y=0.995, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.92 if names else 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)
