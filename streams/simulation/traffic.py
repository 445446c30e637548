"""The traffic curve of a sale day and the session arrival process that follows it.

``TrafficCurve.events_per_s(ts)`` = base rate × diurnal shape × sale spike. The diurnal
shape is an hourly profile of a Chinese marketplace (quiet 3–6 am, evening peak at 21 h),
interpolated linearly and scaled to mean 1 over the day. The spike climbs from ×1 to
×``spike_multiplier`` in ``spike_ramp_s`` seconds (10 by default), then decays as a mix of
a fast (20 min) and a slow (3 h) exponential: the rush at midnight, then a long busy night;
or, with ``spike_decay_s``, exponentially to 5 % of its extra within that time. Flash sales
(``SimConfig.flash_sales``) multiply the curve over their windows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

from streams.simulation.config import DAY_MS, SimConfig

# relative traffic per local hour 0..23, at the middle of the hour
HOURLY_PROFILE = (
    0.9, 0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.45, 0.7, 0.9, 1.0, 1.05,
    1.15, 1.05, 1.0, 1.0, 1.0, 1.0, 1.05, 1.25, 1.5, 1.7, 1.6, 1.3,
)  # fmt: skip
SPIKE_FAST_DECAY_S = 20 * 60.0
SPIKE_SLOW_DECAY_S = 3 * 3600.0
SPIKE_FAST_SHARE = 0.5
HOUR_MS = 3_600_000


class TrafficCurve:
    """Expected events per second at any event time of one run."""

    def __init__(self, config: SimConfig) -> None:
        self.rate = config.rate
        self.diurnal_on = config.diurnal
        self.offset_ms = round(config.utc_offset_h * HOUR_MS)
        self.spike_at = config.spike_time_ms
        self.multiplier = config.spike_multiplier
        self.ramp_s = config.spike_ramp_s
        self.decay_s = config.spike_decay_s
        self.start_ms = config.start_ms
        self.flash_sales = config.flash_sales
        mean = sum(HOURLY_PROFILE) / len(HOURLY_PROFILE)
        self.profile = [v / mean for v in HOURLY_PROFILE]

    def diurnal(self, ts: int) -> float:
        if not self.diurnal_on:
            return 1.0
        hours = ((ts + self.offset_ms) % DAY_MS) / HOUR_MS - 0.5
        low = math.floor(hours)
        frac = hours - low
        p = self.profile
        return p[low % 24] * (1 - frac) + p[(low + 1) % 24] * frac

    def spike(self, ts: int) -> float:
        """The sale multiplier at ``ts`` (1 before the sale and without one)."""
        if self.spike_at is None or ts < self.spike_at:
            return 1.0
        t = (ts - self.spike_at) / 1000
        extra = self.multiplier - 1
        if t < self.ramp_s:
            return 1 + extra * t / self.ramp_s
        t -= self.ramp_s
        if self.decay_s is not None:  # 5 % of the extra left after decay_s
            return 1 + extra * math.exp(-3.0 * t / self.decay_s)
        fast = math.exp(-t / SPIKE_FAST_DECAY_S)
        slow = math.exp(-t / SPIKE_SLOW_DECAY_S)
        return 1 + extra * (SPIKE_FAST_SHARE * fast + (1 - SPIKE_FAST_SHARE) * slow)

    def rush(self, ts: int) -> float:
        """How much of the sale rush is on at ``ts``, from 0 (none) to 1 (the peak)."""
        if self.multiplier <= 1:
            return 0.0
        return (self.spike(ts) - 1) / (self.multiplier - 1)

    def flash(self, ts: int) -> float:
        """The flash-sale multiplier at ``ts`` (1 outside every flash sale)."""
        offset_s = (ts - self.start_ms) / 1000
        factor = 1.0
        for sale in self.flash_sales:
            factor *= sale.factor(offset_s)
        return factor

    def shape(self, ts: int) -> float:
        """Diurnal shape × sale spike × flash sales: the multiplier of the base size."""
        return self.diurnal(ts) * self.spike(ts) * self.flash(ts)

    def events_per_s(self, ts: int) -> float:
        return self.rate * self.shape(ts)


def arrivals(
    sessions_per_s: Callable[[int], float],
    start_ms: int,
    end_ms: int,
    rng: random.Random,
    step_ms: int = 1000,
) -> Iterator[int]:
    """Session start times (epoch ms, non-decreasing) of a non-homogeneous Poisson process.

    The intensity is taken as constant within each ``step_ms`` slice (evaluated at its
    middle); within a slice arrivals are exact. Exact for any rate, however low or high,
    because it inverts the cumulative intensity instead of thinning.
    """
    slice_start = start_ms
    need = rng.expovariate(1.0)
    while slice_start < end_ms:
        width = min(step_ms, end_ms - slice_start)
        mass = sessions_per_s(slice_start + width // 2) * width / 1000
        used = 0.0
        while mass > 0 and used + need <= mass:
            used += need
            yield slice_start + int(used / mass * width)
            need = rng.expovariate(1.0)
        need -= mass - used
        slice_start += width
