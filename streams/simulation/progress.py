"""``salewatch simulate``'s pacing (``--speed``), its progress line on stderr, its closing
summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from streams.simulation import SimConfig, SimEvent, Summary, format_duration

PROGRESS_EVERY_S = 1.0
MAX_SLEEP_S = 0.25  # pacing sleeps in slices so the progress line keeps ticking


class Progress:
    """Counts what passes, paces it to ``speed`` and prints a status line every second."""

    def __init__(self, config: SimConfig, speed: float, quiet: bool) -> None:
        self.config = config
        self.speed = speed
        self.quiet = quiet
        self.summary = Summary()
        self.count = 0
        self.sim_ms = config.start_ms
        self.wall_start = time.monotonic()
        self.next_report = self.wall_start + PROGRESS_EVERY_S
        self.last_count = 0
        self.last_report = self.wall_start
        self.tty = sys.stderr.isatty()
        self.printed = False
        self.tz = timezone(timedelta(hours=config.utc_offset_h))

    def track(self, events: Iterator[SimEvent]) -> Iterator[SimEvent]:
        """Pass ``events`` through, counting them and waiting until each one is due."""
        add, monotonic, speed = self.summary.add, time.monotonic, self.speed
        for ev in events:
            add(ev)
            self.count += 1
            if speed:
                self._wait_until(ev.ts)
            elif self.count & 1023 == 0 and monotonic() >= self.next_report:
                self.sim_ms = ev.ts
                self.report(monotonic())
            yield ev
        if speed:  # the simulated clock runs on to the end even if the last events are early
            self._wait_until(self.config.end_ms)
        self.sim_ms = self.config.end_ms

    def _wait_until(self, ts: int) -> None:
        """Sleep until simulated time ``ts`` is due at this speed, reporting once a second."""
        start = self.config.start_ms
        due = self.wall_start + (ts - start) / 1000 / self.speed
        while True:
            now = time.monotonic()
            if now >= self.next_report:
                self.sim_ms = min(ts, start + int((now - self.wall_start) * 1000 * self.speed))
                self.report(now)
            if due <= now + 0.001:
                break
            time.sleep(min(due - now, MAX_SLEEP_S))
        self.sim_ms = ts

    def report(self, now: float) -> None:
        self.next_report = now + PROGRESS_EVERY_S
        rate = (self.count - self.last_count) / max(now - self.last_report, 1e-9)
        self.last_count, self.last_report = self.count, now
        if self.quiet:
            return
        elapsed = format_duration(round((self.sim_ms - self.config.start_ms) / 1000))
        total = format_duration(round(self.config.duration_s))
        line = (
            f"simulate: {self.count:,} events ({rate:,.0f}/s) · invalid"
            f" {sum(self.summary.invalid_by_topic.values()):,} · sim clock"
            f" {self.clock(self.sim_ms)} (+{elapsed} of {total})"
            f" · wall {now - self.wall_start:.0f}s"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.printed = True

    def clock(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, self.tz).isoformat(timespec="seconds")

    def end_line(self) -> None:
        if self.printed and self.tty and not self.quiet:
            sys.stderr.write("\n")


def format_summary(s: dict[str, Any], progress: Progress) -> str:
    """The closing summary, for people; ``--summary-json`` has the same numbers."""
    wall = s["wall_s"]
    lines = [
        f"salewatch simulate: {'interrupted' if s['interrupted'] else 'done'} → {s['target']}"
        f" (seed {s['seed']}, {progress.clock(s['start_ms'])} + "
        f"{format_duration(round((s['end_ms'] - s['start_ms']) / 1000))})",
        f"  events   {s['events']:>12,}   invalid {s['invalid']:,}   messages {s['messages']:,}"
        f"   wall {wall:.1f}s ({(s['events'] + s['invalid']) / max(wall, 1e-9):,.0f} events/s)",
    ]
    for topic, types in s["by_type"].items():
        detail = "  ".join(f"{name} {n:,}" for name, n in types.items())
        lines.append(f"  {topic:<8} {s['by_topic'][topic]:>12,}   {detail}".rstrip())
    lines.append(
        f"  sessions {s['sessions']:,}   orders {s['orders']:,}   paid {s['paid']:,}"
        f"   cancelled {s['cancelled']:,}   refunded {s['refunded']:,}"
        f"   GMV {s['gmv']:,.2f} CNY"
    )
    funnel = " → ".join(f"{step} {n:,}" for step, n in s["funnel"].items())
    lines.append(f"  funnel   {funnel}")
    if s["incidents"]:
        lines.append(f"  incidents {' '.join(s['incidents'])}")
    if s["invalid"]:
        reasons = "  ".join(f"{r} {n:,}" for r, n in s["invalid_by_reason"].items())
        lines.append(f"  invalid  {reasons}")
    return "\n".join(lines)
