"""``SimConfig``: everything that shapes one simulated run, validated on construction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streams.settings import DEFAULT_REGIONS
from streams.simulation.incidents import Incident

DAY_MS = 86_400_000


@dataclass(frozen=True)
class FlashSale:
    """Traffic × ``multiplier`` from ``start_s`` (offset from the start) for ``duration_s``."""

    start_s: float
    duration_s: float
    multiplier: float

    def factor(self, offset_s: float) -> float:
        inside = self.start_s <= offset_s < self.start_s + self.duration_s
        return self.multiplier if inside else 1.0


def parse_flash_sale(spec: str) -> FlashSale:
    """``START+DURATION:MULTIPLIER`` (offsets as ``parse_duration``), e.g. ``60m+10m:6``."""
    from streams.simulation.timespec import SpecError, parse_duration

    window, colon, mult = spec.strip().partition(":")
    start, plus, duration = window.partition("+")
    try:
        flash = FlashSale(parse_duration(start), parse_duration(duration), float(mult))
    except (SpecError, ValueError):
        raise SpecError(
            f"bad flash sale {spec!r}: expected START+DURATION:MULTIPLIER, e.g. 60m+10m:6"
        ) from None
    if not (plus and colon) or flash.duration_s <= 0 or flash.multiplier <= 0:
        raise SpecError(f"bad flash sale {spec!r}: expected START+DURATION:MULTIPLIER > 0")
    return flash


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class SimConfig:
    """One simulated run. Together with a seed it fixes the generated stream exactly.

    ``rate`` is the base event rate (events/s, all topics) before the diurnal shape (mean 1
    over a local day) and the sale spike multiply it. The spike starts at ``spike_at_ms``,
    by default the first local midnight at or after ``start_ms`` (``utc_offset_h`` sets the
    shop's local time, China by default), reaches ``spike_multiplier`` within seconds and
    decays over hours; with ``spike=False`` there is none. ``invalid_rate`` adds that many
    invalid messages per valid event (for dead-letter tests); they never replace valid ones.
    The stream starts warm: sessions begin ``warmup_s`` before the start and only their
    events from ``start_ms`` on are emitted, so the first minutes carry sessions already in
    progress (and pending auto-cancels) instead of a ramp from zero that looks like a drop.

    Size and shapes: ``sessions_per_min`` (when set) replaces ``rate`` as the base size, in
    new sessions per minute before the diurnal shape, the spike and flash sales. The spike
    climbs over ``spike_ramp_s``; with ``spike_decay_s`` its extra traffic decays
    exponentially to 5 % of the peak's extra within that time (default: a mix of a 20-minute
    and a 3-hour decay). ``flash_sales`` multiply traffic over their windows.
    ``payment_success`` overrides the normal success rate of payment methods
    (``(("alipay", 0.98), ...)``); ``ticket_delay_s`` is the range (uniform) of delays from a
    payment to its after-sales ticket.
    """

    rate: float = 100.0
    duration_s: float = 600.0
    start_ms: int = field(default_factory=now_ms)
    users: int = 100_000
    catalog_items: int = 5_000
    regions: tuple[str, ...] = DEFAULT_REGIONS
    diurnal: bool = True
    spike: bool = True
    spike_at_ms: int | None = None
    spike_multiplier: float = 40.0
    utc_offset_h: float = 8.0
    incidents: tuple[Incident, ...] = ()
    invalid_rate: float = 0.0
    warmup_s: float = 600.0
    # shapes of a real sale night (issue 13); the defaults keep the historical behaviour
    sessions_per_min: float | None = None
    spike_ramp_s: float = 10.0
    spike_decay_s: float | None = None
    flash_sales: tuple[FlashSale, ...] = ()
    payment_success: tuple[tuple[str, float], ...] = ()
    ticket_delay_s: tuple[float, float] = (300.0, 3600.0)

    def __post_init__(self) -> None:
        problems = []
        if not self.rate > 0:
            problems.append("rate must be > 0")
        if not self.duration_s > 0:
            problems.append("duration must be > 0")
        if self.users < 1 or self.catalog_items < 1:
            problems.append("users and catalog_items must be ≥ 1")
        if not self.regions:
            problems.append("regions must not be empty")
        if not self.spike_multiplier >= 1:
            problems.append("spike_multiplier must be ≥ 1")
        if not 0 <= self.invalid_rate <= 1:
            problems.append("invalid_rate must be in [0, 1]")
        if not 0 <= self.warmup_s <= 86_400:
            problems.append("warmup_s must be in [0, 86400]")
        if not -14 <= self.utc_offset_h <= 14:
            problems.append("utc_offset_h must be in [-14, 14]")
        if self.sessions_per_min is not None and not self.sessions_per_min > 0:
            problems.append("sessions_per_min must be > 0")
        if not self.spike_ramp_s >= 0 or not (self.spike_decay_s or 1) > 0:
            problems.append("spike_ramp_s must be ≥ 0 and spike_decay_s > 0")
        if any(not 0 < p <= 1 for _, p in self.payment_success):
            problems.append("payment success rates must be in (0, 1]")
        low, high = self.ticket_delay_s
        if not 0 <= low <= high:
            problems.append("ticket_delay_s must be (low, high) with 0 ≤ low ≤ high")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.duration_s * 1000)

    @property
    def spike_time_ms(self) -> int | None:
        """When the sale starts (epoch ms), or None without a spike."""
        if not self.spike:
            return None
        if self.spike_at_ms is not None:
            return self.spike_at_ms
        offset = round(self.utc_offset_h * 3_600_000)
        local = self.start_ms + offset
        midnight = local - local % DAY_MS
        if midnight < local:
            midnight += DAY_MS
        return midnight - offset
