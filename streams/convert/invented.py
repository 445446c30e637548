"""Deterministic invented values for fields a real dataset lacks.

Every choice is a function of ``(seed, what, key)`` only, through a keyed hash, not of the
order rows are read in: the same user always gets the same channel and region, the same
item the same price, whatever slice of the data is converted. Proportions are the
simulator's (``streams.simulation.catalog``): plausible for a Chinese marketplace, not data.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect
from functools import lru_cache

from streams.settings import DEFAULT_REGIONS
from streams.simulation.catalog import CHANNELS, PAYMENT_METHODS, REGION_SHARES, Weighted

REGIONS = Weighted({r: REGION_SHARES.get(r, 0.05) for r in DEFAULT_REGIONS})
PRICE_MEDIAN = 79.0  # CNY; log-normal like the simulator's catalog, all categories pooled
PRICE_SIGMA = 0.9
_SCALE = float(1 << 64)


def pick(weighted: Weighted[str], u: float) -> str:
    """``weighted``'s choice for the uniform value ``u`` (``Weighted.pick`` without a
    generator)."""
    return weighted.values[bisect(weighted.cum, u * weighted.total)]


class Invented:
    """Seeded choices: ``channel(user)``, ``region(user)``, ``payment_method(order)``,
    ``price(item)`` (CNY, ending in .90 like shop prices)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.channel = lru_cache(maxsize=1 << 18)(self._channel)
        self.region = lru_cache(maxsize=1 << 18)(self._region)
        self.price = lru_cache(maxsize=1 << 18)(self._price)

    def uniform(self, what: str, key: str) -> float:
        """A uniform value in [0, 1) for ``(seed, what, key)``."""
        digest = hashlib.blake2b(f"{self.seed}\0{what}\0{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / _SCALE

    def _channel(self, user: str) -> str:
        return pick(CHANNELS, self.uniform("channel", user))

    def _region(self, user: str) -> str:
        return pick(REGIONS, self.uniform("region", user))

    def payment_method(self, order: str) -> str:
        return pick(PAYMENT_METHODS, self.uniform("payment", order))

    def _price(self, item: str) -> float:
        # a standard normal from two uniforms (Box-Muller), then log-normal around the median
        u1 = max(self.uniform("price1", item), 1e-12)
        u2 = self.uniform("price2", item)
        z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        price = PRICE_MEDIAN * math.exp(PRICE_SIGMA * z)
        return max(1.9, round(price) - 0.1)
