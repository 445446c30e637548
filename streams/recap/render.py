"""``index.html`` of a recap: one self-contained page, readable offline and printable.

Charts are matplotlib PNGs embedded as base64 ``data:`` URIs (no file beside the page, no
script, no web font); tables are plain HTML. Times are shown in the sale's time zone.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from streams.metrics.defs import FUNNEL_STEPS
from streams.recap.compute import RFM_SEGMENTS

CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
.figures { display: grid; grid-template-columns: repeat(4, 1fr); gap: 0.8em; }
.figure { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em; }
.figure b { display: block; font-size: 1.5em; } .figure span { color: #666; }
img { max-width: 100%; } table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; } .note { color: #a60; }
section { break-inside: avoid; }
@media print { body { margin: 0; max-width: none; } }
"""


def money(value: float | None) -> str:
    return "–" if value is None else f"¥{value:,.2f}"


def count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def local_time(ms: int | None, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ms is None:
        return "–"
    return datetime.fromtimestamp(ms / 1000, zone).strftime(fmt)


def png_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _times(points: Sequence[Sequence[float]], zone: ZoneInfo) -> list[datetime]:
    return [datetime.fromtimestamp(p[0] / 1000, zone) for p in points]


def _cumulative(points: Sequence[Sequence[float]]) -> list[float]:
    out, total = [], 0.0
    for _, v in points:
        total += v
        out.append(total)
    return out


def gmv_chart(recap: dict[str, Any], zone: ZoneInfo) -> str:
    fig, (per_minute, cum) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    series = recap["gmv_per_minute"]
    yuan = FuncFormatter(lambda v, _: f"¥{v:,.0f}")
    if series:
        per_minute.bar(_times(series, zone), [p[1] for p in series], width=1 / 1440, color="#3b7")
        cum.plot(_times(series, zone), _cumulative(series), label="paid GMV", color="#3b7", lw=2)
    if recap.get("compare_gmv_per_minute"):
        previous = recap["compare_gmv_per_minute"]
        cum.plot(
            _times(previous, zone),
            _cumulative(previous),
            label="compared sale (aligned by minutes since start)",
            color="#888",
            lw=1.5,
            ls="--",
        )
    if recap.get("gmv_target"):
        ends = [recap["from_ms"], recap["to_ms"]]
        cum.plot(
            [datetime.fromtimestamp(ms / 1000, zone) for ms in ends],
            [0, recap["gmv_target"]],
            label="target (linear)",
            color="#c33",
            lw=1,
        )
    per_minute.set_title("Paid GMV per minute")
    cum.set_title("Cumulative paid GMV")
    for ax in (per_minute, cum):
        ax.yaxis.set_major_formatter(yuan)
        ax.grid(alpha=0.3)
    if cum.get_legend_handles_labels()[0]:
        cum.legend(loc="upper left")
    cum.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))  # type: ignore[no-untyped-call]
    return png_data_uri(fig)


def bar_chart(
    labels: Sequence[str], values: Sequence[float], title: str, fmt: str, color: str
) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * max(len(labels), 2) + 1))
    ax.barh(list(labels), list(values), color=color)
    ax.invert_yaxis()
    for y, v in enumerate(values):
        ax.text(v, y, " " + fmt.format(v), va="center")
    ax.set_title(title)
    ax.margins(x=0.25)
    return png_data_uri(fig)


def funnel_chart(rows: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    width = 0.8 / max(len(rows), 1)
    for i, row in enumerate(rows):
        xs = [j + i * width for j in range(len(FUNNEL_STEPS))]
        ax.bar(xs, [row[s] for s in FUNNEL_STEPS], width=width, label=row["channel"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(FUNNEL_STEPS))], FUNNEL_STEPS)
    ax.set_yscale("log")
    ax.set_title("Sessions per funnel step by channel (log scale)")
    ax.legend()
    return png_data_uri(fig)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(label: str, value: str, element_id: str) -> str:
    return f'<div class="figure"><span>{label}</span><b id="{element_id}">{value}</b></div>'


