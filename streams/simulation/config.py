"""``SimConfig``: everything that shapes one simulated run, validated on construction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streams.settings import DEFAULT_REGIONS
from streams.simulation.incidents import Incident

DAY_MS = 86_400_000


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
