"""The fixed world of one run: who the users are, what the shop sells, in what proportions.

Proportions are plausible for a large Chinese marketplace on a sale day (app-heavy, Alipay
and WeChat Pay dominant, Guangdong the biggest region); they are tunable constants, not
data. Everything is drawn from a ``random.Random`` derived from the run's seed, so the same
seed gives the same catalog and population.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


class Weighted(Generic[T]):
    """A weighted choice that costs one ``random()`` and one bisect (``random.choices`` is
    five times slower, and this is on the hot path)."""

    __slots__ = ("cum", "total", "values")

    def __init__(self, pairs: dict[T, float]) -> None:
        self.values: tuple[T, ...] = tuple(pairs)
        self.cum = tuple(accumulate(pairs.values()))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self.values[bisect(self.cum, rng.random() * self.total)]


CHANNELS = Weighted({"app": 0.55, "mini_program": 0.2, "web": 0.12, "h5": 0.13})
TRAFFIC_SOURCES = Weighted(
    {"direct": 0.34, "search": 0.24, "ads": 0.16, "social": 0.12, "email": 0.05, "affiliate": 0.09}
)
PAYMENT_METHODS = Weighted(
    {"alipay": 0.48, "wechat_pay": 0.33, "card": 0.08, "union_pay": 0.07, "cod": 0.04}
)
# probability that one payment attempt fails, when nothing is wrong
PAYMENT_FAILURE_P = {
    "alipay": 0.03,
    "wechat_pay": 0.035,
    "card": 0.09,
    "union_pay": 0.07,
    "cod": 0.01,
}
FAILURE_REASONS = Weighted(
    {
        "insufficient_funds": 0.3,
        "card_declined": 0.15,
        "timeout": 0.15,
        "risk_control": 0.1,
        "bank_error": 0.1,
        "user_cancelled": 0.2,
    }
)
OUTAGE_FAILURE_REASONS = Weighted({"timeout": 0.6, "bank_error": 0.4})
TICKET_KINDS = Weighted(
    {"return": 0.3, "refund": 0.2, "exchange": 0.15, "complaint": 0.1, "inquiry": 0.25}
)
TICKET_REASONS = Weighted(
    {
        "quality": 0.2,
        "damaged": 0.1,
        "wrong_item": 0.1,
        "size": 0.25,
        "late_delivery": 0.2,
        "not_as_described": 0.1,
        "other": 0.05,
    }
)
SURGE_TICKET_KINDS = Weighted({"complaint": 0.4, "inquiry": 0.4, "refund": 0.2})
SURGE_TICKET_REASONS = Weighted(
    {"late_delivery": 0.6, "damaged": 0.15, "wrong_item": 0.1, "other": 0.15}
)

# share of sessions per region for the default regions; configured others get the mean
REGION_SHARES = {
    "CN-GD": 0.18,
    "CN-ZJ": 0.13,
    "CN-JS": 0.12,
    "CN-SH": 0.1,
    "CN-BJ": 0.09,
    "CN-SD": 0.09,
    "CN-SC": 0.08,
    "CN-HB": 0.07,
    "CN-FJ": 0.07,
    "CN-HN": 0.07,
}


@dataclass(frozen=True)
class CategoryProfile:
    """A top-level category: share of catalog views, subcategories, price log-normal."""

    share: float
    subcategories: tuple[str, ...]
    median_price: float
    price_sigma: float


CATEGORIES: dict[str, CategoryProfile] = {
    "apparel": CategoryProfile(0.25, ("shoes", "tops", "dresses", "outerwear"), 160, 0.7),
    "electronics": CategoryProfile(0.15, ("phones", "laptops", "audio", "accessories"), 600, 1.1),
    "beauty": CategoryProfile(0.15, ("skincare", "makeup", "fragrance"), 150, 0.6),
    "home": CategoryProfile(0.12, ("kitchen", "bedding", "furniture"), 120, 0.9),
    "food": CategoryProfile(0.12, ("snacks", "drinks", "fresh"), 45, 0.6),
    "baby": CategoryProfile(0.07, ("diapers", "formula", "toys"), 110, 0.6),
    "sports": CategoryProfile(0.08, ("outdoor", "fitness", "cycling"), 200, 0.8),
    "books": CategoryProfile(0.06, ("fiction", "education", "comics"), 40, 0.5),
}
CATEGORY_PICK = Weighted({name: c.share for name, c in CATEGORIES.items()})
ITEM_POPULARITY_EXPONENT = 0.8  # Zipf-like: a few items take most views


class Catalog:
    """``n`` items with an id, a category path (``apparel/shoes``) and a price in cents.

    ``pick`` draws an item by popularity, optionally within one top-level category.
    """

    def __init__(self, n: int, rng: random.Random) -> None:
        ids: list[str] = []
        categories: list[str] = []
        price_cents: list[int] = []
        by_top: dict[str, list[int]] = {name: [] for name in CATEGORIES}
        weights: list[float] = []
        for i in range(n):
            top = CATEGORY_PICK.pick(rng) if i >= len(CATEGORIES) else list(CATEGORIES)[i]
            profile = CATEGORIES[top]
            sub = profile.subcategories[rng.randrange(len(profile.subcategories))]
            price = rng.lognormvariate(0, profile.price_sigma) * profile.median_price
            # shop prices end in .90: 159.90, 1299.90
            cents = max(190, round(price) * 100 - 10)
            ids.append(f"i{i:06d}")
            categories.append(f"{top}/{sub}")
            price_cents.append(cents)
            by_top[top].append(i)
            weights.append(1.0 / (1 + rng.randrange(n)) ** ITEM_POPULARITY_EXPONENT)
        # tuples of str/int are untracked by the garbage collector: no cost in its passes
        self.ids, self.categories = tuple(ids), tuple(categories)
        self.price_cents = tuple(price_cents)
        self._all = Weighted({i: weights[i] for i in range(n)})
        self._by_top = {
            top: Weighted({i: weights[i] for i in idx}) for top, idx in by_top.items() if idx
        }

    def pick(self, rng: random.Random, top: str | None = None) -> int:
        table = self._all if top is None else self._by_top.get(top, self._all)
        return table.values[bisect(table.cum, rng.random() * table.total)]


class Population:
    """``n`` users, each with a home region, a preferred channel and payment method."""

    def __init__(self, n: int, regions: tuple[str, ...], rng: random.Random) -> None:
        mean = sum(REGION_SHARES.values()) / len(REGION_SHARES)
        region_pick = Weighted({r: REGION_SHARES.get(r, mean) for r in regions})
        self.n = n
        # tuples: untracked by the garbage collector, see Catalog
        self.regions = tuple(region_pick.pick(rng) for _ in range(n))
        self.channels = tuple(CHANNELS.pick(rng) for _ in range(n))
        self.methods = tuple(PAYMENT_METHODS.pick(rng) for _ in range(n))

    @staticmethod
    def user_id(index: int) -> str:
        return f"u{index:07d}"
