"""The results as a table (stdout, markdown for RESULTS.md), target checks and a chart.

python -m bench.report [bench/results.json] [--markdown] [--chart bench/results.png]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import ratio
from bench.variants import DESCRIPTIONS
from bench.workload import Message

Row = list[str]


def workload_summary(messages: Sequence[Message]) -> dict[str, Any]:
    per_topic: Counter[str] = Counter()
    for m in messages:
        per_topic[m.topic] += m.events
    events = sum(per_topic.values())
    return {
        "messages": len(messages),
        "events": events,
        "per_topic": dict(per_topic),
        "bytes_per_event": round(sum(len(m.value) for m in messages) / max(events, 1), 1),
    }


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _load(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    if not m:
        return "–"
    text = f"{m['load1_start']:.1f}→{m['load1_end']:.1f} ({m['busy_cores']:.1f} busy"
    if "broker_cores" in m:
        text += f"; broker {m['broker_cores']:.2f}, CH {m['clickhouse_cores']:.2f}"
    return text + ")"


def throughput_rows(results: dict[str, Any]) -> list[Row]:
    return [row for _, row in _throughput(results)]


def _throughput(results: dict[str, Any]) -> list[tuple[str, Row]]:
    """(short label, table row) per consumer run."""
    t = results.get("throughput", {})
    ceiling = t.get("ceiling", {}).get("rate", math.nan)
    floor = t.get("floor", {}).get("rate", math.nan)
    floor_cpu = t.get("floor", {}).get("cpu_us_per_event", math.nan)
    rows: list[tuple[str, Row]] = []

    def add(name: str, r: dict[str, Any], short: str) -> None:
        if not r or "rate" not in r:
            return
        cpu = r.get("cpu_us_per_event", math.nan)
        rows.append(
            (
                short,
                [
                    name,
                    _fmt(r["rate"]),
                    _fmt(cpu, 1),
                    _fmt(ratio(r["rate"], ceiling), 3),
                    _fmt(ratio(r["rate"], floor), 2),
                    _fmt(ratio(floor_cpu, cpu), 2),
                    _load(r),
                ],
            )
        )

    add("ceiling: aiokafka getmany + orjson", t.get("ceiling", {}), "ceiling")
    add("Faust floor: bare agent, decode only", t.get("floor", {}), "Faust floor")
    add(f"1 worker: {DESCRIPTIONS['worker']}", t.get("worker", {}), "worker, 1")
    for name, r in results.get("variants", {}).items():
        add(f"1 worker: {DESCRIPTIONS.get(name, name)}", r, f"{name}, 1")
    for name, r in results.get("scaleout", {}).items():
        add(f"2 workers: {DESCRIPTIONS.get(name, name)}", r, f"{name}, 2")
    return rows


THROUGHPUT_HEADER = [
    "consumer",
    "events/s",
    "CPU µs/event",
    "× ceiling",
    "× floor (events/s)",
    "× floor (CPU)",
    "load 1m (busy cores)",
]
LOAD_NOTE = (
    "load 1m: the machine's 1-minute load average at start→end; busy: cores in use by all "
    "processes during the run (2 = saturated); broker/CH: cores used by tansu/ClickHouse"
)


def freshness_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for key, r in results.get("freshness", {}).items():
        if not isinstance(r, dict):  # the whole step failed: {"error": "..."}
            r = {"error": str(r)}
        if "to_metrics" not in r:
            rows.append([key, "error", r.get("error", "")[:60], "", "", "", "", ""])
            continue
        m, c = r["to_metrics"], r["to_clickhouse"]
        rows.append(
            [
                key,
                f"{_fmt(r['rate_produced'])} ({r['workers']} w)",
                _percentiles(m),
                _percentiles(c),
                f"{r['markers'] - r['missing_metrics']}/{r['markers']}",
                _fmt(r["backlog_at_load_end"]),
                f"{r['loadgen_cores']:.2f} / {sum(r['worker_cores']):.2f}",
                _load(r),
            ]
        )
    return rows


def _seconds(value: float) -> str:
    # a percentile that falls on markers never seen (inf; nan when every one was missing)
    return "not seen" if not math.isfinite(value) else f"{value:.2f}"


def _percentiles(summary: dict[str, float]) -> str:
    return " / ".join(_seconds(summary[q]) for q in ("p50", "p95", "p99"))


FRESHNESS_HEADER = [
    "variant@load",
    "produced ev/s",
    "/metrics p50/p95/p99 s",
    "ClickHouse p50/p95/p99 s",
    "markers seen",
    "backlog at end",
    "cores: loadgen / workers",
    "load 1m (busy cores)",
]


def memory_rows(results: dict[str, Any]) -> list[Row]:
    m = results.get("memory", {})
    return [
        [_fmt(r["events"]), _fmt(r["rss_mb"], 1), _late(r.get("late_share"))]
        for r in m.get("readings", [])
    ]


def _late(share: float | None) -> str:
    # older results did not record it
    return "–" if share is None else f"{100 * share:.1f} %"


def targets(results: dict[str, Any]) -> list[Row]:
    """Each issue-8 target with the measured value and whether it is met."""
    t = results.get("throughput", {})
    floor = t.get("floor", {}).get("rate", math.nan)
    out: list[Row] = []

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "NOT met")

    candidates = {"worker": t.get("worker", {}), **results.get("variants", {})}
    for name, r in candidates.items():
        if "rate" in r:
            x = ratio(r["rate"], floor)
            out.append(
                [
                    f"{name}: ≥ 1.5× Faust floor",
                    f"{x:.2f}×",
                    verdict(None if math.isnan(x) else x >= 1.5),
                ]
            )
    fresh = results.get("freshness", {})
    for variant in dict.fromkeys(key.split("@")[0] for key in fresh):
        r = fresh.get(f"{variant}@50000", {})
        if "to_metrics" in r:
            sustained = (
                r["rate_produced"] >= 0.98 * r["rate_target"]
                and r["backlog_at_load_end"] <= 0.05 * r["rate_target"] * r["duration_s"]
            )
            m99, c99 = r["to_metrics"]["p99"], r["to_clickhouse"]["p99"]
            ok = sustained and m99 <= 2 and c99 <= 5
            out.append(
                [
                    f"{variant}: 2 workers sustain 50k ev/s, p99 ≤ 2 s /metrics, ≤ 5 s CH",
                    f"produced {r['rate_produced']:,.0f}/s, "
                    f"backlog {r['backlog_at_load_end']:,.0f}, "
                    f"p99 {_seconds(m99)} / {_seconds(c99)} s",
                    verdict(ok),
                ]
            )
        r = fresh.get(f"{variant}@5000", {})
        if "to_metrics" in r:
            m99 = r["to_metrics"]["p99"]
            out.append(
                [
                    f"{variant}: 5k ev/s p99 ≤ 1 s to /metrics",
                    f"{_seconds(m99)} s",
                    verdict(m99 <= 1),
                ]
            )
    mem = results.get("memory", {})
    if mem.get("readings"):
        ok = mem["growth_pct"] <= 10
        out.append(
            [
                "RSS flat (≤ 10 % growth) first → last checkpoint",
                f"{mem['growth_mb']:+.1f} MiB ({mem['growth_pct']:+.1f} %)",
                verdict(ok),
            ]
        )
    one = {"worker": t.get("worker", {}), **results.get("variants", {})}
    for name, r in results.get("scaleout", {}).items():
        single = one.get(name, {})
        if "rate" in r and "rate" in single:
            x = ratio(r["rate"], single["rate"])
            out.append([f"{name}: 2 workers ≥ 1.8× one", f"{x:.2f}×", verdict(x >= 1.8)])
    return out


def _render(header: Row, rows: list[Row], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(lines)


def table(results: dict[str, Any], markdown: bool = False) -> str:
    shape = results.get("max_array", 1)
    shape_text = "one event per message" if shape <= 1 else f"clicks in arrays of ≤ {shape}"
    parts = [
        f"{results.get('events', 0):,} events ({shape_text}), "
        f"machine {results.get('machine', {}).get('cpu')}, {LOAD_NOTE}",
        _render(THROUGHPUT_HEADER, throughput_rows(results), markdown),
    ]
    if results.get("freshness"):
        parts.append(_render(FRESHNESS_HEADER, freshness_rows(results), markdown))
    if results.get("memory", {}).get("readings"):
        m = results["memory"]
        parts.append(
            f"memory: {m['distinct_users']:,} distinct users, {m['sessions']:,} sessions, "
            f"{m['event_time_span_h']} h of event time"
        )
        header = ["events", "worker RSS MiB", "counted late"]
        parts.append(_render(header, memory_rows(results), markdown))
    parts.append(_render(["target", "measured", "verdict"], targets(results), markdown))
    return "\n\n".join(parts)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    labelled = _throughput(results)
    names = [short for short, _ in labelled]
    rates = [_number(row[1]) for _, row in labelled]
    cpus = [_number(row[2]) for _, row in labelled]
    ax = axes[0][0]
    ax.barh(names, rates, color="tab:blue")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("events/s (log scale; workers: 1 or 2 processes)")
    ax.set_title("Throughput on the same pre-produced events")
    ax.invert_yaxis()
    for i, v in enumerate(rates):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    ax = axes[0][1]
    ax.barh(names, cpus, color="tab:orange")
    ax.set_xlabel("CPU µs per event (consumer processes)")
    ax.set_title("CPU µs per event (depends less on the shared machine)")
    ax.invert_yaxis()
    for i, v in enumerate(cpus):
        ax.text(v, i, f" {v:,.1f}", va="center", fontsize=8)
    ax = axes[1][0]
    fresh = [(k, r) for k, r in results.get("freshness", {}).items() if "to_metrics" in r]
    if fresh:
        labels = [k for k, _ in fresh]
        x = range(len(fresh))
        finite = [
            r[w][q]
            for _, r in fresh
            for w in ("to_metrics", "to_clickhouse")
            for q in ("p50", "p99")
            if math.isfinite(r[w][q])
        ]
        cap = max([*finite, 10.0]) * 1.5
        for offset, (what, color) in enumerate(
            (("to_metrics", "tab:green"), ("to_clickhouse", "tab:purple"))
        ):
            p50 = [min(r[what]["p50"], cap) for _, r in fresh]
            p99 = [min(r[what]["p99"], cap) for _, r in fresh]
            xs = [i + (offset - 0.5) * 0.4 for i in x]
            ax.bar(xs, p99, width=0.38, color=color, alpha=0.35, label=f"{what} p99")
            ax.bar(xs, p50, width=0.38, color=color, label=f"{what} p50")
            for xi, (_, r) in zip(xs, fresh, strict=True):
                if not math.isfinite(r[what]["p99"]):
                    ax.text(xi, cap, "not\nseen", ha="center", va="top", fontsize=7)
        ax.axhline(1, color="grey", ls=":", lw=1)
        ax.axhline(2, color="grey", ls="--", lw=1)
        ax.axhline(5, color="grey", ls="-.", lw=1)
        ax.set_xticks(list(x), labels, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("seconds (log); targets 1 / 2 / 5 s")
        ax.set_title("Freshness, 2 workers: production → /metrics, → ClickHouse")
        ax.legend(fontsize=8)
    ax = axes[1][1]
    mem = results.get("memory", {})
    if mem.get("trace"):
        done = [e / 1e6 for e, _ in mem["trace"]]
        rss = [r for _, r in mem["trace"]]
        ax.plot(done, rss, color="tab:red", lw=1)
        for reading in mem["readings"]:
            ax.plot(reading["events"] / 1e6, reading["rss_mb"], "ko")
            ax.annotate(
                f"{reading['rss_mb']:.0f} MiB",
                (reading["events"] / 1e6, reading["rss_mb"]),
                textcoords="offset points",
                xytext=(0, 6),
                fontsize=8,
            )
        ax.set_ylim(bottom=0)
        ax.set_xlabel("events stored (millions)")
        ax.set_ylabel("worker RSS (MiB)")
        ax.set_title(f"Memory: 1 worker, {mem.get('distinct_users', 0):,} distinct users")
    fig.suptitle(
        f"salewatch bench {results.get('started', '')} — {results.get('machine', {}).get('cpu')}"
        f", {results.get('machine', {}).get('cores')} cores (shared machine)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _number(text: str) -> float:
    return 0.0 if text == "–" else float(text.replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path, nargs="?", default=Path("bench/results.json"))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--chart", type=Path)
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    print(table(results, markdown=args.markdown))
    if args.chart:
        chart(results, args.chart)


if __name__ == "__main__":
    main()
