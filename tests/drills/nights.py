"""The drill suite's sale nights: varied shapes and sizes, each with its true incidents.

Not tuned to one shape: seeds, sizes (20 to 5,000 new sessions per minute), surge factors
(×20-×30), ramps (seconds to 5 minutes), decays (60-120 minutes), flash sales (some nights),
payment methods' normal success rates and ticket delays all differ from night to night.
Incidents sit at a cold start (Prometheus history 15-30 minutes old), at the peak and in
the decay. Shop time is UTC+8; the sale starts at 00:00 shop time = 16:00 UTC.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.backtest import BacktestOptions, run_backtest
from streams.backtest.score import TrueIncident, score
from streams.convert.jsonl import write_events
from streams.settings import load_settings
from streams.simulation import SimConfig, generate, parse_incident
from streams.simulation.config import FlashSale

SALE_UTC_MS = 1_731_254_400_000  # 2024-11-11 00:00 in the shop (UTC+8)
MIN_MS = 60_000


@dataclass(frozen=True)
class Night:
    """One drill night: a name, the simulator's config and seed."""

    name: str
    config: SimConfig
    seed: int


def night(
    name: str,
    seed: int,
    sessions_per_min: float,
    start_min: int,
    duration_min: int,
    incidents: tuple[str, ...] = (),
    *,
    spike: bool = True,
    surge: float = 25.0,
    ramp_s: float = 60.0,
    decay_min: float = 90.0,
    flash: tuple[tuple[int, int, float], ...] = (),
    success: tuple[tuple[str, float], ...] = (),
    ticket_delay_min: tuple[float, float] = (5.0, 60.0),
    warmup_min: float = 60.0,
) -> Night:
    """A night starting ``start_min`` minutes from the sale start (negative: before it)."""
    config = SimConfig(
        rate=1.0,
        sessions_per_min=sessions_per_min,
        duration_s=duration_min * 60,
        start_ms=SALE_UTC_MS + start_min * MIN_MS,
        spike=spike,
        spike_at_ms=SALE_UTC_MS,
        spike_multiplier=surge,
        spike_ramp_s=ramp_s,
        spike_decay_s=decay_min * 60,
        flash_sales=tuple(FlashSale(s * 60.0, d * 60.0, m) for s, d, m in flash),
        payment_success=success,
        ticket_delay_s=(ticket_delay_min[0] * 60, ticket_delay_min[1] * 60),
        incidents=tuple(parse_incident(spec) for spec in incidents),
        warmup_s=warmup_min * 60,
    )
    return Night(name, config, seed)


NIGHTS = (
    # quiet nights: the rush, flash sales at the top of hours, nothing must page
    night(
        "quiet_small_flash", 1, 20, -60, 180,
        flash=((0, 10, 6), (120, 8, 8)), surge=30, decay_min=90,
    ),
    night(
        "quiet_mid_steep", 2, 150, -30, 130,
        surge=20, ramp_s=10, decay_min=60, flash=((90, 15, 10),),
        success=(("alipay", 0.99), ("card", 0.93)),
    ),
    # cold start: history begins 20-30 minutes before the first incident
    night(
        "cold_start_payment", 3, 400, -50, 90,
        ("payment_outage:alipay@25m+10m:0.2", "checkout_slow@60m+8m"),
        surge=25, ramp_s=120, decay_min=120, success=(("alipay", 0.98), ("card", 0.95)),
    ),
    night(
        "cold_start_stall", 4, 100, -40, 80,
        ("pipeline_stall:orders@20m+12m", "traffic_drop@55m+8m:0.7"),
        surge=22, ramp_s=30, decay_min=75, flash=((60, 5, 5),),
    ),
    # at the peak
    night(
        "peak_orders_payment", 5, 200, -30, 75,
        ("orders_lost@33m+8m", "payment_outage:wechat_pay@52m+10m"),
        surge=28, ramp_s=300, decay_min=100,
    ),
    night(
        "peak_drop_lag", 6, 60, -35, 75,
        ("traffic_drop@38m+6m:0.6", "pipeline_lag:clicks@58m+5m:90"),
        surge=30, ramp_s=20, decay_min=110, ticket_delay_min=(2, 30),
    ),
    # in the decay
    night(
        "decay_tickets_checkout", 7, 120, -20, 120,
        ("ticket_surge@85m+10m:15", "checkout_slow@100m+8m:3"),
        surge=24, ramp_s=60, decay_min=80, flash=((60, 10, 7),),
        success=(("alipay", 0.97), ("wechat_pay", 0.98), ("card", 0.92)),
    ),
    # a large shop, short: the decay an hour after the sale, flash sale at 01:00
    night(
        "large_decay", 8, 5000, 40, 50,
        ("payment_outage:card@26m+6m:0.2", "traffic_drop@33m+5m:0.6"),
        spike=False, flash=((20, 5, 5),), warmup_min=10,
    ),
)  # fmt: skip