def render(recap: dict[str, Any], *, title: str, timezone: str) -> str:
    """The page's HTML text."""
    zone = ZoneInfo(timezone)
    r = recap
    figures = [
        ("Paid GMV", money(r["gmv_paid"]), "gmv_paid"),
        ("Paid orders", count(r["orders_paid"]), "orders_paid"),
        ("Conversion", percent(r["conversion"]), "conversion"),
        ("Average order value", money(r["aov"]), "aov"),
        ("Visit sessions", count(r["visit_sessions"]), "visit_sessions"),
        ("Paid sessions", count(r["paid_sessions"]), "paid_sessions"),
        ("Peak minute", local_time(r["peak_minute"], zone, "%H:%M"), "peak_minute"),
        ("Peak minute GMV", money(r["peak_minute_gmv"]), "peak_minute_gmv"),
        ("Tickets / 1,000 paid", f"{r['tickets_per_1000_paid'] or 0:.1f}", "tickets_per_1000"),
        ("Target", money(r["gmv_target"]), "gmv_target"),
        ("GMV / target", percent(r["gmv_vs_target"], 1), "gmv_vs_target"),
        ("Compared sale GMV", money(r.get("compare_gmv_paid")), "compare_gmv_paid"),
    ]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{local_time(r["from_ms"], zone)} → {local_time(r["to_ms"], zone)} '
        f"({html.escape(timezone)})</p>",
        '<div class="figures">' + "".join(_figure(*f) for f in figures) + "</div>",
        "<section><h2>GMV</h2>",
        f'<img alt="paid GMV per minute and cumulative" src="{gmv_chart(r, zone)}"></section>',
        "<section><h2>Funnel by channel</h2>",
    ]
    funnel = r["funnel_by_channel"]
    if funnel:
        parts.append(f'<img alt="funnel by channel" src="{funnel_chart(funnel)}">')
    parts.append(
        _table(
            ["channel", *FUNNEL_STEPS, "visit → paid"],
            [
                [
                    f["channel"],
                    *(count(f[s]) for s in FUNNEL_STEPS),
                    percent(f["paid"] / f["visit"] if f["visit"] else None),
                ]
                for f in funnel
            ],
        )
        + "</section>"
    )
    pay = r["payment_success_by_method"]
    parts.append("<section><h2>Payment success by method</h2>")
    if pay:
        parts.append(
            '<img alt="payment success by method" src="'
            + bar_chart(
                [p["payment_method"] for p in pay],
                [100 * (p["success_rate"] or 0) for p in pay],
                "payment success (%)",
                "{:.1f} %",
                "#37b",
            )
            + '">'
        )
    parts.append(
        _table(
            ["payment method", "succeeded", "failed", "success"],
            [
                [
                    p["payment_method"],
                    count(p["succeeded"]),
                    count(p["failed"]),
                    percent(p["success_rate"]),
                ]
                for p in pay
            ],
        )
        + "</section>"
    )
    speed = r["page_speed_p75_by_page_type"]
    parts.append("<section><h2>Page load p75 by page type</h2>")
    if speed:
        parts.append(
            '<img alt="page load p75" src="'
            + bar_chart(
                [s["page_type"] for s in speed],
                [s["p75_ms"] for s in speed],
                "page load (LCP) p75, ms",
                "{:,.0f} ms",
                "#b73",
            )
            + '">'
        )
    else:
        parts.append('<p class="note">No page view in the window carries a load time.</p>')
    parts.append("</section>")
    parts.append(_alerts_section(r, zone))
    parts.append(_customers_section(r["customers"], zone))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def _alerts_section(r: dict[str, Any], zone: ZoneInfo) -> str:
    out = "<section><h2>Alerts that fired</h2>"
    alerts = r.get("alerts")
    if alerts is None:
        note = r.get("alerts_note", "not read")
        return out + f'<p class="note">Skipped: {html.escape(note)}</p></section>'
    if not alerts:
        return out + "<p>None.</p></section>"
    rows = [
        [
            a["alertname"],
            ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())),
            local_time(a["starts_at_ms"], zone, "%m-%d %H:%M:%S"),
            local_time(a["ends_at_ms"], zone, "%m-%d %H:%M:%S"),
            f"{a['duration_s'] // 60} min {a['duration_s'] % 60} s",
        ]
        for a in alerts
    ]
    return out + _table(["alert", "labels", "from", "to", "duration"], rows) + "</section>"


def _customers_section(c: dict[str, Any], zone: ZoneInfo) -> str:
    rep = c["repurchase"]
    rows = []
    for key in ("d1", "d7"):
        d = rep[key]
        reach = "" if d["complete"] else " (data ends " + local_time(rep["data_until_ms"], zone)
        rows.append(
            [
                key.upper(),
                count(d["repurchased"]),
                percent(d["rate"]) + (reach + ")" if reach else ""),
            ]
        )
    segments = c["rfm_segments"]
    return (
        "<section><h2>Customers, the day after</h2>"
        + _table(
            ["buyers", "new", "returning"],
            [[count(c["buyers"]), count(c["new_buyers"]), count(c["returning_buyers"])]],
        )
        + f"<p>Returning = paid at least once in the {c['lookback_days']} days before the "
        "sale. Repurchase of the sale's new buyers: another paid order within 1 / 7 days of "
        "their first paid order of the sale.</p>"
        + _table(["window", "new buyers who bought again", "rate"], rows)
        + "<h3>RFM segments of the sale's buyers</h3>"
        + _table(["segment", "buyers"], [[s, count(segments[s])] for s in RFM_SEGMENTS])
        + "<p>Recency and monetary value scored by tertile among the sale's buyers, "
        "frequency = paid orders: champions (2+ orders, recent, top third by amount), loyal "
        "(2+ orders), big spenders (one order, top third), promising (one recent order), "
        "one-off (the rest).</p></section>"
    )
