"""Generate ``docs/metrics.md`` from the metric declarations: ``python -m streams.metrics.docs``.

The document has two parts: one section per business number (what it means, which metric
and which ClickHouse table/column hold it, a PromQL and an SQL example: :data:`NUMBERS`,
written by hand here), then a reference of every declared metric (name, type, labels with
their allowed values, help; the worker's and the beacon collector's) and every rollup table,
generated from ``streams.metrics.defs`` and ``streams.counting.rollups.ROLLUP_COLUMNS``.
It also writes the README's war-room queries (``streams.metrics.war_room``) between their
markers.
``tests/unit/metrics/test_docs.py`` fails when a committed file is out of date and runs
every SQL example on ClickHouse (chdb). ``--check`` exits 1 if a file would change.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.counting.funnel import SESSION_TIMEOUT_MS
from streams.counting.rollups import ROLLUP_COLUMNS
from streams.counting.windows import DEFAULT_LATENESS_MS, DEFAULT_SIZE_MS
from streams.metrics.defs import COLLECTOR_METRICS, METRICS, MetricDef
from streams.metrics.war_room import LE_MS, README_PATH, with_war_room

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
COMMAND = "python -m streams.metrics.docs"
# SQL examples use the default database; tests substitute their own
SQL_DATABASE = "salewatch"


@dataclass(frozen=True)
class Number:
    """One business number: its definition and where to read it live and in ClickHouse."""

    title: str
    definition: str
    metrics: tuple[str, ...]
    columns: str
    promql: str
    sql: str


NUMBERS: tuple[Number, ...] = (
    Number(
        "Page views",
        "`page_view` events (valid, not late, not duplicate) by channel, traffic source and "
        "page type.",
        ("salewatch_page_views_total",),
        "`traffic_1m.page_views` (by channel, traffic_source); `page_load_1m.page_views` "
        "(by page_type, channel)",
        "sum by (channel) (rate(salewatch_page_views_total[5m])) * 60",
        "SELECT window_start, channel, sum(page_views) AS page_views\n"
        "FROM salewatch.traffic_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY window_start, channel\n"
        "ORDER BY window_start, channel",
    ),
    Number(
        "Visits (sessions started)",
        "Sessions that reached the funnel step `visit`, in the window where they reached it. "
        "A session is one `session_id` until a gap of 30 minutes or more between its events "
        "(29:59.999 continues it, 30:00.000 starts a new one); channel = the session's first "
        "event's, traffic source = that of the page view that started it (`other` when a "
        "cart or order event started it).",
        ("salewatch_sessions_started_total",),
        "`traffic_1m.visits`",
        "sum by (traffic_source) (increase(salewatch_sessions_started_total[1h]))",
        "SELECT traffic_source, sum(visits) AS visits\n"
        "FROM salewatch.traffic_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY traffic_source\n"
        "ORDER BY visits DESC",
    ),
    Number(
        "Active users",
        "Distinct `user_id`s with a `page_view` in the last closed 1-minute window (exact) and "
        "in the last 5 and 15 closed windows (HyperLogLog, relative standard error 0.81 %), "
        "per channel and `all`. Gauges, per worker: users whose sessions went to two workers "
        "count on both, so summing workers is an upper bound. In ClickHouse, "
        "`active_users_1m` holds mergeable distinct states from the raw clicks (all workers, "
        "late events included): any range, any grouping.",
        ("salewatch_active_users_1m", "salewatch_active_users_5m", "salewatch_active_users_15m"),
        "`active_users_1m.users` (uniqCombined state); `traffic_1m.active_users` (exact per "
        "row and worker, not additive)",
        'sum without (instance, job) (salewatch_active_users_15m{channel="all"})',
        "SELECT uniqCombinedMerge(users) AS active_users_15m\n"
        "FROM salewatch.active_users_1m\n"
        "WHERE window_start >= toStartOfMinute(now()) - 15 * 60",
    ),
    Number(
        "Funnel",
        "Sessions reaching each step: `visit` (any page_view) → `detail` (page_view of a "
        "detail page) → `cart` (add_to_cart) → `checkout` (order_created) → `paid` "
        "(payment_succeeded). Once per session; reaching a step counts the earlier ones not "
        "yet reached (a deep link to checkout counts visit, detail, cart, checkout). Counted "
        "in the window of the event that reached the step, by the session's channel.",
        ("salewatch_funnel_sessions_total",),
        "`funnel_1m.sessions` (by channel, step)",
        "sum by (step) (increase(salewatch_funnel_sessions_total[1h]))",
        "SELECT step, sum(sessions) AS sessions\n"
        "FROM salewatch.funnel_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY step\n"
        "ORDER BY sessions DESC",
    ),
    Number(
        "Conversion (overall and step to step)",
        "Overall conversion = paid sessions / visit sessions over the same range (EVENTS.md). "
        "Step-to-step conversion = sessions reaching a step / sessions reaching the step "
        "before it, e.g. cart → checkout.",
        ("salewatch_funnel_sessions_total",),
        "`funnel_1m.sessions`",
        'sum by (channel) (increase(salewatch_funnel_sessions_total{step="paid"}[1h]))\n'
        '  / sum by (channel) (increase(salewatch_funnel_sessions_total{step="visit"}[1h]))',
        "SELECT channel,\n"
        "    sumIf(sessions, step = 'paid') / sumIf(sessions, step = 'visit') AS conversion,\n"
        "    sumIf(sessions, step = 'checkout') / sumIf(sessions, step = 'cart')"
        " AS cart_to_checkout\n"
        "FROM salewatch.funnel_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY channel",
    ),
    Number(
        "Cart abandonment",
        "Share of sessions that reached `cart` but not `checkout`: 1 − checkout / cart over "
        "the same range.",
        ("salewatch_funnel_sessions_total",),
        "`funnel_1m.sessions`",
        '1 - sum(increase(salewatch_funnel_sessions_total{step="checkout"}[1h]))\n'
        '  / sum(increase(salewatch_funnel_sessions_total{step="cart"}[1h]))',
        "SELECT 1 - sumIf(sessions, step = 'checkout') / sumIf(sessions, step = 'cart')"
        " AS cart_abandonment\n"
        "FROM salewatch.funnel_1m FINAL\n"
        "WHERE window_start >= now() - 3600",
    ),
    Number(
        "Cart events",
        "`add_to_cart` and `remove_from_cart` events by channel.",
        ("salewatch_cart_events_total",),
        "`cart_events_1m.events`",
        "sum by (event_type) (rate(salewatch_cart_events_total[5m])) * 60",
        "SELECT event_type, sum(events) AS events\n"
        "FROM salewatch.cart_events_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY event_type",
    ),
    Number(
        "Orders: created, paid, failed, cancelled, refunded",
        "Order events by type, channel, payment method and region (the configured "
        "`SALEWATCH_REGIONS`, else `other`). `order_cancelled` includes the automatic cancel "
        "of orders unpaid after 15 minutes (producers send it as an ordinary event).",
        ("salewatch_orders_total",),
        "`orders_1m.orders` (by channel, event_type, payment_method, region)",
        "sum by (event_type) (increase(salewatch_orders_total[1h]))",
        "SELECT event_type, sum(orders) AS orders\n"
        "FROM salewatch.orders_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY event_type",
    ),
    Number(
        "Payment success rate",
        "Payment attempts that succeeded: `payment_succeeded` / (`payment_succeeded` + "
        "`payment_failed`), by payment method.",
        ("salewatch_orders_total",),
        "`orders_1m.orders`",
        "sum by (payment_method) (rate(salewatch_orders_total"
        '{event_type="payment_succeeded"}[5m]))\n'
        "  / sum by (payment_method) (rate(salewatch_orders_total"
        '{event_type=~"payment_succeeded|payment_failed"}[5m]))',
        "SELECT payment_method,\n"
        "    sumIf(orders, event_type = 'payment_succeeded')\n"
        # OR, not IN: 18.16 fails to merge sumIf(x, lowcard IN (...)) across shards
        "      / sumIf(orders, event_type = 'payment_succeeded' OR event_type = 'payment_failed')"
        " AS success_rate\n"
        "FROM salewatch.orders_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY payment_method",
    ),
    Number(
        "Payment failures",
        "`payment_failed` events by payment method, region and failure reason (closed set, "
        "else `other`); payment orders: each order once per payment method, `attempted` at its "
        "first payment attempt with it, `failed` at its first `payment_failed` with it (a "
        "shopper's retries are one failed order).",
        ("salewatch_payment_failures_total", "salewatch_payment_orders_total"),
        "`payment_failures_1m.failures`",
        "topk(5, sum by (payment_method, failure_reason) "
        "(increase(salewatch_payment_failures_total[15m])))",
        "SELECT payment_method, failure_reason, sum(failures) AS failures\n"
        "FROM salewatch.payment_failures_1m FINAL\n"
        "WHERE window_start >= now() - 900\n"
        "GROUP BY payment_method, failure_reason\n"
        "ORDER BY failures DESC\n"
        "LIMIT 5",
    ),
    Number(
        "GMV and paid amount",
        "GMV = sum of `amount` (order total after discounts) of `order_created`; paid amount "
        "= that of `payment_succeeded`. Category = top-level category of the order's first "
        "item; payment events take their order's (remembered 30 minutes), `other` when "
        "unknown. Amounts are summed as sent: one currency is assumed.",
        ("salewatch_order_amount_total",),
        "`category_sales_1m.gmv`, `.paid_amount` (by channel, category); `orders_1m.amount` "
        "(by event type, channel, payment method, region)",
        "sum by (category) (increase(salewatch_order_amount_total"
        '{event_type="order_created"}[1h]))',
        "SELECT category, sum(gmv) AS gmv, sum(paid_amount) AS paid_amount\n"
        "FROM salewatch.category_sales_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY category\n"
        "ORDER BY gmv DESC",
    ),
    Number(
        "AOV (average order value)",
        "GMV / orders created over the same range.",
        ("salewatch_order_amount_total", "salewatch_orders_total"),
        "`category_sales_1m.gmv / category_sales_1m.orders`",
        'sum(increase(salewatch_order_amount_total{event_type="order_created"}[1h]))\n'
        '  / sum(increase(salewatch_orders_total{event_type="order_created"}[1h]))',
        "SELECT channel, sum(gmv) / sum(orders) AS aov\n"
        "FROM salewatch.category_sales_1m FINAL\n"
        "WHERE window_start >= now() - 3600\n"
        "GROUP BY channel",
    ),
    Number(
        "Coupon redemptions",
        "`order_created` events carrying a non-empty `coupon_code`.",
        ("salewatch_coupon_redemptions_total",),
        "`orders_1m.coupon_orders` where `event_type = 'order_created'`",
        "sum by (channel) (increase(salewatch_coupon_redemptions_total[1h]))",
        "SELECT channel, sum(coupon_orders) AS redemptions\n"
        "FROM salewatch.orders_1m FINAL\n"
        "WHERE event_type = 'order_created' AND window_start >= now() - 3600\n"
        "GROUP BY channel",
    ),
    Number(
        "Page load time (p50 / p75 / p95)",
        "Page load time (LCP, `load_ms`) of page views that carry it, as a histogram with "
        "fixed buckets (upper bounds 0.5 … 20 s, le-inclusive; the same buckets in Prometheus "
        "and ClickHouse). Quantiles are bucket upper bounds in SQL, interpolated in PromQL.",
        ("salewatch_page_load_seconds",),
        "`page_load_1m.load_ms_buckets` (12 counts: ≤ 500, 1000, 1500, 2000, 2500, 3000, "
        "4000, 5000, 7500, 10000, 20000 ms, > 20000 ms), `.measured_views`, `.load_ms_sum`",
        "histogram_quantile(0.95, sum by (le, page_type) "
        "(rate(salewatch_page_load_seconds_bucket[5m])))",
        "SELECT\n"
        "    window_start,\n"
        "    arrayCumSum(sumForEach(load_ms_buckets)) AS cum,\n"
        f"    {LE_MS} AS le_ms,\n"
        "    le_ms[arrayFirstIndex(c -> c >= 0.50 * cum[-1], cum)] AS p50_ms,\n"
        "    le_ms[arrayFirstIndex(c -> c >= 0.75 * cum[-1], cum)] AS p75_ms,\n"
        "    le_ms[arrayFirstIndex(c -> c >= 0.95 * cum[-1], cum)] AS p95_ms\n"
        "FROM salewatch.page_load_1m FINAL\n"
        "GROUP BY window_start\n"
        "ORDER BY window_start",
    ),
    Number(
        "Core Web Vitals p75 (LCP, INP, CLS, TTFB)",
        "The page-speed numbers real browsers report through `salewatch collect` (the "
        "`web-vitals` library): LCP is the page load time above (the collector sends it as "
        "`load_ms` and `lcp_ms`); INP (`inp_ms`), CLS (`cls`, unitless) and TTFB "
        "(`ttfb_ms`) are optional `page_view` fields, observed only when present. Core Web "
        "Vitals lines, judged at p75 per page type: LCP good ≤ 2.5 s, poor > 4 s; INP good "
        "≤ 200 ms, poor > 500 ms; CLS good ≤ 0.1, poor > 0.25; TTFB good ≤ 0.8 s, poor "
        "> 1.8 s. Each line is a bucket bound, so the share of good or poor page views is "
        "exact. No rollup: ClickHouse keeps them per page view (NULL when not measured, "
        "which `quantile` skips).",
        (
            "salewatch_web_vitals_inp_seconds",
            "salewatch_web_vitals_cls",
            "salewatch_web_vitals_ttfb_seconds",
        ),
        "`clicks_raw.lcp_ms`, `.inp_ms`, `.cls`, `.ttfb_ms` (Nullable)",
        "histogram_quantile(0.75, sum by (le, page_type) "
        "(rate(salewatch_web_vitals_inp_seconds_bucket[5m])))",
        "SELECT page_type,\n"
        "    quantile(0.75)(lcp_ms) AS lcp_p75_ms,\n"
        "    quantile(0.75)(inp_ms) AS inp_p75_ms,\n"
        "    quantile(0.75)(cls) AS cls_p75,\n"
        "    quantile(0.75)(ttfb_ms) AS ttfb_p75_ms,\n"
        "    count(inp_ms) AS inp_measured\n"
        "FROM salewatch.clicks_raw FINAL\n"
        "WHERE event_type = 'page_view' AND event_time >= now() - 3600\n"
        "GROUP BY page_type\n"
        "ORDER BY page_type",
    ),
    Number(
        "Tickets",
        "Support tickets opened and resolved by kind and reason (closed sets, else `other`).",
        ("salewatch_ticket_events_total",),
        "`tickets_1m.tickets`",
        'sum by (kind) (increase(salewatch_ticket_events_total{event_type="ticket_opened"}[1h]))',
        "SELECT kind, reason, sum(tickets) AS opened\n"
        "FROM salewatch.tickets_1m FINAL\n"
        "WHERE event_type = 'ticket_opened' AND window_start >= now() - 3600\n"
        "GROUP BY kind, reason\n"
        "ORDER BY opened DESC",
    ),
    Number(
        "Tickets per 1,000 paid orders",
        "1000 × tickets opened / paid orders (`payment_succeeded`) over the same range.",
        ("salewatch_ticket_events_total", "salewatch_orders_total"),
        "`tickets_1m.tickets`, `orders_1m.orders`",
        '1000 * sum(increase(salewatch_ticket_events_total{event_type="ticket_opened"}[24h]))\n'
        '  / sum(increase(salewatch_orders_total{event_type="payment_succeeded"}[24h]))',
        "SELECT 1000 * (\n"
        "    SELECT sum(tickets) FROM salewatch.tickets_1m FINAL\n"
        "    WHERE event_type = 'ticket_opened' AND window_start >= now() - 86400\n"
        ") / (\n"
        "    SELECT sum(orders) FROM salewatch.orders_1m FINAL\n"
        "    WHERE event_type = 'payment_succeeded' AND window_start >= now() - 86400\n"
        ") AS tickets_per_1000_paid",
    ),
    Number(
        "Late and duplicate events",
        f"Late: valid events whose 1-minute window (size {DEFAULT_SIZE_MS // 1000} s) had "
        "closed when they arrived, i.e. window end + allowed lateness (`SALEWATCH_ALLOWED_"
        f"LATENESS_S`, default {DEFAULT_LATENESS_MS // 1000} s) ≤ the clock. They are stored "
        "raw and counted nowhere else, so every counter equals the sum of its rollup rows. "
        "Duplicates: an `event_id` among the last 200,000 seen by the worker; skipped.",
        ("salewatch_events_late_total", "salewatch_events_duplicate_total"),
        "raw tables minus rollups (late events are in `*_raw`, not in `*_1m`)",
        "sum by (topic) (rate(salewatch_events_late_total[5m]))",
        "SELECT count() AS raw_page_views\n"
        "FROM salewatch.clicks_raw FINAL\n"
        "WHERE event_type = 'page_view' AND event_time >= now() - 3600",
    ),
    Number(
        "Window progress",
        "End of the newest closed window. Windows close on a timer, so this keeps up with "
        f"the clock minus the allowed lateness even without traffic; sessions expire after "
        f"{SESSION_TIMEOUT_MS // 60_000} minutes idle plus window size and lateness.",
        ("salewatch_window_closed_timestamp_seconds",),
        "`max(window_start)` of any `*_1m` table (if it had events)",
        "time() - max(salewatch_window_closed_timestamp_seconds)",
        "SELECT max(window_start) AS newest_window FROM salewatch.traffic_1m",
    ),
)


def _labels(d: MetricDef) -> str:
    if not d.labels:
        return "—"
    return "<br>".join(
        f"`{name}`: {', '.join(f'`{v}`' for v in sorted(values))}" for name, values in d.labels
    )


def _reference(metrics: Mapping[str, MetricDef]) -> list[str]:
    out = ["| metric | type | labels and allowed values | help |", "|---|---|---|---|"]
    for d in metrics.values():
        kind: str = d.kind
        if d.buckets:
            kind += " (buckets " + ", ".join(f"{b:g}" for b in d.buckets) + ")"
        out.append(f"| `{d.name}` | {kind} | {_labels(d)} | {d.help} |")
    return out


def render() -> str:
    """The full text of docs/metrics.md."""
    out = [
        "# Metrics and business numbers",
        "",
        f"<!-- generated by `{COMMAND}` from streams/metrics/docs.py, "
        "streams/metrics/defs.py and streams/counting/rollups.py; do not edit -->",
        "",
        "Every number the war room watches, where it is computed and where to read it: a "
        "Prometheus metric (cumulative counters, so `rate`/`increase` work across restarts "
        "and workers; gauges only for distinct counts) and a ClickHouse rollup table (one "
        "row per 1-minute event-time window × worker × dimensions; read with `FINAL` and sum "
        "over `worker`). Counting code: `streams/counting/`. Label values outside their "
        "closed set count as `other`.",
        "",
        "## Business numbers",
        "",
    ]
    for n in NUMBERS:
        out += [
            f"### {n.title}",
            "",
            n.definition,
            "",
            "- Metric: " + ", ".join(f"`{m}`" for m in n.metrics),
            f"- ClickHouse: {n.columns}",
            "",
            "```promql",
            n.promql,
            "```",
            "",
            "```sql",
            n.sql,
            "```",
            "",
        ]
    out += ["## Metric reference", "", "The worker's `/metrics`.", "", *_reference(METRICS)]
    out += [
        "",
        "## Collector metrics",
        "",
        "`salewatch collect`'s own `/metrics` (Prometheus job `salewatch-collector`): what "
        "happens to beacons before they are events.",
        "",
        *_reference(COLLECTOR_METRICS),
    ]
    out += [
        "",
        "## Rollup tables",
        "",
        "Columns in insert order (`streams.counting.rollups.ROLLUP_COLUMNS`); DDL in "
        "`schemas/clickhouse/0010_*.sql` onwards. `active_users_1m` is filled by a "
        "materialized view from `clicks_raw` (`0018_active_users_1m.sql`). `worker` names "
        "the Kafka partition a row counts (`p3`), whichever worker emitted it: a window of "
        "a partition emitted again replaces its rows (`window_emitters` marks the newest "
        "window emitted per partition, `streams/worker/window_emitters.py`). Sum over `worker`.",
        "",
        "| table | columns |",
        "|---|---|",
    ]
    for table, columns in ROLLUP_COLUMNS.items():
        out.append(f"| `{table}` | " + ", ".join(f"`{c}`" for c in columns) + " |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    readme = README_PATH.read_text()
    wanted = {DOC_PATH: render(), README_PATH: with_war_room(readme)}
    if args.check:
        stale = [p for p, text in wanted.items() if (p.read_text() if p.exists() else "") != text]
        for path in stale:
            print(f"{path} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