# Held out: written after the rules passed NIGHTS, with seeds and shapes the rules were
# never run on before their figures were taken (docs/alert-quality.md reports them as
# measured, pass or fail). Partial order loss, a stall of the busiest topic and of all
# topics, a lag of orders, a partial outage of a method normally at 93 %, a flash sale
# starting with the midnight surge.
HELD_OUT = (
    night(
        "held_small_partial_loss", 21, 40, -45, 120,
        ("orders_lost@70m+10m:0.7", "pipeline_stall:clicks@95m+6m"),
        surge=22, ramp_s=90, decay_min=100, flash=((105, 12, 8),),
    ),
    night(
        "held_mid_card_lag", 22, 1000, -25, 100,
        ("payment_outage:card@40m+8m:0.3", "traffic_drop@60m+7m:0.5",
         "pipeline_lag:orders@80m+5m:120"),
        surge=26, ramp_s=45, decay_min=70,
        success=(("card", 0.93), ("alipay", 0.98)), ticket_delay_min=(10, 90),
    ),
    night(
        "held_large_midnight_flash", 23, 2500, -35, 70,
        ("checkout_slow@50m+6m:2.5", "pipeline_stall@60m+5m"),
        surge=20, ramp_s=30, decay_min=120, flash=((35, 10, 6),),
    ),
    # Held out again (written after SaleOrdersStalled was changed for
    # held_small_partial_loss, which so stopped being held out): partial order losses in
    # the rush and in the decay, a partial payment outage after a flash sale.
    night(
        "held2_mid_rush_loss", 31, 600, -30, 110,
        ("orders_lost@40m+8m:0.6", "payment_outage:wechat_pay@75m+8m:0.2"),
        surge=24, ramp_s=60, decay_min=90, flash=((60, 10, 6),),
        success=(("wechat_pay", 0.98), ("alipay", 0.97), ("card", 0.94)),
    ),
    night(
        "held2_small_decay_loss", 32, 80, 20, 90,
        ("orders_lost@35m+10m:0.8", "traffic_drop@70m+6m:0.55"),
        surge=28, ramp_s=120, decay_min=100, flash=((60, 8, 8),), warmup_min=40,
    ),
)  # fmt: skip


REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts"


def true_incidents(n: Night) -> list[TrueIncident]:
    out = []
    for inc in n.config.incidents:
        start, end = inc.window_ms(n.config.start_ms)
        out.append(TrueIncident(inc.kind, start, end, inc.arg))
    return out


def run_night(n: Night, work: Path) -> dict[str, Any]:
    """Generate ``n``, backtest it against ``alerts/``; the report with its ``score``."""
    events = work / f"{n.name}.jsonl"
    with events.open("wb") as out:
        write_events(((e.topic, e.event) for e in generate(n.config, n.seed) if e.valid), out)
    report = run_backtest(events, load_settings(), BacktestOptions(rules=RULES))
    events.unlink()
    report["score"] = score(report["alerts"], true_incidents(n))
    return report


def main(names: list[str]) -> None:
    """``python -m tests.drills.nights [NAME...]``: run nights (all of NIGHTS, or the named
    ones of NIGHTS and HELD_OUT), print their scores as JSON lines (docs/alert-quality.md)."""
    chosen = [n for n in (*NIGHTS, *HELD_OUT) if n.name in names] if names else list(NIGHTS)
    with tempfile.TemporaryDirectory() as tmp:
        for n in chosen:
            report = run_night(n, Path(tmp))
            s = report["score"]
            row = {
                "night": n.name,
                "events": report["events"],
                "wall_s": report["timings"]["total_s"],
                **{k: s[k] for k in ("pages", "false_pages", "precision", "recall", "max_delay_s")},
                "per_alert": s["per_alert"],
                "incidents": [
                    {k: f[k] for k in ("incident", "alert", "delay_s", "resolved_after_s")}
                    for f in s["incidents"]
                ],
                "false": s["false_page_list"],
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
