"""Durations and points in time as the CLI and incident specs write them."""

from __future__ import annotations

import re
from datetime import UTC, datetime


class SpecError(ValueError):
    """A duration, time or ``--incident`` string that cannot be parsed; the message says why."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``10m``, ``2h``, ``1h30m``, ``500ms``, ``1d``."""
    s = text.strip().lower()
    if not s:
        raise SpecError("empty duration (expected e.g. 90s, 10m, 2h, 1h30m)")
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value < 0 or value != value or value == float("inf"):
            raise SpecError(f"bad duration {text!r}: must be a finite number ≥ 0")
        return value
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise SpecError(f"bad duration {text!r} (expected e.g. 90s, 10m, 2h, 1h30m, 500ms)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest ``parse_duration`` string for ``seconds`` (``90`` → ``1m30s``)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, out = int(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out + f"{rest}s" if rest or not out else out


def parse_time(text: str) -> int:
    """Epoch ms from an ISO 8601 time (naive means UTC) or an integer of epoch milliseconds."""
    s = text.strip()
    if s.isdigit():
        ms = int(s)
        if ms < 10**11:
            raise SpecError(f"bad time {text!r}: looks like epoch seconds, give epoch ms")
        return ms
    try:
        parsed = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(
            f"bad time {text!r} (expected ISO 8601 like 2024-11-10T23:30:00+08:00, or epoch ms)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)
