"""The configured sale: start, end, GMV target, office time zone, previous sale, flash sales.

Read from ``sale.toml`` at the repository root (``salewatch recap`` reads the file
``SALEWATCH_SALE_FILE`` names, by default that one).
A file rather than one ``SALEWATCH_*`` variable per field: the dashboards are generated
from it and committed, so the committed JSON must not depend on the environment of whoever
generates it; and a sale (several flash sales included) is a reviewed change, not a flag.

The target curve is linear in time (``target_at``): the simplest promise a planner can
read off a clock. The pace projection (:func:`projected_total`) scales today's GMV by the
previous sale's shape instead, because sale days are front-loaded (the midnight spike) and
a linear projection at 00:30 would promise several times the target.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_SALE_FILE = Path(__file__).resolve().parents[1] / "sale.toml"


class SaleConfigError(ValueError):
    """The sale file is missing a field or has a wrong one; the message names it."""


@dataclass(frozen=True)
class FlashSale:
    name: str
    start_s: int
    end_s: int


@dataclass(frozen=True)
class Sale:
    """One sale; times are epoch seconds (UTC)."""

    name: str
    start_s: int
    end_s: int
    timezone: str
    gmv_target: float
    previous_start_s: int | None = None
    flash_sales: tuple[FlashSale, ...] = field(default=())

    @property
    def duration_s(self) -> int:
        return self.end_s - self.start_s

    @property
    def previous_end_s(self) -> int | None:
        if self.previous_start_s is None:
            return None
        return self.previous_start_s + self.duration_s

    def target_at(self, t_s: float) -> float:
        """Cumulative GMV the linear target curve promises at ``t_s``."""
        share = min(max((t_s - self.start_s) / self.duration_s, 0.0), 1.0)
        return self.gmv_target * share


def projected_total(gmv_so_far: float, previous_so_far: float, previous_total: float) -> float:
    """End-of-sale GMV if the rest of the sale follows the previous sale's shape: today's
    GMV × (previous sale's total / what it had at the same minute since start)."""
    if previous_so_far <= 0:
        return float("nan")
    return gmv_so_far * previous_total / previous_so_far


def parse_time(value: object, what: str) -> int:
    """An ISO 8601 time with an offset → epoch seconds."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise SaleConfigError(f"{what}: not an ISO 8601 time: {value!r}") from None
    else:
        raise SaleConfigError(f"{what}: expected an ISO 8601 time, got {value!r}")
    if moment.tzinfo is None:
        raise SaleConfigError(f"{what}: give an offset (e.g. +08:00): {value!r}")
    return int(moment.timestamp())


def sale_from_dict(data: dict[str, object]) -> Sale:
    for key in ("name", "start", "end", "timezone", "gmv_target"):
        if key not in data:
            raise SaleConfigError(f"missing {key!r}")
    start, end = parse_time(data["start"], "start"), parse_time(data["end"], "end")
    if end <= start:
        raise SaleConfigError("end must be after start")
    timezone = str(data["timezone"])
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SaleConfigError(f"timezone: unknown time zone {timezone!r}") from None
    target = data["gmv_target"]
    if not isinstance(target, int | float) or target <= 0:
        raise SaleConfigError(f"gmv_target: expected a positive number, got {target!r}")
    previous = data.get("previous_start")
    flash = data.get("flash_sales", [])
    if not isinstance(flash, list):
        raise SaleConfigError("flash_sales: expected a list of tables")
    flash_sales = []
    for i, entry in enumerate(flash):
        if not isinstance(entry, dict) or not {"name", "start", "end"} <= set(entry):
            raise SaleConfigError(f"flash_sales[{i}]: needs name, start and end")
        f_start = parse_time(entry["start"], f"flash_sales[{i}].start")
        f_end = parse_time(entry["end"], f"flash_sales[{i}].end")
        if f_end <= f_start:
            raise SaleConfigError(f"flash_sales[{i}]: end must be after start")
        flash_sales.append(FlashSale(str(entry["name"]), f_start, f_end))
    return Sale(
        name=str(data["name"]),
        start_s=start,
        end_s=end,
        timezone=timezone,
        gmv_target=float(target),
        previous_start_s=None if previous is None else parse_time(previous, "previous_start"),
        flash_sales=tuple(flash_sales),
    )


def load_sale(path: Path = DEFAULT_SALE_FILE) -> Sale:
    """The sale of ``path`` (default: the repository's ``sale.toml``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SaleConfigError(f"{path}: {exc}") from None
    try:
        return sale_from_dict(data)
    except SaleConfigError as exc:
        raise SaleConfigError(f"{path}: {exc}") from None
